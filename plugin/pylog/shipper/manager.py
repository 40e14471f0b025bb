"""The service's view of shipping: which containers ship, their shippers, startup and shutdown.

With no brokers configured anywhere (no ``KAFKA_BROKERS``, no container with
``kafka-brokers``) nothing here starts: no loop thread, no producer, no
position files.

One shipper per container ID, shared by every FIFO of that container (like
its LogFile). A shipper ends by itself once its container's log is closed and
everything in it is acknowledged; a new one for the same container (the
container started again, or ``docker logs`` of a stopped one) lets the old one
finish on its own and carries on from its acknowledged position, so reading a
container's logs never sends a line twice.

At startup, containers whose ``kafka.position`` lies before the end of their
log (pylog was stopped or killed with lines unshipped) get a shipper on a
read-only view of their log, so their backlog still reaches Kafka.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from ..config import LogOptions, Settings, parse_log_opts
from ..deadline import left
from ..models import ContainerInfo, RequestError
from ..pressure import IngestPressure
from ..store import INFO_FILE, LogFile, Store
from ..store.reader import Position
from .assemble import LineAssembler
from .backlog import BacklogLimit
from .position import PositionUnreadable, load_position, position_path
from .producer import ClusterProducer, KafkaRuntime, cluster_key
from .routing import Route, resolve
from .schema import ValueBuilder
from .shipper import ContainerShipper

log = logging.getLogger(__name__)

#: Of the shutdown deadline, what halting the shippers (each notices within a
#: fraction of a second) and closing the producers keep for themselves.
HALT_RESERVE = 1.5
#: Of that, what closing the producers and the loop thread keeps.
CLOSE_RESERVE = 0.5
#: What FIFO readers stopping leave to shipping at least.
SHIPPING_RESERVE = HALT_RESERVE


class ShipperManager:
    def __init__(
        self, settings: Settings, store: Store, pressure: IngestPressure | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.pressure = pressure
        self._lock = threading.Lock()
        self._runtime: KafkaRuntime | None = None
        self._shippers: dict[str, ContainerShipper] = {}
        #: Lines given up per container (see backlog.py), with its last shipper.
        self._abandoned: dict[str, tuple[ContainerShipper, int]] = {}
        self._limit = BacklogLimit(settings.kafka.backlog_max_age)
        self._closed = False

    # -- routing -------------------------------------------------------------------

    def route(self, info: ContainerInfo, options: LogOptions) -> Route | None:
        """The container's route, or None for local-only; RoutingError if it is invalid."""
        return resolve(info, options, self.settings.kafka)

    # -- shippers ------------------------------------------------------------------

    def attach(
        self, info: ContainerInfo, options: LogOptions, logfile: LogFile, route: Route
    ) -> None:
        """Ship the container's live log (StartLogging). Never waits on a broker."""
        with self._lock:
            if self._closed:
                return
            current = self._shippers.get(info.container_id)
            if current is not None and current.logfile is logfile and not current.done:
                return  # another FIFO of the same container: already shipped
            directory = self.store.directory(info.container_id)
            start = _start_position(directory, logfile, info.short_id)
            if start is None:
                # First time this container ships: from where its log ends now, so
                # lines logged before Kafka was configured are not sent.
                start = _end(logfile)
            shipper = self._new_shipper(info, options, logfile, route, directory, start, current)
            logfile.on_discard = shipper.on_discard
            logfile.hold = shipper.held_from
            self._shippers[info.container_id] = shipper
        shipper.start()

    def resume_backlogs(self) -> list[str]:
        """At startup: ship what stopped containers left unshipped. Returns their IDs.

        A container whose state cannot be used (its Info or log-opts no longer
        parse, its ``pylog.topic`` label no longer routes, ...) is skipped with a
        warning, whatever the error: one bad directory must not stop pylog from
        starting, which would block every running container.
        """
        resumed: list[str] = []
        for container_id in self.store.containers():
            try:
                if self._resume(container_id):
                    resumed.append(container_id)
            except Exception as exc:
                log.warning("container %s: not resuming Kafka shipping: %s", container_id[:12], exc)
        return resumed

    def _resume(self, container_id: str) -> bool:
        try:
            directory = self.store.directory(container_id)
        except RequestError:
            return False
        if not position_path(directory).exists() or self.store.is_active(container_id):
            return False
        info = self._load_info(directory)
        if info is None:
            return False
        options = parse_log_opts(info.config)
        route = self.route(info, options)
        if route is None:
            return False
        logfile = self.store.reader(container_id, options.rotation)
        start = _start_position(directory, logfile, info.short_id)
        if start is None or start >= _end(logfile):
            return False
        with self._lock:
            if self._closed or container_id in self._shippers:
                return False
            shipper = self._new_shipper(info, options, logfile, route, directory, start, None)
            self._shippers[container_id] = shipper
        shipper.start()
        log.info(
            "container %s: resuming Kafka shipping of its backlog to %s",
            info.short_id,
            route.topic,
        )
        return True

    def shippers(self) -> list[ContainerShipper]:
        with self._lock:
            return list(self._shippers.values())

    def abandoned(self) -> list[tuple[ContainerShipper, int]]:
        """Per container whose backlog was given up since pylog started: its last
        shipper and the lines given up in all."""
        with self._lock:
            return list(self._abandoned.values())

    def producers(self) -> list[ClusterProducer]:
        """The Kafka producers in use, one per cluster configuration (none if idle)."""
        with self._lock:
            runtime = self._runtime
        return runtime.producers() if runtime is not None else []

    def shutdown(self, deadline: float) -> None:
        """Let shippers finish what their (closed) logs hold, then stop; return by
        ``deadline`` (``time.monotonic()``).

        Draining stops :data:`HALT_RESERVE` before the deadline, halting the
        shippers :data:`CLOSE_RESERVE` before it, and the producers close with
        what is left: dockerd kills a plugin that takes 10 s to stop, and
        whatever is not acknowledged ships from ``kafka.position`` at the next
        start anyway.
        """
        with self._lock:
            self._closed = True
            shippers = list(self._shippers.values())
            runtime = self._runtime
        for s in shippers:
            s.join(left(deadline, HALT_RESERVE))
        for s in shippers:
            s.halt()
        for s in shippers:
            if not s.join(left(deadline, CLOSE_RESERVE)):
                log.warning("container %s: Kafka shipper did not stop in time", s.short_id)
        if runtime is not None:
            runtime.close(deadline)
        unshipped = sum(1 for s in shippers if not s.done or s.acked < _end(s.logfile))
        if unshipped:
            log.info("%d containers have lines left to ship to Kafka at next start", unshipped)

    # -- internals -----------------------------------------------------------------

    def _new_shipper(
        self,
        info: ContainerInfo,
        options: LogOptions,
        logfile: LogFile,
        route: Route,
        directory: Path,
        start: Position,
        after: ContainerShipper | None,
    ) -> ContainerShipper:
        if self._runtime is None:
            self._runtime = KafkaRuntime()
        kafka = self.settings.kafka
        producer = self._runtime.producer(cluster_key(kafka, route.brokers))
        tag = options.tag.render(info) if options.tag is not None else info.short_id
        builder = ValueBuilder(
            info,
            tag=tag,
            labels=options.selected_labels(info.container_labels),
            env=options.selected_env(info.env),
            parse_json=options.kafka.json,
        )
        ko = options.kafka

        def make_assembler(pos: Position) -> LineAssembler:
            return LineAssembler(
                pos,
                max_line=kafka.max_line,
                raw_text=not ko.json,
                multiline=ko.multiline_pattern,
                multiline_max_lines=ko.multiline_max_lines,
                multiline_timeout=ko.multiline_timeout,
            )

        return ContainerShipper(
            container_id=info.container_id,
            directory=directory,
            logfile=logfile,
            route=route,
            builder=builder,
            make_assembler=make_assembler,
            runtime=self._runtime,
            producer=producer,
            start=start,
            after=after,
            on_done=self._shipper_done,
            pressure=self.pressure,
            limit=self._limit,
        )

    def _shipper_done(self, shipper: ContainerShipper) -> None:
        with self._lock:
            if shipper.stats.lines_abandoned:
                _, before = self._abandoned.get(shipper.container_id, (shipper, 0))
                self._abandoned[shipper.container_id] = (
                    shipper,
                    before + shipper.stats.lines_abandoned,
                )
            if self._shippers.get(shipper.container_id) is shipper:
                del self._shippers[shipper.container_id]

    @staticmethod
    def _load_info(directory: Path) -> ContainerInfo | None:
        """The stored Info; None if there is none, an error if it is unusable."""
        try:
            text = (directory / INFO_FILE).read_text()
        except FileNotFoundError:
            return None
        return ContainerInfo.from_json(json.loads(text))


def _start_position(directory: Path, logfile: LogFile, short_id: str) -> Position | None:
    """Where shipping starts: the stored position; None if the container never shipped.

    A position that exists but cannot be read was lost, not never there: the
    lines since are shipped again from the oldest file kept (at least once),
    rather than skipped by starting at the log's end.
    """
    try:
        return load_position(directory)
    except PositionUnreadable as exc:
        start = _oldest(logfile)
        log.warning(
            "container %s: %s; shipping again from the oldest kept log file (generation %d)",
            short_id,
            exc,
            start.generation,
        )
        return start


def _oldest(logfile: LogFile) -> Position:
    rotated = logfile.rotated_generations()
    return Position(rotated[0] if rotated else logfile.state().generation, 0)


def _end(logfile: LogFile) -> Position:
    state = logfile.state()
    return Position(state.generation, state.size)
