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
decision exactly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
    """The follow loop: read what is there, wait to be woken, move on at rotation.

    With ``interval``, new data in the current file is read no sooner than that
    after the previous read (on ``clock``), unless the log was closed or rotated
    meanwhile or :data:`FOLLOW_FROM_BUSY_BYTES` are waiting (checked at every
    append). Every wait goes through ``wait`` (default: ``logfile.wait_for_change``).
    """
    wait_for_change = wait or logfile.wait_for_change
    last_read = float("-inf")
    try:
        while True:
            state = logfile.state()
            if cur.generation < state.generation:
                # Rotated away: the file is final, read it to its end, then go on.
                cur.size = None
                for batch in _iter_batches(cur, offset):
                    offset += sum(map(len, batch))
                    yield batch, Position(cur.generation, offset)
                cur.close()
                nxt = logfile.open_generation(cur.generation + 1)
                if nxt is None:
                    return
                if nxt.generation != cur.generation + 1:
                    log.warning(
                        "a reader of %s fell behind rotation and missed generations %d..%d",
                        logfile.directory.name,
                        cur.generation + 1,
                        nxt.generation - 1,
                    )
                cur, offset = nxt, 0
                continue
            if state.size > offset:
                now = clock()
                hold = last_read + interval - now
                if hold > 0 and not state.closed and state.size - offset < FOLLOW_FROM_BUSY_BYTES:
                    # Let more gather, for one batch: until the interval is over, or
                    # woken by each append to see whether enough has come. (A plain
                    # sleep held a burst that came just after a small write back
                    # for the whole interval: p99 500 ms at 20,000 lines/s.)
                    wait_for_change(state, hold)
                    continue
                last_read = now
                # Everything appended since the last wake-up, in batches of at most
                # about _MAX_BATCH bytes so a large backlog is never one list in memory.
                cur.size = state.size
                out: list[bytes] = []
                pending = 0
                for batch in _iter_batches(cur, offset):
                    out += batch
                    pending += sum(map(len, batch))
                    if pending >= _MAX_BATCH:
                        offset += pending
                        yield out, Position(cur.generation, offset)
                        out, pending = [], 0
                offset = state.size
                if out:
                    yield out, Position(cur.generation, offset)
                continue
            if state.closed:
                return
            seen = LogState(cur.generation, offset, False)
            woke = wait_for_change(seen, FOLLOW_CHECK_INTERVAL)
            if woke == seen and not consumer_alive():
                return
    finally:
        cur.close()
