"""One reader conformance suite, run against every variant of the files."""

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from pylog.config import RotationPolicy
from pylog.store import reader
from pylog.store.logfile import LogFile, LogState
from pylog.store.reader import Position, ReadOptions, follow_from, read_records

from .conftest import T0, make_records

REC = len(make_records(1)[0])

VARIANTS = {
    "single-file": RotationPolicy(-1, 1, False),
    "rotated": RotationPolicy(10 * REC, 4, False),
    "rotated-gzip": RotationPolicy(10 * REC, 4, True),
}


@pytest.fixture(params=list(VARIANTS))
def policy(request: pytest.FixtureRequest) -> RotationPolicy:
    return VARIANTS[request.param]


@pytest.fixture
def log(tmp_path: Path, policy: RotationPolicy) -> Iterator[LogFile]:
    lf = LogFile(tmp_path / "c", policy)
    yield lf
    lf.close()


def kept(policy: RotationPolicy, total: int) -> int:
    """How many of ``total`` records stay on disk under ``policy``."""
    if policy.max_size < 0:
        return total
    per_file = policy.max_size // REC
    current = total - ((total - 1) // per_file) * per_file
    return min(total, current + per_file * (policy.max_files - 1))


def read(lf: LogFile, **kw: object) -> list[bytes]:
    return list(read_records(lf, ReadOptions(**kw)))  # type: ignore[arg-type]


def test_reads_everything_kept_in_order(log: LogFile, policy: RotationPolicy) -> None:
    recs = make_records(35)
    log.append(b"".join(recs))
    assert read(log) == recs[35 - kept(policy, 35) :]


@pytest.mark.parametrize("n", [0, 1, 5, 10, 11, 25, 1000])
def test_tail(log: LogFile, policy: RotationPolicy, n: int) -> None:
    recs = make_records(35)
    log.append(b"".join(recs))
    available = recs[35 - kept(policy, 35) :]
    assert read(log, tail=n) == (available[-n:] if n else [])


def test_tail_of_empty_log(log: LogFile) -> None:
    assert read(log, tail=10) == []
    assert read(log) == []


def test_since_until(log: LogFile) -> None:
    recs = make_records(35)
    log.append(b"".join(recs))

    def t(i: int) -> int:  # record i's time
        return T0 + i * 1000

    assert read(log, since_ns=t(30)) == recs[30:]
    assert read(log, since_ns=t(30), until_ns=t(32)) == recs[30:33]
    assert read(log, since_ns=t(0) + 1, until_ns=t(1) - 1) == []
    assert read(log, since_ns=t(0) - 5, until_ns=t(1) - 1) == recs[:1]
    # json-file order: tail first, then the time window.
    assert read(log, tail=3, since_ns=t(33)) == recs[33:35]


def test_follow_streams_appends_across_rotations(log: LogFile) -> None:
    recs = make_records(100)
    log.append(b"".join(recs[:5]))
    got: list[bytes] = []
    it = read_records(log, ReadOptions(tail=2, follow=True))
    got.append(next(it))
    got.append(next(it))
    assert got == recs[3:5]

    # Appends and reads take turns: a follower that falls more than max-file files
    # behind loses the deleted ones (as with json-file), which a writer thread
    # racing it on a loaded machine did once.
    for i in range(5, 100, 7):
        chunk = recs[i : i + 7]
        log.append(b"".join(chunk))
        got += [next(it) for _ in chunk]
    log.close()
    assert list(it) == []  # ends by itself when the log closes
    assert got == recs[3:100]


def test_follow_ends_when_consumer_leaves(log: LogFile) -> None:
    log.append(b"".join(make_records(3)))
    alive = threading.Event()
    alive.set()
    it = read_records(log, ReadOptions(follow=True), consumer_alive=alive.is_set)
    assert len([next(it) for _ in range(3)]) == 3
    threading.Timer(0.2, alive.clear).start()
    start = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - start < 3


def test_follow_until_stops_at_first_later_record(log: LogFile) -> None:
    recs = make_records(20)
    log.append(b"".join(recs[:5]))
    it = read_records(log, ReadOptions(follow=True, until_ns=T0 + 12 * 1000))
    threading.Timer(0.1, lambda: log.append(b"".join(recs[5:]))).start()
    assert list(it) == recs[:13]


def test_follow_on_a_closed_log_ends_after_reading(tmp_path: Path, policy: RotationPolicy) -> None:
    lf = LogFile(tmp_path / "c", policy)
    recs = make_records(15)
    lf.append(b"".join(recs))
    lf.close()
    view = LogFile(tmp_path / "c", policy, writable=False)
    assert list(read_records(view, ReadOptions(follow=True))) == recs[15 - kept(policy, 15) :]


def test_many_concurrent_readers_while_writing(tmp_path: Path, policy: RotationPolicy) -> None:
    # Keep every file so that no follower can lose lines to rotation (that case is tested below).
    log = LogFile(tmp_path / "c", RotationPolicy(policy.max_size, 100, policy.compress))
    recs = make_records(400)
    results: list[list[bytes]] = []
    lock = threading.Lock()
    started = threading.Barrier(9)

    def follower() -> None:
        it = read_records(log, ReadOptions(follow=True))
        started.wait()
        out = list(it)
        with lock:
            results.append(out)

    def snapshot_reader() -> None:
        started.wait()
        for _ in range(20):
            out = read(log, tail=5)
            assert len(out) <= 5
            assert all(r in recs for r in out)

    threads = [threading.Thread(target=follower) for _ in range(6)]
    threads += [threading.Thread(target=snapshot_reader) for _ in range(2)]
    for th in threads:
        th.start()
    started.wait()
    for i in range(0, 400, 9):
        log.append(b"".join(recs[i : i + 9]))
    log.close()
    for th in threads:
        th.join(10)
    assert len(results) == 6
    for out in results:
        assert out == recs


def test_slow_follower_that_misses_rotations_resumes_at_oldest_kept(tmp_path: Path) -> None:
    policy = RotationPolicy(10 * REC, 2, False)
    lf = LogFile(tmp_path / "c", policy)
    recs = make_records(100)
    lf.append(b"".join(recs[:5]))
    it = read_records(lf, ReadOptions(follow=True))
    assert [next(it) for _ in range(5)] == recs[:5]
    lf.append(b"".join(recs[5:100]))  # many rotations before the follower looks again
    lf.close()
    rest = list(it)
    # It first finishes its own (rotated-away) file, then continues with what is still kept.
    assert rest[:5] == recs[5:10]
    assert rest[-10:] == recs[90:100]
    assert rest == sorted(rest)


def test_follow_from_positions_resume_exactly(log: LogFile) -> None:
    recs = make_records(60)
    log.append(b"".join(recs[:33]))
    log.close()
    got: list[bytes] = []
    positions: list[Position] = []
    for batch, pos in follow_from(log, Position(0, 0)):
        got += batch
        positions.append(pos)
    assert got == recs[33 - len(got) : 33]
    # Resuming at any reported position yields exactly what came after it.
    seen = 0
    for pos in positions:
        seen_batches = [b for b, _ in follow_from(log, pos)]
        rest = [r for b in seen_batches for r in b]
        assert got[: len(got) - len(rest)] + rest == got
        seen += 1
    assert seen == len(positions)


def test_follow_from_mid_file_of_every_kind(tmp_path: Path, policy: RotationPolicy) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(policy.max_size, 100, policy.compress))
    recs = make_records(35)
    lf.append(b"".join(recs))
    lf.close()
    view = LogFile(tmp_path / "c", lf.policy, writable=False)
    # Start two records into generation 1 (compressed in the gzip variant).
    if policy.max_size > 0:
        assert lf.state().generation == 3  # 10 records a file
        start = Position(1, len(recs[10]) + len(recs[11]))
    else:
        start = Position(0, sum(map(len, recs[:12])))
    got = [r for b, _ in follow_from(view, start) for r in b]
    assert got == recs[12:]


def test_follow_from_hands_a_large_backlog_over_in_bounded_batches(tmp_path: Path) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(60_000)
    lf.append(b"".join(recs))
    lf.close()
    got: list[bytes] = []
    last = Position(0, 0)
    for batch, pos in follow_from(lf, Position(0, 0)):
        assert sum(map(len, batch)) <= (1 << 20) + (2 << 16)
        assert pos > last and pos.offset == last.offset + sum(map(len, batch))
        got += batch
        last = pos
    assert got == recs


class Timeline:
    """Simulated time for ``follow_from``: its clock, and a wait that runs the writes
    scheduled up to its timeout, returning at the first that changes the log (as the
    log's condition variable wakes a follower) or at the timeout.

    The follower runs in the test's thread on a real :class:`LogFile`; only time and
    blocking are simulated, so each batch's moment is exact, not a sleep's tolerance.
    """

    #: A follower still waiting this far into simulated time has hung.
    HORIZON = 60.0

    def __init__(self, lf: LogFile) -> None:
        self.lf = lf
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], object]]] = []
        self.waits: list[tuple[float, float]] = []
        """Every wait: (when, timeout)."""

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` at simulated time ``when`` (in order of scheduling when equal)."""
        self._events.append((when, len(self._events), action))
        self._events.sort(key=lambda e: (e[0], e[1]))

    def clock(self) -> float:
        return self.now

    def wait(self, seen: LogState, timeout: float) -> LogState:
        assert timeout > 0
        assert self.now < self.HORIZON, "the follower waits on with nothing to come"
        self.waits.append((self.now, timeout))
        deadline = self.now + timeout
        state = self.lf.state()
        while state == seen and self._events and self._events[0][0] <= deadline:
            when, _, action = self._events.pop(0)
            self.now = max(self.now, when)
            action()
            state = self.lf.state()
        if state == seen:
            self.now = deadline
        return state

    def follow(
        self, consumer_alive: Callable[[], bool] = lambda: True
    ) -> list[tuple[list[bytes], float]]:
        """``follow_from`` the start to its end: every batch, with when it was read."""
        return [
            (batch, self.now)
            for batch, _ in follow_from(
                self.lf, Position(0, 0), consumer_alive, clock=self.clock, wait=self.wait
            )
        ]


def at_times(got: list[tuple[list[bytes], float]]) -> list[tuple[list[bytes], float]]:
    """Batch times rounded to the microsecond (simulated times are sums of floats)."""
    return [(batch, round(at, 6)) for batch, at in got]


@pytest.mark.timeout(30)
def test_follow_from_reads_a_busy_log_a_batch_per_interval(tmp_path: Path) -> None:
    """A line every 15 ms comes a batch per FOLLOW_FROM_INTERVAL (0.5 s), not a batch
    per line: each wake-up of a shipper costs a send through the producer, whatever it
    carries. The first line is read at once; the close ends the holding back."""
    assert reader.FOLLOW_FROM_INTERVAL == 0.5
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(80)  # written from 0 s to 1.185 s
    tl = Timeline(lf)
    for i, rec in enumerate(recs):
        tl.at(i * 0.015, partial(lf.append, rec))
    tl.at(1.2, lf.close)
    assert (
        at_times(tl.follow())
        == [
            (recs[0:1], 0.0),
            (recs[1:34], 0.5),  # up to 0.495 s
            (recs[34:67], 1.0),  # 0.51 s to 0.99 s: the interval runs from the last read
            (recs[67:80], 1.2),  # closed: read at once
        ]
    )


@pytest.mark.timeout(30)
def test_follow_from_reads_at_once_after_a_quiet_spell(tmp_path: Path) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(2)
    lf.append(recs[0])
    tl = Timeline(lf)
    tl.at(0.8, lambda: lf.append(recs[1]))
    tl.at(1.1, lf.close)
    # The interval since the last read had passed: no holding back.
    assert at_times(tl.follow()) == [([recs[0]], 0.0), ([recs[1]], 0.8)]


@pytest.mark.timeout(30)
def test_follow_from_reads_as_soon_as_the_busy_size_is_waiting(tmp_path: Path) -> None:
    """A fast log (appends every 5 ms, each over half of FOLLOW_FROM_BUSY_BYTES) is
    read at the append that brings FOLLOW_FROM_BUSY_BYTES, never held back for the
    interval: the batches are large anyway, and the lines must not wait."""
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    per_chunk = -(-reader.FOLLOW_FROM_BUSY_BYTES // 2 // REC)
    assert per_chunk * REC < reader.FOLLOW_FROM_BUSY_BYTES <= 2 * per_chunk * REC
    recs = make_records(9 * per_chunk)
    chunks = [recs[i : i + per_chunk] for i in range(0, len(recs), per_chunk)]
    tl = Timeline(lf)
    for i, chunk in enumerate(chunks):
        tl.at(i * 0.005, partial(lf.append, b"".join(chunk)))
    tl.at(0.3, lf.close)
    assert at_times(tl.follow()) == [
        (chunks[0], 0.0),  # the first read is never held back
        *((chunks[i] + chunks[i + 1], round((i + 1) * 0.005, 6)) for i in range(1, 9, 2)),
    ]


@pytest.mark.timeout(30)
def test_follow_from_reads_a_burst_after_a_small_write_at_once(tmp_path: Path) -> None:
    """A small write, then a burst: the burst must not wait out the interval that
    the small write started (a paced container writes exactly like this)."""
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(1002)
    burst = b"".join(recs[2:])
    assert len(burst) >= reader.FOLLOW_FROM_BUSY_BYTES
    tl = Timeline(lf)
    tl.at(0.0, lambda: lf.append(recs[0]))
    tl.at(0.05, lambda: lf.append(recs[1]))  # held back: small, within the interval
    tl.at(0.1, lambda: lf.append(burst))
    tl.at(0.7, lf.close)
    assert at_times(tl.follow()) == [(recs[0:1], 0.0), (recs[1:], 0.1)]


@pytest.mark.timeout(30)
def test_follow_from_asks_after_its_consumer_each_quiet_check_interval(tmp_path: Path) -> None:
    """With nothing new, ``consumer_alive`` is asked FOLLOW_CHECK_INTERVAL (1 s) after
    the last change (the shipper expires its partial lines then), and the follower ends
    when it says no."""
    assert reader.FOLLOW_CHECK_INTERVAL == 1.0
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(2)
    lf.append(recs[0])
    tl = Timeline(lf)
    tl.at(0.7, lambda: lf.append(recs[1]))
    asked: list[float] = []

    def alive() -> bool:
        asked.append(round(tl.now, 6))
        return len(asked) < 2

    assert at_times(tl.follow(alive)) == [([recs[0]], 0.0), ([recs[1]], 0.7)]
    assert asked == [1.7, 2.7]
    lf.close()


@pytest.mark.timeout(30)
def test_follow_from_is_woken_by_an_append_while_holding_back(tmp_path: Path) -> None:
    """The production wait, the log's condition variable, wakes a held-back follower at
    each append. The clock stands still, so the interval never ends: only being woken
    by the burst (and finding FOLLOW_FROM_BUSY_BYTES waiting) delivers it; a follower
    that slept through its hold instead would never read it."""
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(1002)
    lf.append(recs[0])
    holding = threading.Event()

    def wait(seen: LogState, timeout: float) -> LogState:
        if seen.size > 0:  # rec 1 is there and held back
            holding.set()
        return lf.wait_for_change(seen, timeout)

    it = follow_from(lf, Position(0, 0), clock=lambda: 0.0, wait=wait)
    assert next(it)[0] == recs[:1]
    lf.append(recs[1])
    writer = threading.Thread(
        target=lambda: holding.wait(20) and lf.append(b"".join(recs[2:])), daemon=True
    )
    writer.start()
    assert next(it)[0] == recs[1:]
    writer.join()
    lf.close()
    assert list(it) == []


@pytest.mark.parametrize("cut", ["half", "header", "garbage"])
def test_a_damaged_gzip_file_ends_its_part_cleanly_and_is_counted(tmp_path: Path, cut: str) -> None:
    """A rotated file cut short or corrupt: readers get the records before the damage
    and every later file, never an exception."""
    lf = LogFile(tmp_path / "c", RotationPolicy(10 * REC, 100, True))
    recs = make_records(50)
    for r in recs:
        lf.append(r)
    lf.close()
    damaged = tmp_path / "c" / "json.log.2.gz"
    data = damaged.read_bytes()
    damaged.write_bytes(
        {"half": data[: len(data) // 2], "header": data[:5], "garbage": b"not gzip" * 50}[cut]
    )
    before = reader.DAMAGE.files
    lf = LogFile(tmp_path / "c", RotationPolicy(10 * REC, 100, True), writable=False)
    got = read(lf)
    assert reader.DAMAGE.files == before + 1
    # Generations 0 and 1 are whole, 2 is damaged, 3 and the current file are whole.
    assert got[:20] == recs[:20]
    assert got[-20:] == recs[-20:]
    assert set(got) <= set(recs) and len(got) < len(recs)
    assert read(lf, tail=3) == recs[-3:]
    assert [r for batch, _ in follow_from(lf, Position(2, 0)) for r in batch] == got[20:]
