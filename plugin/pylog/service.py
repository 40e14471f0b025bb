"""What the LogDriver endpoints do, free of HTTP.

:class:`LoggingService` owns the per-FIFO drivers and the store, and has an
explicit lifecycle: :meth:`startup` (directories, cleanup thread),
:meth:`shutdown` (stop reading, close logs). Each public method is one
endpoint; the API layer only decodes requests and encodes replies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import readback
from .config import (
    SHUTDOWN_DEADLINE,
    Declaration,
    LogOptions,
    OptionError,
    Settings,
    parse_declarations,
    parse_log_opts,
)
from .deadline import left
from .driver import ContainerDriver
from .fdlimit import FdBudget
from .files.collector import Collectors
from .kept_info import kept_info
from .memtrim import IdleTrim
from .metrics import exposition, make_registry, status_report
from .models import BusyError, ContainerInfo, ReadConfig, RequestError
from .procstat import read_stat
from .shipper import Route, RoutingError
from .shipper.manager import SHIPPING_RESERVE, ShipperManager
from .snapshot import IngestCounters, Snapshot
from .store import LogFile, Store
from .store.attachments import Attachments
from .store.reader import DAMAGE, ReadOptions, read_batches
from .store.scrub import repair

log = logging.getLogger(__name__)

#: How often the cleanup of unused containers' logs runs.
CLEANUP_INTERVAL = 3600.0
#: How often the memory trimmer looks for activity (see memtrim.py).
TRIM_CHECK = 1.0


#: How long ``docker logs`` waits for a just-stopped container's last lines (see
#: LoggingService._wait_for_stopped); dockerd has closed the FIFO by then, so
#: this is only the time to store what is left in it.
STOPPED_DRAIN_WAIT = 5.0


class LogStream:
    """A ReadLogs response body that gives its reader slot back exactly once: at its
    end, or when the server closes it (client gone, shutdown).

    A plain generator would not do: one closed before its first ``next`` never
    runs its ``finally``. An exception while streaming is logged with its
    traceback and ends the stream: the 200 is sent by then, so an ``Err`` can
    no longer be.
    """

    def __init__(self, frames: Iterator[bytes], release: Callable[[], None], short_id: str) -> None:
        self._frames = frames
        self._release: Callable[[], None] | None = release
        self._short_id = short_id

    def __iter__(self) -> LogStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._frames)
        except StopIteration:
            self.close()
            raise
        except Exception:
            log.exception("container %s: reading its log failed", self._short_id)
            self.close()
            raise StopIteration from None

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
        finally:
            release()


class LoggingService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.state_dir)
        self.attachments = Attachments(settings.state_dir / "fifos")
        self._lock = threading.Lock()
        self._drivers: dict[Path, ContainerDriver] = {}
        self._stopped = threading.Event()
        #: When shutdown must be over, once pylog was told to stop (begin_shutdown).
        self._stop_deadline: float | None = None
        #: Refuses new containers and streams before descriptors run out.
        self.fds = FdBudget()
        #: One per ReadLogs stream being served (see read_logs).
        self._reader_slots = threading.BoundedSemaphore(settings.max_readers)
        self._cleanup_thread: threading.Thread | None = None
        self._started = False
        #: Kafka shipping; idle (no process, no thread) unless a container is routed to Kafka.
        self.shipping = ShipperManager(settings, self.store)
        #: The log files containers declare (pylog.logs.<name>=/path), a thread per container.
        self.collectors = Collectors(self.store)
        #: FIFOs of a previous process read again at startup (see _reattach).
        self.reattached = 0
        self._metrics = make_registry(self.snapshot)

    # -- lifecycle -------------------------------------------------------------

    def startup(self) -> None:
        """Prepare (and repair) the state directory, start the periodic cleanup, reattach
        recorded FIFOs and resume Kafka backlogs; safe to call twice. Never fails over
        a bad record in the state directory."""
        if self._started:
            return
        self._started = True
        self.store.setup()
        # Before anything reads the state dir. Each step below skips and logs what
        # it cannot use, whatever the error: a worker that fails to boot makes
        # dockerd restart it in a loop, and every running container blocks.
        self._guarded("repairing the state dir", self._repair)
        self._cleanup_thread = threading.Thread(
            target=self._cleanup_loop, name="pylog-cleanup", daemon=True
        )
        self._cleanup_thread.start()
        threading.Thread(target=self._trim_loop, name="pylog-trim", daemon=True).start()
        log.info("pylog started: state in %s", self.settings.state_dir)
        if self.settings.kafka.brokers:
            log.info("shipping to Kafka at %s", ",".join(self.settings.kafka.brokers))
        self._guarded("reattaching FIFOs", self._reattach)
        self._guarded("resuming Kafka backlogs", self.shipping.resume_backlogs)

    @staticmethod
    def _guarded(what: str, step: Callable[[], object]) -> None:
        """The last line of defence of startup: a step that fails is logged, not fatal."""
        try:
            step()
        except Exception:
            log.exception("%s failed; pylog starts without it", what)

    def _repair(self) -> None:
        """Scrub Info an older pylog stored whole and make the state dir private."""
        repair(self.settings.state_dir, self.attachments.directory, kept_info)

    def begin_shutdown(self) -> None:
        """pylog was told to stop (SIGTERM): the deadline runs from now, and follow
        streams end at their next check instead of holding the server open.

        Safe in a signal handler: it only sets a number and an event.
        """
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + SHUTDOWN_DEADLINE
        self._stopped.set()

    def shutdown(self, timeout: float = SHUTDOWN_DEADLINE) -> None:
        """Stop reading every FIFO, store what was read, close the logs; safe to call twice.

        Returns within ``timeout`` (dockerd kills a plugin that takes 10 s to
        stop, see SHUTDOWN_DEADLINE): one deadline for every stage. FIFO
        readers stop after their current batch; shippers get what is left,
        less what halting them and closing the producers needs.
        """
        self._stopped.set()
        deadline = time.monotonic() + timeout
        if self._stop_deadline is not None:
            # Told earlier (begin_shutdown): the time since counts too.
            deadline = min(deadline, self._stop_deadline)
        with self._lock:
            drivers = list(self._drivers.values())
        for d in drivers:
            d.halt()
        self.collectors.halt(deadline - SHIPPING_RESERVE)
        for d in drivers:
            if not d.join(left(deadline, SHIPPING_RESERVE)):
                log.warning("container %s: reader did not stop in time", d.info.short_id)
        # The logs are closed now: shippers send what is left, then stop.
        self.shipping.shutdown(deadline)
        log.info("pylog stopped: %d containers were being logged", len(drivers))

    def _cleanup_loop(self) -> None:
        while True:
            self.cleanup()
            if self._stopped.wait(CLEANUP_INTERVAL):
                return

    def _trim_loop(self) -> None:
        """Give memory back once quiet after a burst (see memtrim.py)."""
        trim = IdleTrim(self._activity)
        while not self._stopped.wait(TRIM_CHECK):
            try:
                trim.tick(time.monotonic())
            except Exception:  # never worth stopping the loop over
                log.debug("memory trim failed", exc_info=True)

    def _activity(self) -> int:
        """A number that changes while anything is stored (the shipping processes trim
        their own memory)."""
        total = 0
        for d in self.drivers():
            total += d.stats.bytes_received + d.stats.bytes_stored
        return total

    def cleanup(self) -> list[str]:
        """Remove logs of containers unused for the retention period (see README)."""
        try:
            removed = self.store.remove_unused(self.settings.retention_seconds)
        except OSError as exc:
            log.warning("cleanup failed: %s", exc)
            return []
        for container_id in removed:
            log.info("removed logs of container %s, unused for the retention period", container_id)
        return removed

    # -- endpoints -------------------------------------------------------------

    def start_logging(self, file: Any, info_json: Any) -> None:
        fifo, info = self._fifo_path(file), ContainerInfo.from_json(info_json)
        # Refused while a clear answer is still possible (see fdlimit). Reattached
        # FIFOs are not checked: their descriptors were counted when they started.
        self.fds.check_start()
        self._start(fifo, info)

    def _start(self, fifo: Path, info: ContainerInfo, *, reattach: bool = False) -> None:
        try:
            options = parse_log_opts(info.config)
            declarations = parse_declarations(
                info.container_labels, info.env, self.settings.log_prefixes
            )
        except OptionError as exc:
            raise RequestError(str(exc)) from None
        try:
            route = self.shipping.route(info, options, declarations)
        except RoutingError as exc:
            raise RequestError(str(exc)) from None
        with self._lock:
            if self._stopped.is_set():
                raise RequestError("pylog is shutting down")
            if fifo in self._drivers:
                raise RequestError(f"already logging {fifo}")
            directory = self.store.directory(info.container_id)
            new_directory = not directory.exists()
            logfile = self.store.acquire(info.container_id, options.rotation)
            try:
                driver = ContainerDriver(
                    fifo,
                    info,
                    options,
                    logfile,
                    max_frame=self.settings.max_frame,
                    on_done=self._driver_done,
                    resync=reattach,
                )
            except OSError as exc:
                self._undo_acquire(info.container_id, directory if new_directory else None)
                raise RequestError(f"cannot start logging: {exc}") from None
            except BaseException:
                self._undo_acquire(info.container_id, directory if new_directory else None)
                raise
            self._remember(fifo, info)
            self._drivers[fifo] = driver
            if route is not None:
                self.shipping.attach(info, logfile, route)
            # Under the lock, before the driver starts: the FIFO's end (detach) comes after.
            self.collectors.attach(
                fifo, info, declarations, options.rotation, self._file_log_opened(info, route)
            )
        driver.start()
        log.debug("container %s: reading %s", info.short_id, fifo.name)
        if not reattach:  # _reattach logs its own line
            log.info(
                "container %s (%s): logging started%s",
                info.short_id,
                info.name,
                f", shipping to Kafka topic {route.topic}" if route is not None else "",
            )

    def _file_log_opened(
        self, info: ContainerInfo, route: Route | None
    ) -> Callable[[Declaration, LogFile], None] | None:
        """What the collector tells of each declared file log it opens: shipped to
        its own topic when the container is routed to Kafka."""
        if route is None:
            return None

        def opened(declaration: Declaration, logfile: LogFile) -> None:
            self.shipping.attach_file(info, declaration, logfile, route)

        return opened

    def _undo_acquire(self, container_id: str, created: Path | None) -> None:
        """Release a log a failed start acquired, and remove its directory if this
        attempt created it: a refused ``docker run`` leaves nothing behind."""
        self.store.release(container_id)
        if created is not None and not self.store.is_active(container_id):
            shutil.rmtree(created, ignore_errors=True)

    def _remember(self, fifo: Path, info: ContainerInfo) -> None:
        """Write the container's Info and the FIFO record; a full disk must not fail
        ``docker run`` (the lines it cannot store are counted), so this only warns.

        Only the env the log-opts select is written: the rest (passwords) is not
        pylog's to keep, and nothing read back from these files needs it.
        """
        kept = kept_info(info.to_json())
        try:
            self.store.write_info(info.container_id, kept)
            self.attachments.record(fifo, kept)
        except OSError as exc:
            log.warning(
                "container %s: cannot record its info (%s); logging it anyway, "
                "but it will not be reattached if pylog restarts",
                info.short_id,
                exc,
            )

    def _reattach(self) -> None:
        """Read again every FIFO a previous pylog process was reading (see store.attachments)."""
        for fifo, info_json in self.attachments.recorded():
            try:
                if fifo.parent != self.settings.fifo_root or not stat.S_ISFIFO(
                    os.stat(fifo).st_mode
                ):
                    raise FileNotFoundError(fifo)
                info = ContainerInfo.from_json(info_json)
                self._start(fifo, info, reattach=True)
            except Exception as exc:
                # Whatever it is (gone, a log-opt or template this version rejects,
                # an Info that is not one): skip it, so the other FIFOs are read.
                # A FIFO that is gone is the usual case (its container stopped meanwhile).
                level = logging.INFO if isinstance(exc, FileNotFoundError) else logging.WARNING
                log.log(level, "not reattaching %s: %s", fifo.name[:64], _brief(exc))
                with contextlib.suppress(OSError):
                    self.attachments.forget(fifo)
                continue
            self.reattached += 1
            log.info("reattached container %s to %s", info.short_id, fifo.name)

    def stop_logging(self, file: Any) -> None:
        """Never fails: the driver finishes by itself when dockerd closes the FIFO."""
        try:
            fifo = self._fifo_path(file)
        except RequestError:
            return
        with self._lock:
            driver = self._drivers.get(fifo)
        if driver is not None:
            driver.mark_stopping()
            self.collectors.detach(fifo, driver.info.container_id, stopped=True)
            # Not a line count: dockerd sends this as the container exits, before
            # the rest of its FIFO is read.
            log.info("container %s: logging stopped", driver.info.short_id)

    def read_logs(
        self,
        info_json: Any,
        config_json: Any,
        consumer_alive: Callable[[], bool] = lambda: True,
    ) -> Iterator[bytes]:
        """Validate now, then return the framed LogEntry stream for ``docker logs``.

        The stream holds one of ``max_readers`` reader slots until it ends or is
        closed; with none free the request is refused (:class:`BusyError`) rather
        than queued, so streams can never take the threads StartLogging and
        StopLogging need (and a follow stream ends only after StopLogging).
        """
        info = ContainerInfo.from_json(info_json)
        config = ReadConfig.from_json(config_json)
        try:
            options = parse_log_opts(info.config)
        except OptionError:
            options = LogOptions()
        self.fds.check_read()
        if not self._reader_slots.acquire(blocking=False):
            raise BusyError(
                f"pylog is already serving {self.settings.max_readers} docker logs streams, "
                "the most it serves at once (plugin setting PYLOG_MAX_READERS); "
                "try again when one has ended"
            )
        try:
            if not config.follow:
                self._wait_for_stopped(info.container_id, STOPPED_DRAIN_WAIT)
            logfile = self.store.reader(info.container_id, options.rotation)
            read_opts = ReadOptions(
                tail=config.tail,
                since_ns=config.since_ns,
                until_ns=config.until_ns,
                follow=config.follow,
            )
            stopped = self._stopped

            def alive() -> bool:
                return not stopped.is_set() and consumer_alive()

            frames = readback.frames(read_batches(logfile, read_opts, alive), info.short_id)
        except BaseException:
            self._reader_slots.release()
            raise
        return LogStream(frames, self._reader_slots.release, info.short_id)

    def _wait_for_stopped(self, container_id: str, timeout: float) -> None:
        """Let the drivers of a container that just stopped store the rest of its FIFO.

        dockerd reports a container stopped (``docker wait`` returns) once it has
        written every line to the FIFO and sent StopLogging, but the last of those
        lines may still be on their way into the log. A ``docker logs`` right
        then must not miss them, as it would not with json-file.
        """
        with self._lock:
            stopping = [
                d
                for d in self._drivers.values()
                if d.stopping and d.info.container_id == container_id
            ]
        deadline = time.monotonic() + timeout
        for driver in stopping:
            driver.join(max(0.0, deadline - time.monotonic()))

    def metrics(self) -> bytes:
        """The Prometheus text exposition, read from the live counters now."""
        return exposition(self._metrics)

    def status(self) -> dict[str, Any]:
        """Health, containers being logged and shipped, broker reachability (``pylog status``)."""
        return status_report(self.snapshot())

    def snapshot(self) -> Snapshot:
        """Every counter /metrics and /status show, copied now into plain data.

        Ingest's counters are read here (each a plain int its one writer
        updates); shipping's are the shipping processes' last reports (at most
        ``ipc.REPORT_INTERVAL`` old).
        """
        fifos = [_ingest_counters(d) for d in self.drivers()]
        shippers, producers, abandoned = self.shipping.counters({f.container_id for f in fifos})
        running, restarts = self.shipping.processes()
        return Snapshot(
            fifos=fifos,
            file_logs=self.collectors.counters(),
            shippers=shippers,
            producers=producers,
            abandoned=abandoned,
            brokers=tuple(self.settings.kafka.brokers),
            fifos_reattached=self.reattached,
            damaged_files=DAMAGE.files,
            shipping_processes=running,
            shipping_restarts=restarts,
            shipping_stats={
                i: st for i, pid in self.shipping.pids() if (st := read_stat(pid)) is not None
            },
        )

    # -- internals -------------------------------------------------------------

    def _fifo_path(self, file: Any) -> Path:
        if not isinstance(file, str) or not file:
            raise RequestError("File must be a non-empty string")
        if "\x00" in file:
            raise RequestError(f"File must not contain a NUL byte, got {file!r}")
        path = Path(file)
        root = self.settings.fifo_root
        if not path.is_absolute() or path.parent != root or path.name in ("", ".", ".."):
            raise RequestError(f"File must be a FIFO directly under {root}, got {file!r}")
        return path

    def _driver_done(self, driver: ContainerDriver, eof: bool) -> None:
        with self._lock:
            if self._drivers.get(driver.fifo) is driver:
                del self._drivers[driver.fifo]
        if eof:
            self.collectors.detach(driver.fifo, driver.info.container_id, stopped=False)
        try:
            if eof:
                # dockerd closed it: logging is over. Otherwise (shutdown) the next
                # pylog process reattaches to it.
                self.attachments.forget(driver.fifo)
        except OSError as exc:
            # A record left behind names a FIFO that is gone; the next start drops it.
            log.warning("container %s: cannot forget its FIFO: %s", driver.info.short_id, exc)
        finally:
            self.store.release(driver.info.container_id)
        with contextlib.suppress(OSError):
            self.store.touch(driver.info.container_id)
        errors = driver.frame_errors
        if errors.total() or driver.stats.lines_dropped_store:
            log.warning(
                "container %s: logging ended with %d corrupt, %d oversize, %d truncated frames "
                "and %d lines the store refused",
                driver.info.short_id,
                errors.corrupt,
                errors.oversize,
                errors.truncated,
                driver.stats.lines_dropped_store,
            )

    def drivers(self) -> list[ContainerDriver]:
        with self._lock:
            return list(self._drivers.values())


def _brief(exc: BaseException) -> str:
    """An exception for pylog's log, cut short: a stored record may hold anything."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _ingest_counters(driver: ContainerDriver) -> IngestCounters:
    s, e = driver.stats, driver.frame_errors
    return IngestCounters(
        container_id=driver.info.container_id,
        container_name=driver.info.container_name,
        lines_received=s.lines_received,
        bytes_received=s.bytes_received,
        lines_stored=s.lines_stored,
        bytes_stored=s.bytes_stored,
        lines_dropped_store=s.lines_dropped_store,
        frame_errors={"corrupt": e.corrupt, "oversize": e.oversize, "truncated": e.truncated},
        frame_skipped_bytes=e.skipped_bytes,
    )
