"""Reading a :class:`~.logfile.LogFile` back: tail, since/until, follow.

The same code serves every variant of the files (plain or gzipped, rotated or
current); the conformance tests in tests/unit/store run it against each.

Order of operations follows json-file's reader: take the last ``tail`` records,
then drop those before ``since``, stop at the first after ``until``; with
``follow``, keep streaming records as they are appended, across rotations,
until the log is closed (the container's logging stopped) or the consumer goes
away.

The follow loop's timing (when to read, how long to wait) asks an injected clock and
waits through an injected :data:`Wait`, by default the monotonic clock and the log's
own condition variable, so that a test can run it on simulated time and check each
decision exactly. Those decisions (read now, hold back, move on at rotation, end) are
made in one place, :class:`_Follower`, for the two ways of following a log: the
blocking :func:`follow_from` (a thread: ``docker logs -f``) and the asynchronous
:func:`follow_from_async` (a shipping process's task, woken by its view of the log).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .gz import IsalError, open_gzip
from .logfile import LogFile, LogState, Segment
from .records import record_time

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds on a monotonic scale; :func:`time.monotonic` in production."""
Wait = Callable[[LogState, float], LogState]
"""``wait(seen, timeout)``: block until the log moves past ``seen`` (new data,
rotation, close) or ``timeout`` seconds pass on the :data:`Clock`'s scale, and
return the log's state then. In production the log's own
:meth:`~.logfile.LogFile.wait_for_change` (whose condition variable times out on the
monotonic clock)."""
AsyncWait = Callable[[LogState, float], Awaitable[LogState]]
""":data:`Wait` for an asyncio task: awaits instead of blocking (a shipping
process's view of a log, :mod:`pylog.shipper.view`)."""

_BLOCK = 1 << 16
#: The most a follow_from batch holds, roughly, in bytes of records.
_MAX_BATCH = 1 << 20

#: How often a follower with nothing to read checks that its consumer is still there.
FOLLOW_CHECK_INTERVAL = 1.0
#: ``follow_from`` reads a slowly written log at most this often, so what is appended
#: meanwhile comes as one batch: a read (and the shipper's send) costs about the same
#: for one line as for a thousand. The price is up to 0.5 s more delivery latency
#: (docs/performance.md, "Why the constants are what they are").
FOLLOW_FROM_INTERVAL = 0.5
#: As soon as this much is waiting (some 400 records of 100-byte lines) it is read,
#: interval or not: such batches are large anyway, and a fast log's lines are not
#: held back.
FOLLOW_FROM_BUSY_BYTES = 64 << 10


@dataclass(frozen=True)
class ReadOptions:
    tail: int = -1
    """Last N records; negative means all."""
    since_ns: int | None = None
    until_ns: int | None = None
    follow: bool = False


@dataclass(frozen=True, order=True)
class Position:
    """A place in a container's log that survives rotation and restarts."""

    generation: int
    offset: int
    """Bytes into the generation's file, uncompressed."""


class ReadDamage:
    """Compressed files that could not be read to their end (cut short by a crash or a
    full disk, or corrupted): readers take what comes before the damage and go on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = 0

    def note(self, seg: Segment, exc: BaseException) -> None:
        with self._lock:
            self.files += 1
        log.warning(
            "log file %s (generation %d) is damaged (%s: %s); read what comes before it",
            getattr(seg.file, "name", "?"),
            seg.generation,
            type(exc).__name__,
            exc,
        )


#: Damage met by every reader in this process (exported as a metric).
DAMAGE = ReadDamage()


def _iter_batches(seg: Segment, start: int = 0) -> Iterator[list[bytes]]:
    """Whole records of a segment from ``start`` up to its readable size, a block at a time."""
    if seg.compressed:
        yield from _split(_read_gzip(seg, start))
        return
    yield from _split(_read_range(seg.file, start, seg.size))


def _read_gzip(seg: Segment, start: int) -> Iterator[bytes]:
    """A gzipped segment's blocks from ``start``; ends early, counted, where it is damaged."""
    try:
        with open_gzip(seg.file) as gz:
            if start:
                gz.seek(start)
            while block := gz.read(_BLOCK):
                yield block
    except (EOFError, OSError, IsalError) as exc:
        DAMAGE.note(seg, exc)


def _read_range(f: object, start: int, end: int | None) -> Iterator[bytes]:
    fd = f.fileno()  # type: ignore[attr-defined]
    pos = start
    while end is None or pos < end:
        want = _BLOCK if end is None else min(_BLOCK, end - pos)
        data = os.pread(fd, want, pos)
        if not data:
            return
        pos += len(data)
        yield data


def _split(blocks: Iterator[bytes]) -> Iterator[list[bytes]]:
    rest = b""
    for block in blocks:
        data = rest + block if rest else block
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines:
            yield [line + b"\n" for line in lines]
    if rest:
        # Only possible in a file cut short by a crash: a record without its newline.
        log.debug("ignoring %d bytes of an unterminated record", len(rest))


def _tail_segment(seg: Segment, count: int) -> list[bytes]:
    """The last ``count`` records of a segment, reading plain files backwards."""
    if seg.compressed:
        return list(deque((r for b in _iter_batches(seg) for r in b), maxlen=count))
    fd = seg.file.fileno()
    end = seg.size if seg.size is not None else os.fstat(fd).st_size
    pos = end
    chunks: list[bytes] = []
    newlines = 0
    # A file ends with a newline; we need count+1 newlines to frame count records.
    while pos > 0 and newlines <= count:
        start = max(0, pos - _BLOCK)
        data = os.pread(fd, pos - start, start)
        chunks.append(data)
        newlines += data.count(b"\n")
        pos = start
    data = b"".join(reversed(chunks))
    lines = data.split(b"\n")
    lines.pop()  # after the final newline
    if pos > 0:
        lines = lines[1:]  # first piece may be a partial record
    return [line + b"\n" for line in lines[-count:]] if count else []


def _tail(segments: list[Segment], count: int) -> list[bytes]:
    out: list[bytes] = []
    for seg in reversed(segments):
        need = count - len(out)
        if need <= 0:
            break
        out = _tail_segment(seg, need) + out
    return out


class _Window:
    """since/until applied to batches; ``done`` once a record past ``until`` was seen."""

    def __init__(self, since: int | None, until: int | None) -> None:
        self.since = since
        self.until = until
        self.done = False

    def apply(self, batch: list[bytes]) -> list[bytes]:
        since, until = self.since, self.until
        if since is None and until is None:
            return batch
        out: list[bytes] = []
        for rec in batch:
            t = record_time(rec)
            if until is not None and t > until:
                self.done = True
                break
            if since is None or t >= since:
                out.append(rec)
        return out


def read_batches(
    logfile: LogFile,
    opts: ReadOptions,
    consumer_alive: Callable[[], bool] = lambda: True,
) -> Iterator[list[bytes]]:
    """Yield raw records per ``opts`` in batches, oldest first.

    With ``follow``, each wake-up yields what was appended since the last one,
    until the log closes or ``consumer_alive`` says the reader has gone.
    """
    window = _Window(opts.since_ns, opts.until_ns)
    segments = logfile.open_segments()
    try:
        if opts.tail > 0:
            initial: Iterator[list[bytes]] = iter([_tail(segments, opts.tail)])
        elif opts.tail == 0:
            initial = iter(())
        else:
            initial = (batch for seg in segments for batch in _iter_batches(seg))
        for batch in initial:
            batch = window.apply(batch)
            if batch:
                yield batch
            if window.done:
                return
        if not opts.follow:
            return
        current = segments.pop() if segments else None
    finally:
        for seg in segments:
            seg.close()
    yield from _follow(logfile, current, window, consumer_alive)


def read_records(
    logfile: LogFile,
    opts: ReadOptions,
    consumer_alive: Callable[[], bool] = lambda: True,
) -> Iterator[bytes]:
    """:func:`read_batches`, one record at a time."""
    for batch in read_batches(logfile, opts, consumer_alive):
        yield from batch


def _follow(
    logfile: LogFile,
    current: Segment | None,
    window: _Window,
    consumer_alive: Callable[[], bool],
) -> Iterator[list[bytes]]:
    if current is None:
        current = logfile.open_generation(logfile.state().generation)
        if current is None:
            return
    for batch, _ in _stream(logfile, current, current.size or 0, consumer_alive):
        batch = window.apply(batch)
        if batch:
            yield batch
        if window.done:
            return


def follow_from(
    logfile: LogFile,
    start: Position,
    consumer_alive: Callable[[], bool] = lambda: True,
    *,
    clock: Clock = time.monotonic,
    wait: Wait | None = None,
) -> Iterator[tuple[list[bytes], Position]]:
    """Records from ``start`` on, each batch with the position just after it.

    Goes on across rotations until the log is closed and fully read, or
    ``consumer_alive`` turns false while waiting. If ``start``'s file is gone
    (rotated away and deleted), reading resumes at the oldest file still kept.
    ``clock`` and ``wait`` (default: ``logfile.wait_for_change``) time the reads
    (see :func:`_stream`); only tests pass them.
    """
    seg = logfile.open_generation(start.generation)
    if seg is None:
        return
    offset = start.offset if seg.generation == start.generation else 0
    yield from _stream(
        logfile,
        seg,
        offset,
        consumer_alive,
        FOLLOW_FROM_INTERVAL,
        clock=clock,
        wait=wait,
    )


class _Do(Enum):
    READ = "read"
    """Read the current file up to the log's size."""
    FINISH = "finish"
    """The file was rotated away: read it to its end, then open the next one."""
    HOLD = "hold"
    """Let more gather: wait for a change (an append may bring the busy size), at most
    ``timeout``."""
    IDLE = "idle"
    """Nothing to read: wait for a change, and ask the consumer after a quiet
    :data:`FOLLOW_CHECK_INTERVAL`."""
    END = "end"
    """Closed and read to its end."""


@dataclass(frozen=True)
class _Step:
    do: _Do
    state: LogState
    """What to wait past (HOLD, IDLE), or the state to read up to (READ)."""
    timeout: float = 0.0


class _Follower:
    """A follower's place in the log (the open file and the offset in it) and its
    decisions; the caller does the waiting, blocking or awaiting.

    With ``interval``, new data in the current file is read no sooner than that
    after the previous read (on ``clock``), unless the log was closed or rotated
    meanwhile or :data:`FOLLOW_FROM_BUSY_BYTES` are waiting (checked at every
    append).
    """

    def __init__(
        self, logfile: LogFile, cur: Segment, offset: int, interval: float, clock: Clock
    ) -> None:
        self.logfile = logfile
        self.cur: Segment | None = cur
        self.offset = offset
        self.interval = interval
        self.clock = clock
        self._last_read = float("-inf")

    def step(self, state: LogState) -> _Step:
        cur = self.cur
        assert cur is not None
        if cur.generation < state.generation:
            return _Step(_Do.FINISH, state)
        if state.size > self.offset:
            now = self.clock()
            hold = self._last_read + self.interval - now
            if hold > 0 and not state.closed and state.size - self.offset < FOLLOW_FROM_BUSY_BYTES:
                # Let more gather, for one batch: until the interval is over, or
                # woken by each append to see whether enough has come. (A plain
                # sleep held a burst that came just after a small write back
                # for the whole interval: p99 500 ms at 20,000 lines/s.)
                return _Step(_Do.HOLD, state, hold)
            self._last_read = now
            return _Step(_Do.READ, state)
        if state.closed:
            return _Step(_Do.END, state)
        return _Step(_Do.IDLE, LogState(cur.generation, self.offset, False))

    def read(self, state: LogState) -> Iterator[tuple[list[bytes], Position]]:
        """Everything appended since the last read, in batches of at most about
        _MAX_BATCH bytes so a large backlog is never one list in memory."""
        cur = self.cur
        assert cur is not None
        cur.size = state.size
        out: list[bytes] = []
        pending = 0
        for batch in _iter_batches(cur, self.offset):
            out += batch
            pending += sum(map(len, batch))
            if pending >= _MAX_BATCH:
                self.offset += pending
                yield out, Position(cur.generation, self.offset)
                out, pending = [], 0
        self.offset = state.size
        if out:
            yield out, Position(cur.generation, self.offset)

    def finish(self) -> Iterator[tuple[list[bytes], Position]]:
        """The rotated-away file is final: read it to its end."""
        cur = self.cur
        assert cur is not None
        cur.size = None
        for batch in _iter_batches(cur, self.offset):
            self.offset += sum(map(len, batch))
            yield batch, Position(cur.generation, self.offset)

    def advance(self) -> bool:
        """Open the generation after the finished one (or the oldest later one kept);
        False when there is none to open."""
        cur = self.cur
        assert cur is not None
        nxt = self.logfile.open_generation(cur.generation + 1)
        if nxt is None:
            return False
        cur.close()
        if nxt.generation != cur.generation + 1:
            log.warning(
                "a reader of %s fell behind rotation and missed generations %d..%d",
                self.logfile.directory.name,
                cur.generation + 1,
                nxt.generation - 1,
            )
        self.cur, self.offset = nxt, 0
        return True

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
            self.cur = None


def _stream(
    logfile: LogFile,
    cur: Segment,
    offset: int,
    consumer_alive: Callable[[], bool],
    interval: float = 0.0,
    *,
    clock: Clock = time.monotonic,
    wait: Wait | None = None,
) -> Iterator[tuple[list[bytes], Position]]:
    """The blocking follow loop: read what is there, wait to be woken, move on at
    rotation (the decisions are :class:`_Follower`'s). Every wait goes through
    ``wait`` (default: ``logfile.wait_for_change``)."""
    wait_for_change = wait or logfile.wait_for_change
    follower = _Follower(logfile, cur, offset, interval, clock)
    try:
        while True:
            step = follower.step(logfile.state())
            if step.do is _Do.READ:
                yield from follower.read(step.state)
            elif step.do is _Do.FINISH:
                yield from follower.finish()
                if not follower.advance():
                    return
            elif step.do is _Do.HOLD:
                wait_for_change(step.state, step.timeout)
            elif step.do is _Do.IDLE:
                woke = wait_for_change(step.state, FOLLOW_CHECK_INTERVAL)
                if woke == step.state and not consumer_alive():
                    return
            else:
                return
    finally:
        follower.close()


async def follow_from_async(
    logfile: LogFile,
    start: Position,
    consumer_alive: Callable[[], Awaitable[bool]],
    wait: AsyncWait,
    *,
    interval: float = FOLLOW_FROM_INTERVAL,
    clock: Clock = time.monotonic,
) -> AsyncGenerator[tuple[list[bytes], Position], None]:
    """:func:`follow_from` for an asyncio task: the same decisions (:class:`_Follower`),
    but every wait is awaited through ``wait`` and ``consumer_alive`` is awaited.

    ``logfile`` is a view whose state may lag behind the disk (a shipping process
    learns of appends and rotations by message): where the file it asks for cannot
    be opened yet, the follower waits for the next change instead of ending, and
    ends only once the log is closed. Between batches, the caller's own awaits give
    the loop to the other tasks; reads of files block, a batch at a time.
    """
    seg: Segment | None = None
    while seg is None:
        seg = logfile.open_generation(start.generation)
        if seg is None and not await _waited(logfile, consumer_alive, wait):
            return
    offset = start.offset if seg.generation == start.generation else 0
    follower = _Follower(logfile, seg, offset, interval, clock)
    try:
        while True:
            step = follower.step(logfile.state())
            if step.do is _Do.READ:
                for item in follower.read(step.state):
                    yield item
            elif step.do is _Do.FINISH:
                for item in follower.finish():
                    yield item
                while not follower.advance():
                    if not await _waited(logfile, consumer_alive, wait):
                        return
            elif step.do is _Do.HOLD:
                await wait(step.state, step.timeout)
            elif step.do is _Do.IDLE:
                woke = await wait(step.state, FOLLOW_CHECK_INTERVAL)
                if woke == step.state and not await consumer_alive():
                    return
            else:
                return
    finally:
        follower.close()


async def _waited(
    logfile: LogFile, consumer_alive: Callable[[], Awaitable[bool]], wait: AsyncWait
) -> bool:
    """A file to open is not there (yet): wait for the log's next change. False when
    there is nothing more to wait for (closed, or the consumer has gone)."""
    state = logfile.state()
    if state.closed:
        return False
    woke = await wait(state, FOLLOW_CHECK_INTERVAL)
    return woke != state or await consumer_alive()


def count_records(path: Path) -> int:
    """The records in a log file, plain or gzipped: what rotation deletes with it
    (the main process counts those a shipper had not read yet)."""
    opener = open_gzip if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
    return count
