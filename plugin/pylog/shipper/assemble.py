"""From stored records back to whole lines, and the position each line makes safe.

The store keeps dockerd's 16 KiB chunks as separate records (json-file's
format); Kafka gets one record per line. :class:`LineAssembler` joins chunks
per stream, cuts lines longer than ``max_line`` into numbered pieces, and
optionally merges multiline records (stack traces).

A declared file log (``by_path``) holds the lines of several files, told apart
by each record's ``attrs.path``: lines are joined and merged per file as they
are per stream, so a long line of one file is never joined with another
file's line read in between, and each :class:`Line` carries its file's path.

Every emitted line carries a *commit* :class:`Position`: once the broker has
acknowledged that line (and every line before it), the log up to that position
has been shipped. Data still held here (an unfinished line, a multiline group)
keeps the commit position at its start, so a restart re-reads it rather than
losing it.

It never looks inside a stored record: ``store.records`` decodes them
(:func:`~pylog.store.records.decode_record`) and picks out plain whole lines
without decoding (:func:`~pylog.store.records.split_plain_run`,
:func:`~pylog.store.records.match_plain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import UserRegex
from ..store.reader import Position
from ..store.records import RecordError, decode_record, match_plain, split_plain_run
from .schema import Line, PlainRun, plain_line


@dataclass
class _Chunks:
    """Chunks of one unfinished line of a stream (of a file, in a file log)."""

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


#: What the lines of a log are kept apart by: (stream, path); path is empty but in a
#: declared file log.
_Source = tuple[str, str]

#: What the assembler emits: a line (or a run of plain lines) and the commit
#: position it makes safe, if any (see :meth:`LineAssembler.feed`).
Item = tuple[Line | PlainRun, Position | None]


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
        multiline: UserRegex | None = None,
        multiline_max_lines: int = 500,
        multiline_timeout: float = 2.0,
        by_path: bool = False,
    ) -> None:
        self.max_line = max_line
        # Plain whole lines skip decoding when nothing needs their text (nor their
        # path: the fast path skips attrs).
        self._fast = raw_text and multiline is None and not by_path
        self._by_path = by_path
        self.multiline = multiline
        self.multiline_max_lines = multiline_max_lines
        self.multiline_timeout = multiline_timeout
        self._end = start
        self._chunks: dict[_Source, _Chunks] = {}
        self._groups: dict[_Source, _Group] = {}
        self.bad_records = 0

    # -- positions ---------------------------------------------------------------

    def commit_position(self) -> Position:
        """Everything before this position has been emitted (or was unreadable)."""
        pos = self._end
        for c in self._chunks.values():
            pos = min(pos, c.start)
        for g in self._groups.values():
            pos = min(pos, g.start)
        return pos

    # -- input -------------------------------------------------------------------

    def feed(self, batch: list[bytes], end: Position, now: float) -> list[Item]:
        """A batch from ``follow_from`` (all of one file) ending at ``end``.

        Each line comes with its commit position, except that plain lines taken
        on the fast path carry None (making a position per line costs as much as
        the rest of their handling); the last item of a batch always has one. A
        batch of nothing but plain whole lines (the common case) comes back as
        one :class:`PlainRun`.
        """
        if self._fast and not self._chunks:
            run = self._plain_run(batch, end)
            if run is not None:
                return run
        out: list[Item] = []
        offset = end.offset - sum(map(len, batch))
        gen = end.generation
        fast = self._fast
        max_line = self.max_line
        for raw in batch:
            if fast and not self._chunks:
                plain = match_plain(raw)
                if plain is not None and len(plain[0][0]) <= max_line:
                    offset += len(raw)
                    out.append((plain_line(*plain), None))
                    continue
            start = Position(gen, offset)
            offset += len(raw)
            self._end = Position(gen, offset)
            try:
                rec = decode_record(raw)
            except RecordError:
                self.bad_records += 1
                continue
            source = (rec.stream, rec.path if self._by_path else "")
            self._record(source, rec.time_ns, rec.log, start, now, out)
        self._end = Position(gen, offset)
        if out and out[-1][1] is None:
            # A fast-path line is only taken with nothing held back: the log is
            # shipped up to the end of the batch once it is acknowledged.
            out[-1] = (out[-1][0], self._end)
        return out

    def _plain_run(self, batch: list[bytes], end: Position) -> list[Item] | None:
        """The whole batch as one :class:`PlainRun`, or None if any record needs a
        closer look (``store.records`` tells which are plain whole lines)."""
        plain = split_plain_run(batch)
        if plain is None or plain.longest > self.max_line:
            return None
        self._end = end
        return [(PlainRun(plain), end)]

    def _record(
        self,
        source: _Source,
        time_ns: int,
        data: bytes,
        start: Position,
        now: float,
        out: list[Item],
    ) -> None:
        chunks = self._chunks.get(source)
        complete = data.endswith(b"\n")
        if complete:
            data = data[:-1]
        if chunks is None:
            if complete and len(data) <= self.max_line:
                self._line(source, time_ns, data, start, now, out)
                return
            chunks = self._chunks[source] = _Chunks(start, time_ns)
        chunks.parts.append(data)
        chunks.size += len(data)
        if chunks.size > self.max_line:
            self._emit_pieces(source, chunks, complete, out)
        if complete:
            del self._chunks[source]
            if chunks.pieces == 0:
                self._line(source, chunks.time_ns, b"".join(chunks.parts), chunks.start, now, out)
            elif chunks.parts:
                self._piece(source, chunks, b"".join(chunks.parts), True, out)

    def _emit_pieces(
        self, source: _Source, chunks: _Chunks, complete: bool, out: list[Item]
    ) -> None:
        """Ship max_line pieces of an over-long line; keep the rest (at least one byte)."""
        self._flush_group(source, out)
        data = b"".join(chunks.parts)
        while len(data) > self.max_line:
            cut = _cut(data, self.max_line)
            piece, data = data[:cut], data[cut:]
            last = complete and not data
            self._piece(source, chunks, piece, last, out)
        chunks.parts = [data] if data else []
        chunks.size = len(data)

    def _piece(
        self,
        source: _Source,
        chunks: _Chunks,
        data: bytes,
        last: bool,
        out: list[Item],
    ) -> None:
        chunks.pieces += 1
        line = Line(
            source[0],
            chunks.time_ns,
            data.decode("utf-8", "replace"),
            part=chunks.pieces,
            last=last,
            path=source[1],
        )
        if last:
            self._chunks.pop(source, None)
        out.append((line, self.commit_position()))

    def _line(
        self,
        source: _Source,
        time_ns: int,
        data: bytes,
        start: Position,
        now: float,
        out: list[Item],
    ) -> None:
        text = data.decode("utf-8", "replace")
        if self.multiline is None:
            out.append((Line(source[0], time_ns, text, path=source[1]), self.commit_position()))
            return
        group = self._groups.get(source)
        if group is not None and (
            self.multiline.search(text)
            or len(group.texts) >= self.multiline_max_lines
            or group.size + 1 + len(data) > self.max_line
        ):
            # The current line is read but not yet in a group: the commit must stay before it.
            self._flush_group(source, out, hold=start)
            group = None
        if group is None:
            self._groups[source] = _Group(start, time_ns, [text], len(data), now)
        else:
            group.texts.append(text)
            group.size += 1 + len(data)
            group.updated = now
        group = self._groups[source]
        if len(group.texts) >= self.multiline_max_lines:
            self._flush_group(source, out)

    def _flush_group(self, source: _Source, out: list[Item], hold: Position | None = None) -> None:
        group = self._groups.pop(source, None)
        if group is not None:
            line = Line(
                source[0],
                group.time_ns,
                "\n".join(group.texts),
                lines=len(group.texts),
                path=source[1],
            )
            commit = self.commit_position()
            out.append((line, commit if hold is None else min(commit, hold)))

    # -- time and end --------------------------------------------------------------

    def expire(self, now: float) -> list[Item]:
        """Ship multiline groups that saw no new line for ``multiline_timeout``."""
        out: list[Item] = []
        for source in [
            s for s, g in self._groups.items() if now - g.updated >= self.multiline_timeout
        ]:
            self._flush_group(source, out)
        return out

    def finish(self) -> list[Item]:
        """The log closed and was read to its end: ship whatever is held."""
        out: list[Item] = []
        for source in list(self._groups):
            self._flush_group(source, out)
        for source, chunks in list(self._chunks.items()):
            data = b"".join(chunks.parts)
            if chunks.pieces:
                self._piece(source, chunks, data, True, out)
            else:
                del self._chunks[source]
                self._line(source, chunks.time_ns, data, chunks.start, 0.0, out)
                self._flush_group(source, out)
        return out
