"""The main process's view of shipping: which logs ship, and what the shipping processes say.

With no brokers configured anywhere (no ``KAFKA_BROKERS``, no container with
``kafka-brokers``) nothing here starts: no shipping process, no thread, no
position file.

A container's log ships from the moment its logging starts with a route
(:meth:`ShipperManager.attach`) until a shipping process reports it
finished: its log closed and everything in it acknowledged. Each of its
declared file logs ships the same way, as a log of its own (named by its log id,
:func:`~.ipc.log_id`), from the moment the container's collector opens it
(:meth:`ShipperManager.attach_file`) until it is closed and acknowledged. The same
container started again while its shipping is still under way is the same
log to the shipping process (one task per container ID), so nothing is ever
sent twice. At startup, containers whose ``kafka.position`` lies before the
end of their log (pylog was stopped or killed with lines unshipped) are
shipped too (:meth:`ShipperManager.resume_backlogs`), from a read-only view;
so are their declared file logs, each by its own ``kafka.position``.

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

from ..config import Declaration, LogOptions, Settings, parse_declarations, parse_log_opts
from ..kept_info import kept_info, stored_name
from ..models import ContainerInfo, RequestError
from ..snapshot import AbandonedCounters, ProducerCounters, ShipperCounters
from ..store import INFO_FILE, LogFile, Store
from ..store.logfile import LogState
from ..store.reader import Position, count_records
from . import ipc
from .errors import PositionError
from .position import backlog, load_position, position_path
from .routing import Route, file_route, resolve
from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: What FIFO readers stopping leave to shipping at least, of the shutdown deadline:
#: the shipping processes halt and close their producers in it.
SHIPPING_RESERVE = 1.5


@dataclass
class _Shipped:
    """One log being shipped (a container's own, or a declared file log), as the main
    process knows it."""

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
    name: str = ""
    """The declared file log's name; empty for the container's own log."""

    @property
    def log_id(self) -> str:
        return ipc.log_id(self.container_id, self.name)


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
        """Per log id."""
        #: Lines lost to rotation of logs whose shipping has finished since pylog
        #: started, per log id.
        self._lost_done: dict[str, int] = {}
        self._reports = _Reports()
        self._supervisor: Supervisor | None = None
        self._closed = False

    # -- routing -------------------------------------------------------------------

    def route(
        self,
        info: ContainerInfo,
        options: LogOptions,
        declarations: tuple[Declaration, ...] = (),
    ) -> Route | None:
        """The container's route, or None for local-only; RoutingError if it is invalid."""
        return resolve(info, options, self.settings.kafka, declarations)

    # -- what the service calls ----------------------------------------------------

    def attach(self, info: ContainerInfo, logfile: LogFile, route: Route) -> None:
        """Ship the container's live log (StartLogging). Never waits on a shipping process."""
        self._attach(info, "", logfile, route)

    def attach_file(
        self, info: ContainerInfo, declaration: Declaration, logfile: LogFile, route: Route
    ) -> None:
        """Ship a declared file log the container's collector has just opened for
        writing (``route``: the container's); never waits on a shipping process.

        Like the container's own log, one that never shipped starts at its end now:
        the collector calls this before it stores a line, so a new log ships whole.
        """
        self._attach(info, declaration.name, logfile, file_route(route, declaration))

    def _attach(self, info: ContainerInfo, name: str, logfile: LogFile, route: Route) -> None:
        cid = info.container_id
        lid = ipc.log_id(cid, name)
        with self._lock:
            if self._closed:
                return
            entry = self._logs.get(lid)
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
                name=name,
            )
            self._logs[lid] = entry
            supervisor = self._started()
        logfile.hold = lambda: self._held_from(lid)
        logfile.on_discard = lambda generation, path: self._discarded(lid, generation, path)
        logfile.on_change = lambda: supervisor.changed(lid)
        supervisor.ship(lid)

    def resume_backlogs(self) -> list[str]:
        """At startup: ship what stopped containers left unshipped, in their own logs
        and their declared file logs. Returns the log ids.

        A container whose state cannot be used (its Info or log-opts no longer
        parse, its ``pylog.topic`` label no longer routes, ...) is skipped with a
        warning, whatever the error: one bad directory must not stop pylog from
        starting, which would block every running container.
        """
        resumed: list[str] = []
        for container_id in self.store.containers():
            try:
                resumed += self._resume(container_id)
            except Exception as exc:
                log.warning("container %s: not resuming Kafka shipping: %s", container_id[:12], exc)
        return resumed

    def shipped(self) -> list[str]:
        """The logs being shipped, by log id (a container's own log: its ID)."""
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
            lost = {e.log_id: e.lost_rotation for e in entries}
            lost.update({lid: n + lost.get(lid, 0) for lid, n in self._lost_done.items()})
        reported = {ipc.log_id(s.container_id, s.log_name) for r in reports for s in r.shippers}
        # Shipped, but not in a report yet (one comes within a second): shown at once.
        unreported = [_unreported(e) for e in entries if e.log_id not in reported]
        shippers = unreported + [
            dataclasses.replace(
                s,
                stored_name="" if s.container_id in live else s.stored_name,
                lines_lost_rotation=lost.get(ipc.log_id(s.container_id, s.log_name), 0),
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

    def _ship_message(self, lid: str) -> ipc.Ship | None:
        with self._lock:
            entry = self._logs.get(lid)
        if entry is None:
            return None
        return ipc.Ship(
            entry.container_id, entry.info, entry.logfile.state(), entry.first_start, entry.name
        )

    def _state(self, lid: str) -> LogState | None:
        with self._lock:
            entry = self._logs.get(lid)
        return entry.logfile.state() if entry is not None else None

    def _message(self, index: int, msg: ipc.FromWorker) -> None:
        """A message from shipping process ``index`` (on its receiver thread)."""
        if isinstance(msg, ipc.Report):
            with self._lock:
                self._reports.by_process[index] = msg
        elif isinstance(msg, ipc.Progress):
            with self._lock:
                entry = self._logs.get(msg.log_id)
                if entry is None:
                    return
                moved = entry.acked_generation != msg.acked.generation
                entry.acked_generation = msg.acked.generation
                entry.read_generation = msg.read_generation
            if moved:
                entry.logfile.trim()  # files held for the shipper may go now
        elif isinstance(msg, ipc.Finished):
            lid = msg.log_id
            with self._lock:
                entry = self._logs.get(lid)
                # Started again meanwhile: its new Ship keeps (or restarts) the shipping.
                if entry is not None and entry.logfile.state().closed:
                    del self._logs[lid]
                    if entry.lost_rotation:
                        self._lost_done[lid] = self._lost_done.get(lid, 0) + entry.lost_rotation

    # -- rotation hooks (on the writer's thread, under the log's lock) --------------

    def _held_from(self, lid: str) -> int | None:
        """Rotation keeps the files from the acknowledged position on (within its cap),
        so a shipper that lags behind a burst loses nothing."""
        with self._lock:
            entry = self._logs.get(lid)
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

    def _discarded(self, lid: str, generation: int, path: Path) -> None:
        """Count the lines of a file rotation deleted before it was read for shipping.

        A file the shipping process has already opened stays readable after it is
        deleted, so only generations past the one it reads are lost. What it reads
        is known from its last Progress, so a file it opened since is counted too.
        """
        with self._lock:
            entry = self._logs.get(lid)
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
            ipc.log_id(entry.container_id[:12], entry.name),
            lost,
            total,
        )

    # -- backlogs at startup ---------------------------------------------------------

    def _resume(self, container_id: str) -> list[str]:
        """Ship the backlogs of a stopped container: its own log's, and each declared
        file log's that is still declared. Returns the log ids resumed."""
        try:
            directory = self.store.directory(container_id)
        except RequestError:
            return []
        if self.store.is_active(container_id):
            return []
        names = [
            n
            for n in self.store.file_log_names(container_id)
            if position_path(self.store.file_log_directory(container_id, n)).exists()
        ]
        if not position_path(directory).exists() and not names:
            return []
        info = _load_info(directory)
        if info is None:
            return []
        options = parse_log_opts(info.config)
        declarations = parse_declarations(
            info.container_labels, info.env, self.settings.log_prefixes
        )
        route = self.route(info, options, declarations)
        if route is None:
            return []
        resumed: list[str] = []
        if position_path(directory).exists():
            logfile = self.store.reader(container_id, options.rotation)
            if self._resume_log(info, "", logfile, route):
                resumed.append(container_id)
        files = {d.name: d for d in declarations if d.kind == "file"}
        for name in names:
            declaration = files.get(name)
            if declaration is None:
                log.warning(
                    "container %s: log %s has lines left to ship to Kafka, but the "
                    "container no longer declares it; not resumed",
                    info.short_id,
                    name,
                )
                continue
            logfile = LogFile(
                self.store.file_log_directory(container_id, name),
                options.rotation,
                writable=False,
            )
            if self._resume_log(info, name, logfile, file_route(route, declaration)):
                resumed.append(ipc.log_id(container_id, name))
        return resumed

    def _resume_log(self, info: ContainerInfo, name: str, logfile: LogFile, route: Route) -> bool:
        """Ship one log's backlog if its ``kafka.position`` lies before its end."""
        state = logfile.state()
        end = Position(state.generation, state.size)
        try:
            start = load_position(logfile.directory)
        except PositionError:
            start = None  # unreadable: the shipping process says so and starts at the oldest
        if start is not None and start >= end:
            return False
        lid = ipc.log_id(info.container_id, name)
        with self._lock:
            if self._closed or lid in self._logs:
                return False
            kept = kept_info(info.to_json())
            self._logs[lid] = _Shipped(info.container_id, kept, logfile, end, route, name=name)
            supervisor = self._started()
        supervisor.ship(lid)
        log.info(
            "container %s: resuming Kafka shipping of its backlog to %s",
            ipc.log_id(info.short_id, name),
            route.topic,
        )
        return True


def _unreported(entry: _Shipped) -> ShipperCounters:
    """A shipped log's counters before its shipping process reported any."""
    if entry.acked_generation is None:
        start = entry.first_start
    else:
        start = Position(entry.acked_generation, 0)
    backlog_bytes, backlog_files = backlog(start, entry.logfile.state())
    return ShipperCounters(
        container_id=entry.container_id,
        stored_name=stored_name(entry.info),
        topic=entry.route.topic,
        brokers=tuple(entry.route.brokers),
        lines_acked=0,
        lines_rejected=0,
        lines_lost_rotation=0,
        retries=0,
        backlog_bytes=backlog_bytes,
        backlog_files=backlog_files,
        log_name=entry.name,
    )


def _load_info(directory: Path) -> ContainerInfo | None:
    """The stored Info; None if there is none, an error if it is unusable."""
    try:
        text = (directory / INFO_FILE).read_text()
    except FileNotFoundError:
        return None
    return ContainerInfo.from_json(json.loads(text))
