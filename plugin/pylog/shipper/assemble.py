"""From stored records back to whole lines, and the position each line makes safe.

The store keeps dockerd's 16 KiB chunks as separate records (json-file's
format); Kafka gets one record per line. :class:`LineAssembler` joins chunks
per stream, cuts lines longer than ``max_line`` into numbered pieces, and
optionally merges multiline records (stack traces).

Every emitted line carries a *commit* :class:`Position`: once the broker has
acknowledged that line (and every line before it), the log up to that position
has been shipped. Data still held here (an unfinished line, a multiline group)
keeps the commit position at its start, so a restart re-reads it rather than
losing it.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from ..store.reader import Position
from ..store.records import RecordError, decode_record
from .schema import Line


@dataclass
class _Chunks:
    """Chunks of one unfinished line of a stream."""

    start: Position
    time_ns: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    pieces: int = 0
    """Pieces of max_line bytes already emitted from this line."""


@dataclass
class _Group:
    """A multiline record being merged."""

    start: Position
    time_ns: int
    texts: list[str]
    size: int
    updated: float


def _cut(data: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character."""
    cut = limit
    while cut > limit - 4 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


class LineAssembler:
    def __init__(
        self,
        start: Position,
        *,
        max_line: int,
        raw_text: bool = True,
        multiline: re.Pattern[str] | None = None,
        multiline_max_lines: int = 500,
        multiline_timeout: float = 2.0,
    ) -> None:
        self.max_line = max_line
        # Plain whole lines skip decoding when nothing needs their text.
        self._fast = raw_text and multiline is None
        self.multiline = multiline
        self.multiline_max_lines = multiline_max_lines
        self.multiline_timeout = multiline_timeout
        self._end = start
        self._chunks: dict[str, _Chunks] = {}
        self._groups: dict[str, _Group] = {}
        self.bad_records = 0

    # -- positions ---------------------------------------------------------------

    def safe(self) -> Position:
        """Everything before this position has been emitted (or was unreadable)."""
        pos = self._end
        for c in self._chunks.values():
            pos = min(pos, c.start)
        for g in self._groups.values():
            pos = min(pos, g.start)
        return pos

    # -- input -------------------------------------------------------------------

    def feed(
        self, batch: list[bytes], end: Position, now: float
    ) -> list[tuple[Line, Position | None]]:
        """A batch from ``follow_from`` (all of one file) ending at ``end``.

        Each line comes with its commit position, except that plain lines taken
        on the fast path carry None (making a position per line costs as much as
        the rest of their handling); the last line of a batch always has one.
        """
        out: list[tuple[Line, Position | None]] = []
        offset = end.offset - sum(map(len, batch))
        gen = end.generation
        fast = self._fast
        max_line = self.max_line
        for raw in batch:
            if fast and not self._chunks:
                plain = _plain_line(raw)
                if plain is not None and len(plain[3]) <= max_line:
                    offset += len(raw)
                    line = Line(plain[0], plain[1], "", escaped=plain[3], time_text=plain[2])
                    out.append((line, None))
                    continue
            start = Position(gen, offset)
            offset += len(raw)
            self._end = Position(gen, offset)
            try:
                rec = decode_record(raw)
            except RecordError:
                self.bad_records += 1
                continue
            self._record(rec.stream, rec.time_ns, rec.log, start, now, out)
        self._end = Position(gen, offset)
        if out and out[-1][1] is None:
            # A fast-path line is only taken with nothing held back: the log is
            # shipped up to the end of the batch once it is acknowledged.
            out[-1] = (out[-1][0], self._end)
        return out

    def _record(
        self,
        stream: str,
        time_ns: int,
        data: bytes,
        start: Position,
        now: float,
        out: list[tuple[Line, Position | None]],
    ) -> None:
        chunks = self._chunks.get(stream)
        complete = data.endswith(b"\n")
        if complete:
            data = data[:-1]
        if chunks is None:
            if complete and len(data) <= self.max_line:
                self._line(stream, time_ns, data, start, now, out)
                return
            chunks = self._chunks[stream] = _Chunks(start, time_ns)
        chunks.parts.append(data)
        chunks.size += len(data)
        if chunks.size > self.max_line:
            self._emit_pieces(stream, chunks, complete, out)
        if complete:
            del self._chunks[stream]
            if chunks.pieces == 0:
                self._line(stream, chunks.time_ns, b"".join(chunks.parts), chunks.start, now, out)
            elif chunks.parts:
                self._piece(stream, chunks, b"".join(chunks.parts), True, out)

    def _emit_pieces(
        self, stream: str, chunks: _Chunks, complete: bool, out: list[tuple[Line, Position | None]]
    ) -> None:
        """Ship max_line pieces of an over-long line; keep the rest (at least one byte)."""
        self._flush_group(stream, out)
        data = b"".join(chunks.parts)
        while len(data) > self.max_line:
            cut = _cut(data, self.max_line)
            piece, data = data[:cut], data[cut:]
            last = complete and not data
            self._piece(stream, chunks, piece, last, out)
        chunks.parts = [data] if data else []
        chunks.size = len(data)

    def _piece(
        self,
        stream: str,
        chunks: _Chunks,
        data: bytes,
        last: bool,
        out: list[tuple[Line, Position | None]],
    ) -> None:
        chunks.pieces += 1
        line = Line(
            stream,
            chunks.time_ns,
            data.decode("utf-8", "replace"),
            part=chunks.pieces,
            last=last,
        )
        if last:
            self._chunks.pop(stream, None)
        out.append((line, self.safe()))

    def _line(
        self,
        stream: str,
        time_ns: int,
        data: bytes,
        start: Position,
        now: float,
        out: list[tuple[Line, Position | None]],
    ) -> None:
        text = data.decode("utf-8", "replace")
        if self.multiline is None:
            out.append((Line(stream, time_ns, text), self.safe()))
            return
        group = self._groups.get(stream)
        if group is not None and (
            self.multiline.search(text)
            or len(group.texts) >= self.multiline_max_lines
            or group.size + 1 + len(data) > self.max_line
        ):
            # The current line is read but not yet in a group: the commit must stay before it.
            self._flush_group(stream, out, hold=start)
            group = None
        if group is None:
            self._groups[stream] = _Group(start, time_ns, [text], len(data), now)
        else:
            group.texts.append(text)
            group.size += 1 + len(data)
            group.updated = now
        group = self._groups[stream]
        if len(group.texts) >= self.multiline_max_lines:
            self._flush_group(stream, out)

    def _flush_group(
        self, stream: str, out: list[tuple[Line, Position | None]], hold: Position | None = None
    ) -> None:
        group = self._groups.pop(stream, None)
        if group is not None:
            line = Line(stream, group.time_ns, "\n".join(group.texts), lines=len(group.texts))
            commit = self.safe()
            out.append((line, commit if hold is None else min(commit, hold)))

    # -- time and end --------------------------------------------------------------

    def expire(self, now: float) -> list[tuple[Line, Position | None]]:
        """Ship multiline groups that saw no new line for ``multiline_timeout``."""
        out: list[tuple[Line, Position | None]] = []
        for stream in [
            s for s, g in self._groups.items() if now - g.updated >= self.multiline_timeout
        ]:
            self._flush_group(stream, out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has something to do, in the clock of ``now``."""
        if not self._groups:
            return None
        return min(g.updated for g in self._groups.values()) + self.multiline_timeout

    def finish(self) -> list[tuple[Line, Position | None]]:
        """The log closed and was read to its end: ship whatever is held."""
        out: list[tuple[Line, Position | None]] = []
        for stream in list(self._groups):
            self._flush_group(stream, out)
        for stream, chunks in list(self._chunks.items()):
            data = b"".join(chunks.parts)
            if chunks.pieces:
                self._piece(stream, chunks, data, True, out)
            else:
                del self._chunks[stream]
                self._line(stream, chunks.time_ns, data, chunks.start, 0.0, out)
                self._flush_group(stream, out)
        return out


_LOG = b'{"log":"'
_STREAM = b'","stream":"'
_TIME = b'"time":"'
_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}


def _plain_line(raw: bytes) -> tuple[str, int, bytes, bytes] | None:
    """(stream, time, time text, escaped text) of a stored whole line, without decoding.

    pylog's records start with the ``log`` string; it holds no raw ``"``, so the
    first ``","stream":"`` ends it. Anything unusual (a chunk, a line without
    newline, another layout) returns None and takes the decoding path. The time
    text comes back in the record value's form (9 fraction digits).
    """
    if not raw.startswith(_LOG) or not raw.endswith(b'"}\n'):
        return None
    j = raw.find(_STREAM, 8)
    if j < 0 or raw[j - 2 : j] != b"\\n":
        return None
    # The final \n must be a newline escape, not an escaped backslash and an "n".
    i, slashes = j - 2, 0
    while i >= 8 and raw[i] == 0x5C:
        slashes += 1
        i -= 1
    if not slashes % 2:
        return None
    k = j + len(_STREAM)
    q = raw.find(b'"', k)
    stream = _STREAMS.get(raw[k:q])
    t = raw.rfind(_TIME, q)
    if stream is None or t < 0:
        return None
    ts = raw[t + len(_TIME) : -3]  # 2026-11-27T10:15:52.15295867Z (Go trims zeros)
    if len(ts) == 20:
        frac = b"000000000"
    elif 21 < len(ts) <= 30 and ts[19] == 0x2E and ts[20:-1].isdigit():
        frac = ts[20:-1].ljust(9, b"0")
    else:
        return None
    if ts[-1] != 0x5A:
        return None
    seconds = _seconds(ts[:19])
    if seconds is None:
        return None
    time_ns = seconds * 1_000_000_000 + int(frac)
    return stream, time_ns, ts[:19] + b"." + frac + b"Z", raw[8 : j - 2]


@lru_cache(maxsize=4096)
def _seconds(prefix: bytes) -> int | None:
    try:
        return calendar.timegm(time.strptime(prefix.decode(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def lines_only(items: Iterable[tuple[Line, Position | None]]) -> list[Line]:
    """The lines of an assembler's output (tests and tools)."""
    return [line for line, _ in items]
