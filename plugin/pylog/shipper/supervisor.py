"""The shipping processes, seen from the main process: started, fed, restarted, stopped.

:class:`Supervisor` starts ``PYLOG_SHIPPING_PROCESSES`` shipping processes
(``python -m pylog.shipper.worker``) the first time a log is to be shipped, and
spreads the containers over them by container ID (a container's declared file
logs go with it). Logs are named by log id (:func:`~.ipc.log_id`). Two kinds of thread serve
them, and nothing else touches their sockets:

* one *feeder* thread writes every message: Ship for new logs, Grew for logs
  whose state changed (marked by :meth:`Supervisor.changed`, which only adds
  the ID to a set: a FIFO reader never waits on a shipping process), Hello and
  the Ships of every log again when it restarts a process, Stop at the end.
  A process that does not take a message within :data:`SEND_TIMEOUT` is
  killed and restarted;
* one *receiver* thread per process reads what it sends (Progress, Finished,
  Report) and hands it to the owner's callback; at end of stream it reaps the
  process and asks the feeder to restart it, after a capped, doubling delay.

A process that dies loses nothing: the logs are on disk, the acknowledged
positions too, and the restarted process ships from them (at least once).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..deadline import left
from ..store.logfile import LogState
from . import ipc
from .backoff import Backoff

log = logging.getLogger(__name__)

#: A shipping process that does not take a message for this long is hung: killed.
SEND_TIMEOUT = 10.0
#: Grew messages go out at most this often per process: a busy log appends
#: thousands of times a second, and its shipper reads every half second at most.
GREW_INTERVAL = 0.01
#: Delay before restarting a process that died: doubles from MIN to MAX while it
#: keeps dying, so a process that cannot start costs little.
RESTART_MIN = 0.5
RESTART_MAX = 30.0
#: How long a process whose socket ended may take to exit before it is killed.
EXIT_WAIT = 2.0
#: A process that ran this long before dying was working: its next restart is quick.
STABLE_AFTER = 60.0

#: What the owner answers for a log id: its Ship message now, or None if it is no
#: longer shipped.
ShipFor = Callable[[str], ipc.Ship | None]
#: The owner's log states, read when they are sent.
StateOf = Callable[[str], LogState | None]
#: Called on the receiver thread with each message from a process.
OnMessage = Callable[[int, ipc.FromWorker], None]


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    dead: bool = True
    """Needs (re)starting; set by its receiver at end of stream."""
    receiver: threading.Thread | None = None


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        ship_for: ShipFor,
        state_of: StateOf,
        shipped: Callable[[], list[str]],
        on_message: OnMessage,
        command: list[str] | None = None,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.settings = settings
        #: How a shipping process is started (tests start a stand-in).
        self.command = command or [sys.executable, "-m", "pylog.shipper.worker"]
        self._send_timeout = send_timeout
        self.count = max(1, settings.shipping_processes)
        self._ship_for = ship_for
        self._state_of = state_of
        self._shipped = shipped
        self._on_message = on_message
        self._cond = threading.Condition()
        self._new: list[str] = []
        self._dirty: set[str] = set()
        self._stop_deadline: float | None = None
        self._children = [_Child(i) for i in range(self.count)]
        self._backoff = [Backoff(RESTART_MIN, RESTART_MAX) for _ in range(self.count)]
        self.restarts = 0
        """Processes restarted after they died (not counting the first starts)."""
        self._feeder = threading.Thread(target=self._feed, name="pylog-ship-feeder", daemon=True)
        self._feeder.start()

    # -- what the owner calls (never blocks on a process) ---------------------------

    def index(self, lid: str) -> int:
        """The process that ships a log (by log id, :func:`~.ipc.log_id`): that of its
        container, the same for the container's whole life."""
        container_id, _ = ipc.split_log_id(lid)
        return zlib.crc32(container_id.encode()) % self.count

    def ship(self, container_id: str) -> None:
        with self._cond:
            self._new.append(container_id)
            self._cond.notify()

    def changed(self, container_id: str) -> None:
        """A shipped log grew, rotated or closed (LogFile hook: cheap, never waits)."""
        with self._cond:
            if container_id not in self._dirty:
                self._dirty.add(container_id)
                self._cond.notify()

    def running(self) -> int:
        with self._cond:
            return sum(1 for c in self._children if not c.dead)

    def pids(self) -> list[tuple[int, int]]:
        """``(index, pid)`` of the shipping processes running now."""
        with self._cond:
            procs = [(c.index, c.proc) for c in self._children if not c.dead]
        return [(i, p.pid) for i, p in procs if p is not None and p.poll() is None]

    def stop(self, deadline: float) -> None:
        """Send the last states and Stop, wait for the processes to exit by ``deadline``
        (``time.monotonic()``), kill those that have not. Safe to call twice."""
        with self._cond:
            if self._stop_deadline is None:
                self._stop_deadline = deadline
            self._cond.notify()
        self._feeder.join(left(deadline))
        for child in self._children:
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(left(deadline))
            except subprocess.TimeoutExpired:
                log.warning("shipping process %d did not stop in time: killed", child.index)
                proc.kill()
                proc.wait()
            if child.receiver is not None:
                child.receiver.join(left(deadline) + EXIT_WAIT)

    # -- the feeder thread -----------------------------------------------------------

    def _feed(self) -> None:
        while True:
            with self._cond:
                while (
                    not self._new
                    and not self._dirty
                    and self._stop_deadline is None
                    and not self._due_restart()
                ):
                    self._cond.wait(self._until_restart())
                new, self._new = self._new, []
                dirty, self._dirty = self._dirty, set()
                stopping = self._stop_deadline
            restarted = self._restart_dead()
            for cid in new:
                if self.index(cid) not in restarted:  # a restart sent every log already
                    self._send_ship(cid)
            self._send_states(dirty - set(new))
            if stopping is not None:
                self._send_stops(stopping)
                return
            time.sleep(GREW_INTERVAL)

    def _due_restart(self) -> bool:
        now = time.monotonic()
        return any(c.dead and c.restart_at <= now for c in self._children)

    def _until_restart(self) -> float | None:
        dead = [c.restart_at for c in self._children if c.dead]
        return max(0.0, min(dead) - time.monotonic()) if dead else None

    def _restart_dead(self) -> set[int]:
        """Start the processes that are due; returns their indexes."""
        started: set[int] = set()
        now = time.monotonic()
        for child in self._children:
            due = child.dead and child.restart_at <= now and self._stop_deadline is None
            if due and self._start(child):
                started.add(child.index)
        return started

    def _start(self, child: _Child) -> bool:
        first = child.proc is None
        parent, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [*self.command, "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            parent.close()
            log.error("cannot start shipping process %d: %s", child.index, exc)
            child.restart_at = time.monotonic() + self._backoff[child.index].next()
            return False
        finally:
            theirs.close()
        with self._cond:
            child.proc, child.sock, child.dead = proc, parent, False
            child.started_at = time.monotonic()
            if not first:
                self.restarts += 1
        child.receiver = threading.Thread(
            target=self._receive,
            args=(child, proc, parent),
            name=f"pylog-ship-recv-{child.index}",
            daemon=True,
        )
        child.receiver.start()
        log.info("shipping process %d started (pid %d)", child.index, proc.pid)
        self._send(child, ipc.Hello(self.settings, child.index, self.count))
        for cid in self._shipped():
            if self.index(cid) == child.index:
                self._send_ship(cid)
        return True

    def _send_ship(self, cid: str) -> None:
        msg = self._ship_for(cid)
        if msg is not None:
            self._send(self._children[self.index(cid)], msg)

    def _send_states(self, ids: set[str]) -> None:
        per: dict[int, dict[str, LogState]] = {}
        for cid in ids:
            state = self._state_of(cid)
            if state is not None:
                per.setdefault(self.index(cid), {})[cid] = state
        for index, states in per.items():
            self._send(self._children[index], ipc.Grew(states))

    def _send_stops(self, deadline: float) -> None:
        for child in self._children:
            if not child.dead:
                self._send(child, ipc.Stop(deadline))

    def _send(self, child: _Child, msg: ipc.ToWorker) -> None:
        sock = child.sock
        if child.dead or sock is None:
            return  # its restart sends everything again
        try:
            _send_within(sock, ipc.encode(msg), self._send_timeout)
        except OSError as exc:  # TimeoutError included: hung
            log.error(
                "shipping process %d does not take messages (%s): killing it", child.index, exc
            )
            self._kill(child)

    def _kill(self, child: _Child) -> None:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.kill()
        if child.sock is not None:
            # Wakes the receiver, which reaps the process and schedules the restart.
            child.sock.shutdown(socket.SHUT_RDWR)

    # -- the receiver threads --------------------------------------------------------

    def _receive(self, child: _Child, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        while True:
            try:
                msg = ipc.read_message(sock)
            except ConnectionResetError:
                break  # it exited with messages unread: its exit is logged below
            except (OSError, ipc.MessageError) as exc:
                log.error("shipping process %d: %s", child.index, exc)
                break
            if msg is None:
                break
            try:
                self._on_message(child.index, msg)
            except Exception:
                log.exception("handling a message of shipping process %d failed", child.index)
        try:
            code = proc.wait(EXIT_WAIT)  # it closed its socket to exit, or was killed
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._cond:
            stopping = self._stop_deadline is not None
            ran = time.monotonic() - child.started_at
            if ran >= STABLE_AFTER:
                self._backoff[child.index].reset()
            delay = self._backoff[child.index].next()
            child.dead = True
            child.restart_at = time.monotonic() + delay
            sock.close()
            child.sock = None
            self._cond.notify()
        if stopping and code == 0:
            log.info("shipping process %d stopped", child.index)
        elif not stopping:
            log.error(
                "shipping process %d (pid %d) exited with %s after %.0f s; restarting it in "
                "%.1f s, it ships on from the acknowledged positions",
                child.index,
                proc.pid,
                _exit_reason(code),
                ran,
                delay,
            )


def _send_within(sock: socket.socket, data: bytes, timeout: float) -> None:
    """``sendall`` that gives up after ``timeout`` s (TimeoutError).

    Each send is non-blocking by its flag, not by the socket's mode: the mode is
    shared with the receiver thread's blocking reads of the same socket.
    """
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    while view:
        try:
            sent = sock.send(view, socket.MSG_DONTWAIT)
        except BlockingIOError:
            wait = deadline - time.monotonic()
            if wait <= 0 or not poller.poll(wait * 1000):
                raise TimeoutError(f"not taken within {timeout:g} s") from None
            continue
        view = view[sent:]


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
