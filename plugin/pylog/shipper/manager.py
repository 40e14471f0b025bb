"""The main process's view of shipping: which logs ship, and what the shipping processes say.

With no brokers configured anywhere (no ``KAFKA_BROKERS``, no container with
``kafka-brokers``) nothing here starts: no shipping process, no thread, no
position file.

A container's log ships from the moment its logging starts with a route
(:meth:`ShipperManager.attach`) until a shipping process reports it
finished: its log closed and everything in it acknowledged. The same
container started again while its shipping is still under way is the same
log to the shipping process (one task per container ID), so nothing is ever
sent twice. At startup, containers whose ``kafka.position`` lies before the
end of their log (pylog was stopped or killed with lines unshipped) are
shipped too (:meth:`ShipperManager.resume_backlogs`), from a read-only view.

What stays here, because it happens where the log is written: rotation keeps
the files a shipper has not acknowledged yet (``LogFile.hold``, from the
positions the processes report), trims them once they are (on
:class:`~.ipc.Progress`), and counts the lines it deleted before they were
read (``LogFile.on_discard``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import LogOptions, Settings, parse_log_opts
from ..kept_info import kept_info
from ..models import ContainerInfo, RequestError
from ..snapshot import AbandonedCounters, ProducerCounters, ShipperCounters
from ..store import INFO_FILE, LogFile, Store
from ..store.logfile import LogState
from ..store.reader import Position, count_records
from . import ipc
from .errors import PositionError
from .position import load_position, position_path
from .routing import Route, resolve
from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: What FIFO readers stopping leave to shipping at least, of the shutdown deadline:
#: the shipping processes halt and close their producers in it.
SHIPPING_RESERVE = 1.5


@dataclass
class _Shipped:
    """One container's log being shipped, as the main process knows it."""

    container_id: str
    info: dict[str, Any]
    """Its Info as kept (see kept_info.py)."""
    logfile: LogFile
    first_start: Position
    route: Route
    acked_generation: int | None = None
    """From the shipping process's last Progress; None until one came."""
    read_generation: int | None = None
    lost_rotation: int = 0
    """Lines rotation deleted before they were read for shipping."""


@dataclass
class _Reports:
    """The last Report of each shipping process."""

    by_process: dict[int, ipc.Report] = field(default_factory=dict)


class ShipperManager:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._lock = threading.Lock()
        self._logs: dict[str, _Shipped] = {}
        #: Lines lost to rotation of logs whose shipping has finished since pylog started.
        self._lost_done: dict[str, int] = {}
        self._reports = _Reports()
        self._supervisor: Supervisor | None = None
        self._closed = False

    # -- routing -------------------------------------------------------------------

    def route(self, info: ContainerInfo, options: LogOptions) -> Route | None:
        """The container's route, or None for local-only; RoutingError if it is invalid."""
        return resolve(info, options, self.settings.kafka)

    # -- what the service calls ----------------------------------------------------

    def attach(self, info: ContainerInfo, logfile: LogFile, route: Route) -> None:
        """Ship the container's live log (StartLogging). Never waits on a shipping process."""
        cid = info.container_id
        with self._lock:
            if self._closed:
                return
            entry = self._logs.get(cid)
            if entry is not None and entry.logfile is logfile:
                return  # another FIFO of the same container: already shipped
            state = logfile.state()
            entry = _Shipped(
                container_id=cid,
                info=kept_info(info.to_json()),
                logfile=logfile,
                first_start=Position(state.generation, state.size),
                route=route,
                acked_generation=entry.acked_generation if entry is not None else None,
                read_generation=entry.read_generation if entry is not None else None,
                lost_rotation=entry.lost_rotation if entry is not None else 0,
            )
            self._logs[cid] = entry
            supervisor = self._started()
        logfile.hold = lambda: self._held_from(cid)
        logfile.on_discard = lambda generation, path: self._discarded(cid, generation, path)
        logfile.on_change = lambda: supervisor.changed(cid)
        supervisor.ship(cid)

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

    def shipped(self) -> list[str]:
        """The containers whose logs are being shipped."""
        with self._lock:
            return list(self._logs)

    def processes(self) -> tuple[int, int]:
        """Shipping processes running, and how many were restarted after dying."""
        with self._lock:
            sup = self._supervisor
        return (sup.running(), sup.restarts) if sup is not None else (0, 0)

    def pids(self) -> list[tuple[int, int]]:
        """``(index, pid)`` of the shipping processes running now."""
        with self._lock:
            sup = self._supervisor
        return sup.pids() if sup is not None else []

    def counters(
        self, live: set[str]
    ) -> tuple[list[ShipperCounters], list[ProducerCounters], list[AbandonedCounters]]:
        """What the shipping processes last reported, with what only this process
        counts (lines rotation deleted unread); ``live``: containers being logged,
        whose FIFOs name them."""
        with self._lock:
            reports = list(self._reports.by_process.values())
            entries = list(self._logs.values())
            lost = {e.container_id: e.lost_rotation for e in entries}
            lost.update({c: n + lost.get(c, 0) for c, n in self._lost_done.items()})
        reported = {s.container_id for r in reports for s in r.shippers}
        # Shipped, but not in a report yet (one comes within a second): shown at once.
        unreported = [_unreported(e) for e in entries if e.container_id not in reported]
        shippers = unreported + [
            dataclasses.replace(
                s,
                stored_name="" if s.container_id in live else s.stored_name,
                lines_lost_rotation=lost.get(s.container_id, 0),
            )
            for r in reports
            for s in r.shippers
        ]
        producers = [p for r in reports for p in r.producers]
        abandoned = [a for r in reports for a in r.abandoned]
        return shippers, producers, abandoned

    def shutdown(self, deadline: float) -> None:
        """Tell the shipping processes to send what the (closed) logs hold and stop by
        ``deadline`` (``time.monotonic()``); what is not acknowledged then ships from
        ``kafka.position`` at the next start."""
        with self._lock:
            self._closed = True
            sup = self._supervisor
        if sup is not None:
            sup.stop(deadline)

    # -- the shipping processes' side ----------------------------------------------

    def _started(self) -> Supervisor:
        """The supervisor, started on first use (called under the lock)."""
        if self._supervisor is None:
            self._supervisor = Supervisor(
                self.settings,
                ship_for=self._ship_message,
                state_of=self._state,
                shipped=self.shipped,
                on_message=self._message,
            )
        return self._supervisor

    def _ship_message(self, cid: str) -> ipc.Ship | None:
        with self._lock:
            entry = self._logs.get(cid)
        if entry is None:
            return None
        return ipc.Ship(cid, entry.info, entry.logfile.state(), entry.first_start)

    def _state(self, cid: str) -> LogState | None:
        with self._lock:
            entry = self._logs.get(cid)
        return entry.logfile.state() if entry is not None else None

    def _message(self, index: int, msg: ipc.FromWorker) -> None:
        """A message from shipping process ``index`` (on its receiver thread)."""
        if isinstance(msg, ipc.Report):
            with self._lock:
                self._reports.by_process[index] = msg
        elif isinstance(msg, ipc.Progress):
            with self._lock:
                entry = self._logs.get(msg.container_id)
                if entry is None:
                    return
                moved = entry.acked_generation != msg.acked.generation
                entry.acked_generation = msg.acked.generation
                entry.read_generation = msg.read_generation
            if moved:
                entry.logfile.trim()  # files held for the shipper may go now
        elif isinstance(msg, ipc.Finished):
            with self._lock:
                entry = self._logs.get(msg.container_id)
                # Started again meanwhile: its new Ship keeps (or restarts) the shipping.
                if entry is not None and entry.logfile.state().closed:
                    del self._logs[msg.container_id]
                    if entry.lost_rotation:
                        self._lost_done[msg.container_id] = (
                            self._lost_done.get(msg.container_id, 0) + entry.lost_rotation
                        )

    # -- rotation hooks (on the writer's thread, under the log's lock) --------------

    def _held_from(self, cid: str) -> int | None:
        """Rotation keeps the files from the acknowledged position on (within its cap),
        so a shipper that lags behind a burst loses nothing."""
        with self._lock:
            entry = self._logs.get(cid)
            if entry is None:
                return None
            known = entry.acked_generation
        if known is not None:
            return known
        try:  # no Progress yet (the process is starting): what it will start from
            stored = load_position(entry.logfile.directory)
        except PositionError:
            return 0  # unreadable: it ships again from the oldest file kept
        return (stored or entry.first_start).generation

    def _discarded(self, cid: str, generation: int, path: Path) -> None:
        """Count the lines of a file rotation deleted before it was read for shipping.

        A file the shipping process has already opened stays readable after it is
        deleted, so only generations past the one it reads are lost. What it reads
        is known from its last Progress, so a file it opened since is counted too.
        """
        with self._lock:
            entry = self._logs.get(cid)
            if entry is None:
                return
            read = entry.read_generation
        if read is not None and generation <= read:
            return
        try:
            lost = count_records(path)
        except OSError:
            return
        if not lost:
            return
        with self._lock:
            entry.lost_rotation += lost
            total = entry.lost_rotation
        log.warning(
            "container %s: rotation deleted %d lines before they were shipped to Kafka "
            "(%d in total); raise max-size/max-file or check the brokers",
            cid[:12],
            lost,
            total,
        )

    # -- backlogs at startup ---------------------------------------------------------

    def _resume(self, container_id: str) -> bool:
        try:
            directory = self.store.directory(container_id)
        except RequestError:
            return False
        if not position_path(directory).exists() or self.store.is_active(container_id):
            return False
        info = _load_info(directory)
        if info is None:
            return False
        options = parse_log_opts(info.config)
        route = self.route(info, options)
        if route is None:
            return False
        logfile = self.store.reader(container_id, options.rotation)
        state = logfile.state()
        end = Position(state.generation, state.size)
        try:
            start = load_position(directory)
        except PositionError:
            start = None  # unreadable: the shipping process says so and starts at the oldest
        if start is not None and start >= end:
            return False
        with self._lock:
            if self._closed or container_id in self._logs:
                return False
            kept = kept_info(info.to_json())
            self._logs[container_id] = _Shipped(container_id, kept, logfile, end, route)
            supervisor = self._started()
        supervisor.ship(container_id)
        log.info(
            "container %s: resuming Kafka shipping of its backlog to %s",
            info.short_id,
            route.topic,
        )
        return True


def _unreported(entry: _Shipped) -> ShipperCounters:
    """A shipped log's counters before its shipping process reported any."""
    state = entry.logfile.state()
    if entry.acked_generation is None:
        start = entry.first_start
    else:
        start = Position(entry.acked_generation, 0)
    if start.generation >= state.generation:
        backlog = max(0, state.size - start.offset)
    else:
        backlog = state.size
    name = entry.info.get("ContainerName")
    return ShipperCounters(
        container_id=entry.container_id,
        stored_name=name.lstrip("/") if isinstance(name, str) else "",
        topic=entry.route.topic,
        brokers=tuple(entry.route.brokers),
        lines_acked=0,
        lines_rejected=0,
        lines_lost_rotation=0,
        retries=0,
        backlog_bytes=backlog,
        backlog_files=max(0, state.generation - start.generation),
    )


def _load_info(directory: Path) -> ContainerInfo | None:
    """The stored Info; None if there is none, an error if it is unusable."""
    try:
        text = (directory / INFO_FILE).read_text()
    except FileNotFoundError:
        return None
    return ContainerInfo.from_json(json.loads(text))
