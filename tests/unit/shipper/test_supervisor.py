"""The supervisor starts, feeds, restarts and stops shipping processes (a stand-in
process that speaks the protocol: see stand_in_worker.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pylog.config import Settings
from pylog.shipper import ipc
from pylog.shipper.supervisor import Supervisor
from pylog.store.logfile import LogState
from pylog.store.reader import Position

from ...helpers import wait_for

STAND_IN = [sys.executable, str(Path(__file__).with_name("stand_in_worker.py"))]


class Owner:
    """What the manager is to the supervisor: the shipped logs and what came back."""

    def __init__(self) -> None:
        self.states: dict[str, LogState] = {}
        self.messages: list[tuple[int, ipc.FromWorker]] = []
        #: Containers whose Ship is given once only (not again after a restart).
        self.once: set[str] = set()
        self.once_given: set[str] = set()
        self._lock = threading.Lock()

    def ship_for(self, cid: str) -> ipc.Ship | None:
        state = self.states.get(cid)
        if state is None or cid in self.once_given:
            return None
        if cid in self.once:
            self.once_given.add(cid)
        info = {"pad": "x" * (1 << 20)} if cid.startswith("big") else {}
        return ipc.Ship(cid, info, state, Position(0, 0))

    def state_of(self, cid: str) -> LogState | None:
        return self.states.get(cid)

    def shipped(self) -> list[str]:
        return list(self.states)

    def on_message(self, index: int, msg: ipc.FromWorker) -> None:
        with self._lock:
            self.messages.append((index, msg))

    def progress(self, cid: str) -> list[int]:
        """The pids of the processes that took a Ship of ``cid``, in order."""
        with self._lock:
            return [
                m.read_generation
                for _, m in self.messages
                if isinstance(m, ipc.Progress) and m.container_id == cid
            ]

    def finished(self, cid: str) -> bool:
        with self._lock:
            return any(
                isinstance(m, ipc.Finished) and m.container_id == cid for _, m in self.messages
            )


@pytest.fixture
def owner() -> Iterator[Owner]:
    yield Owner()


def _supervisor(owner: Owner, processes: int = 1, send_timeout: float = 10.0) -> Supervisor:
    return Supervisor(
        Settings(shipping_processes=processes),
        ship_for=owner.ship_for,
        state_of=owner.state_of,
        shipped=owner.shipped,
        on_message=owner.on_message,
        command=STAND_IN,
        send_timeout=send_timeout,
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie does not, nor one reaped while we look."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        # Reaped between the kill and the read: /proc answers ESRCH or ENOENT.
        return False


def test_ship_grow_close_and_stop(owner: Owner) -> None:
    sup = _supervisor(owner)
    owner.states["a"] = LogState(0, 10, False)
    sup.ship("a")
    wait_for(lambda: bool(owner.progress("a")), what="Progress for a")
    ((_, pid),) = sup.pids()
    assert set(owner.progress("a")) == {pid}  # a Ship may come twice: harmless
    owner.states["a"] = LogState(0, 20, True)
    sup.changed("a")
    wait_for(lambda: owner.finished("a"), what="Finished for a")
    t = time.monotonic()
    sup.stop(time.monotonic() + 5)
    assert time.monotonic() - t < 2
    assert not _alive(pid)
    assert sup.running() == 0 and sup.restarts == 0


def test_containers_are_spread_over_the_processes_by_id(owner: Owner) -> None:
    sup = _supervisor(owner, processes=3)
    ids = [f"c{i}" for i in range(30)]
    for cid in ids:
        owner.states[cid] = LogState(0, 0, False)
        sup.ship(cid)
    wait_for(lambda: all(owner.progress(c) for c in ids), what="every Ship answered")
    by_pid: dict[int, set[int]] = {}
    for index, msg in owner.messages:
        if isinstance(msg, ipc.Progress):
            by_pid.setdefault(msg.read_generation, set()).add(index)
            assert index == sup.index(msg.container_id)
    assert len(by_pid) == 3 and all(len(v) == 1 for v in by_pid.values())
    sup.stop(time.monotonic() + 5)


def test_a_process_that_dies_is_restarted_and_given_every_log_again(
    owner: Owner, caplog: pytest.LogCaptureFixture
) -> None:
    sup = _supervisor(owner)
    owner.states["a"] = LogState(0, 0, False)
    sup.ship("a")
    wait_for(lambda: bool(owner.progress("a")), what="first Progress")
    first = owner.progress("a")[0]
    owner.states["die"] = LogState(0, 0, False)
    sup.ship("die")  # the stand-in exits 3 on it
    # The restarted process gets "a" (and "die" again: it dies again, and is restarted
    # again, later each time).
    wait_for(lambda: len(set(owner.progress("a"))) >= 2, timeout=15, what="a re-shipped")
    assert owner.progress("a")[0] == first
    assert sup.restarts >= 1
    assert any("exited with status 3" in r.getMessage() for r in caplog.records)
    del owner.states["die"]
    sup.stop(time.monotonic() + 5)


def test_a_process_that_stops_reading_is_killed_and_restarted(owner: Owner) -> None:
    sup = _supervisor(owner, send_timeout=1.0)
    owner.states["hang"] = LogState(0, 0, False)
    owner.once.add("hang")  # the restarted process must not hang too
    sup.ship("hang")
    wait_for(lambda: "hang" in owner.once_given, what="the Ship that hangs it sent")
    ((_, pid),) = sup.pids()
    # Fill its socket: Ships of 1 MiB each, until a send times out.
    for i in range(8):
        owner.states[f"big{i}"] = LogState(0, 0, False)
        sup.ship(f"big{i}")
    wait_for(lambda: not _alive(pid), timeout=20, what="hung process killed")
    wait_for(lambda: sup.restarts == 1 and sup.running() == 1, timeout=15, what="restarted")
    # The new process gets every log (the hung one's Ships too) and answers.
    wait_for(lambda: bool(owner.progress("big7")), what="big7 shipped by the new process")
    sup.stop(time.monotonic() + 5)


def test_a_process_that_ignores_stop_is_killed_at_the_deadline(owner: Owner) -> None:
    sup = _supervisor(owner)
    owner.states["deaf"] = LogState(0, 0, False)
    sup.ship("deaf")
    wait_for(lambda: bool(owner.progress("deaf")), what="Progress")
    ((_, pid),) = sup.pids()
    t = time.monotonic()
    sup.stop(t + 1.5)
    took = time.monotonic() - t
    assert 1.4 <= took < 3
    assert not _alive(pid)
