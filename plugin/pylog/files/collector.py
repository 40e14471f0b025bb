"""Collecting the log files containers declare, in the main process.

Threads, and who owns what:

- :class:`Collectors` belongs to the service. StartLogging, StopLogging and the
  end of a FIFO call :meth:`Collectors.attach` and :meth:`Collectors.detach`,
  which only update a dict under a lock, start a thread or set flags: they
  never wait for a container, a file or the disk.
- One :class:`ContainerCollector` thread per container with declared file logs
  (``pylog-files-<short id>``). It alone owns the container's root (and mount
  namespace), every :class:`~.filelog.FileLog`, their followers and file
  descriptors, their registries, and the declared logs' ``LogFile`` writers.
  Other threads read only its counters (plain ints).

A collector's life:

1. Find the container's process and open its root. dockerd sends StartLogging
   before the container runs, so the thread tries again (every 5 ms for 3 s,
   then less often) until runc has moved the process into the container's root
   (:func:`.container_root.open_final_root`).
2. Every ``poll_interval``: a round over every file (bounded per file, see
   :data:`.filelog.ROUND_READ`), again at once while a file has more; every
   ``scan_interval`` the globs are evaluated again (new daily files), and at
   every round a glob that matched nothing yet: the first file a container
   writes (often just after it started) is found within a round, before the
   container can rotate it away.
3. StopLogging (the container exited) or the end of its last FIFO: the globs
   once more, every file read to its end, last lines without a newline taken,
   registries saved, logs closed, root released. pylog stopping: positions
   saved, nothing taken that is not a whole line; the next process resumes
   from the registries (at least once).

A container stopped and started again (``docker restart``) gets a new
collector, which waits for the old one to finish before it opens the same logs
and registries: the logs continue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..config import Declaration
from ..models import ContainerInfo
from ..snapshot import FileLogCounters
from ..store import LogFile, RotationPolicy, Store
from .container_root import ContainerNotFound, ContainerRoot, open_final_root
from .filelog import MAX_FILES, FileLog, FileLogStats
from .registry import Registry

log = logging.getLogger(__name__)

#: How often the files are read when nothing is left to read.
POLL_INTERVAL = 0.25
#: How often the globs are evaluated again.
SCAN_INTERVAL = 3.0
#: Waits between looks for the container's process (a scan of /proc): every
#: FIND_FAST_WAIT for the first FIND_FAST_FOR seconds after StartLogging, then
#: growing by half each time up to FIND_MAX_WAIT. A container that writes and
#: exits at once is in its root for a few tens of milliseconds (from runc's pivot,
#: through the wait for ``runc start``, to its exit): fast looks find it. A look
#: costs a read per process on the host (0.3 ms for 90 processes here); the wait
#: is at least FIND_COST_FACTOR times the last look, so a host with thousands of
#: processes spends at most a fifth of a core on it.
FIND_COST_FACTOR = 4
FIND_FAST_WAIT = 0.005
FIND_FAST_FOR = 3.0
FIND_MAX_WAIT = 0.5

#: Opens the container's root (by container ID); raises ContainerNotFound until it can.
RootOpener = Callable[[str], ContainerRoot]
#: Told of each declared file log opened for writing, before a line is stored in it
#: (on the collector's thread: it must only take note). Kafka shipping attaches there
#: (the LogFile's hold/on_discard/on_change hooks); the log's close reaches it
#: through its on_change hook.
OnOpen = Callable[[Declaration, LogFile], None]


class ContainerCollector:
    """The declared file logs of one container, collected on a thread of its own."""

    def __init__(
        self,
        info: ContainerInfo,
        declarations: Iterable[Declaration],
        store: Store,
        policy: RotationPolicy,
        *,
        open_root: RootOpener = open_final_root,
        after: ContainerCollector | None = None,
        on_done: Callable[[ContainerCollector], None] | None = None,
        on_open: OnOpen | None = None,
        poll_interval: float = POLL_INTERVAL,
        scan_interval: float = SCAN_INTERVAL,
        max_files: int = MAX_FILES,
    ) -> None:
        self.info = info
        self.declarations = tuple(d for d in declarations if d.kind == "file")
        self.fifos: set[Path] = set()
        """The FIFOs of the container being read (dockerd's live-restore gives a
        running container a second one); maintained by :class:`Collectors`."""
        self.stats = {d.name: FileLogStats() for d in self.declarations}
        self.root_found = False
        self._store = store
        self._policy = policy
        self._open_root = open_root
        self._after = after
        self._on_done = on_done
        self._on_open = on_open
        self._poll_interval = poll_interval
        self._scan_interval = scan_interval
        self._max_files = max_files
        self._stopping = threading.Event()
        self._halting = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"pylog-files-{info.short_id}", daemon=True
        )

    # -- called from other threads ---------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set() or self._halting.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The container exited: read everything to its end, then finish."""
        self._stopping.set()
        self._wake.set()

    def halt(self) -> None:
        """pylog is stopping: save positions and finish without waiting for more."""
        self._halting.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def counters(self) -> list[FileLogCounters]:
        return [
            FileLogCounters(
                container_id=self.info.container_id,
                container_name=self.info.container_name,
                log_name=name,
                lines=s.lines,
                bytes=s.bytes,
                lines_dropped_store=s.lines_dropped_store,
                files_open=s.files_open,
                files_skipped=dict(s.skipped),
                truncations=s.truncations,
                rotations=s.rotations,
            )
            for name, s in sorted(self.stats.items())
        ]

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._after is not None:
                self._after.join()  # the same container's previous run (docker restart)
            root = self._find_root()
            if root is None:
                return
            with root:
                self._collect(root)
        except Exception:
            log.exception("container %s: collecting its log files failed", self.info.short_id)
        finally:
            if self._on_done is not None:
                self._on_done(self)

    def _find_root(self) -> ContainerRoot | None:
        wait = FIND_FAST_WAIT
        slow_from = time.monotonic() + FIND_FAST_FOR
        while True:
            last_try = self.stopping
            looked = time.monotonic()
            try:
                root = self._open_root(self.info.container_id)
            except ContainerNotFound:  # not started yet, or RootNotReady: runc is at work
                pass
            else:
                self.root_found = True
                return root
            if last_try:
                if self._halting.is_set():
                    return None  # pylog stopping; the next process looks again
                # Also what dockerd's StartLogging for `docker logs` of a stopped
                # container looks like (it opens the log to read it): not a warning.
                log.info(
                    "container %s: logging stopped before a process of the container was "
                    "found; its declared logs (%s) were not collected this time",
                    self.info.short_id,
                    ", ".join(d.name for d in self.declarations),
                )
                return None
            cost = time.monotonic() - looked
            self._wake.wait(max(wait, FIND_COST_FACTOR * cost))
            if time.monotonic() >= slow_from:
                wait = min(wait * 1.5, FIND_MAX_WAIT)

    def _collect(self, root: ContainerRoot) -> None:
        logs: list[FileLog] = []
        cid = self.info.container_id
        try:
            for d in self.declarations:
                logfile = self._store.acquire_file_log(cid, d.name, self._policy)
                if self._on_open is not None:
                    try:
                        self._on_open(d, logfile)
                    except Exception:  # shipping's trouble must not stop collection
                        log.exception(
                            "container %s: log %s: on_open hook failed", self.info.short_id, d.name
                        )
                registry = Registry.load(self._store.file_log_directory(cid, d.name))
                logs.append(
                    FileLog(
                        d,
                        root.fd,
                        logfile,
                        registry,
                        short_id=self.info.short_id,
                        max_files=self._max_files,
                        stats=self.stats[d.name],
                    )
                )
            log.info(
                "container %s: collecting %s",
                self.info.short_id,
                ", ".join(f"{fl.name}={fl.pattern}" for fl in logs),
            )
            self._loop(logs)
        finally:
            for fl in logs:
                self._store.release_file_log(cid, fl.name)

    def _loop(self, logs: list[FileLog]) -> None:
        next_scan = 0.0
        failing = False
        while True:
            try:
                if self._halting.is_set():
                    for fl in logs:
                        fl.halt()
                    return
                if self._stopping.is_set():
                    for fl in logs:
                        fl.scan()  # files created just before the exit
                        fl.finish()
                    return
                now = time.monotonic()
                rescan = now >= next_scan
                for fl in logs:
                    if rescan or not fl.following:
                        fl.scan()
                if rescan:
                    next_scan = now + self._scan_interval
                more = False
                for fl in logs:
                    more = fl.collect() or more
                failing = False
            except Exception:
                if self.stopping:
                    raise
                if not failing:
                    log.exception("container %s: a round of collection failed", self.info.short_id)
                failing = True
                more = False
            if not more:
                self._wake.wait(self._poll_interval)
                self._wake.clear()


class Collectors:
    """The collectors of every container being logged (see module doc)."""

    def __init__(
        self,
        store: Store,
        *,
        open_root: RootOpener = open_final_root,
        poll_interval: float = POLL_INTERVAL,
        scan_interval: float = SCAN_INTERVAL,
    ) -> None:
        self._store = store
        self._open_root = open_root
        self._poll_interval = poll_interval
        self._scan_interval = scan_interval
        self._lock = threading.Lock()
        self._by_container: dict[str, ContainerCollector] = {}

    def attach(
        self,
        fifo: Path,
        info: ContainerInfo,
        declarations: Iterable[Declaration],
        policy: RotationPolicy,
        on_open: OnOpen | None = None,
    ) -> ContainerCollector | None:
        """StartLogging of ``fifo``: collect the container's declared files (if it
        declares any) unless they are collected already; returns the collector.
        ``on_open`` is told of each file log the collector opens (see :data:`OnOpen`)."""
        files = [d for d in declarations if d.kind == "file"]
        if not files:
            return None
        with self._lock:
            current = self._by_container.get(info.container_id)
            if current is not None and not current.stopping:
                current.fifos.add(fifo)
                return current
            collector = ContainerCollector(
                info,
                files,
                self._store,
                policy,
                open_root=self._open_root,
                after=current,
                on_done=self._done,
                on_open=on_open,
                poll_interval=self._poll_interval,
                scan_interval=self._scan_interval,
            )
            collector.fifos.add(fifo)
            self._by_container[info.container_id] = collector
        collector.start()
        return collector

    def detach(self, fifo: Path, container_id: str, *, stopped: bool) -> None:
        """StopLogging of ``fifo`` (``stopped``: the container exited) or the end of
        the FIFO: a collector stops when its container stopped or its last FIFO ended."""
        with self._lock:
            collector = self._by_container.get(container_id)
            if collector is None or fifo not in collector.fifos:
                return
            collector.fifos.discard(fifo)
            if not stopped and collector.fifos:
                return
        collector.stop()

    def _done(self, collector: ContainerCollector) -> None:
        with self._lock:
            if self._by_container.get(collector.info.container_id) is collector:
                del self._by_container[collector.info.container_id]

    def collectors(self) -> list[ContainerCollector]:
        with self._lock:
            return list(self._by_container.values())

    def halt(self, deadline: float) -> None:
        """pylog is stopping: every collector saves its positions and ends, by ``deadline``
        (monotonic)."""
        collectors = self.collectors()
        for c in collectors:
            c.halt()
        for c in collectors:
            if not c.join(max(0.0, deadline - time.monotonic())):
                log.warning("container %s: file collection did not stop in time", c.info.short_id)

    def counters(self) -> list[FileLogCounters]:
        return [counter for c in self.collectors() for counter in c.counters()]
