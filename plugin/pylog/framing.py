"""The LogDriver wire format: ``[uint32 big-endian length][protobuf LogEntry]``.

dockerd sets no upper bound on a frame, so the decoder enforces one. It never
raises on bad input: every problem is counted in :class:`FrameErrors` and the
decoder keeps its place. A frame whose body does not parse is skipped by its
length. A length above the bound cannot come from dockerd (it cuts lines at
16 KiB), so it means the stream is out of step; the decoder then scans forward
to the next position that looks like the start of a frame dockerd writes
(``source`` is always the first field: ``0a 06 "stdout"``/``"stderr"``) and
counts the bytes it skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import cast

from google.protobuf.message import DecodeError

from .models import STDERR, STDOUT, Entry, EntryBatch
from .wire.entry_pb2 import LogEntry, LogEntryBatch, LogEntryColumns

_LEN = struct.Struct(">I")
_SYNC = b"\x0a\x06std"
_SYNC_TAILS = (b"out", b"err")

DEFAULT_MAX_FRAME = 1 << 20

#: What a frame's body holds when dockerd wrote it: ``source`` (field 1, length 6)
#: first, and ``partial`` (field 4, true) only on chunks of long lines. Counting
#: them in a run tells the common cases (all stdout, all stderr, no chunks)
#: without looking at each entry. A line that happens to hold these bytes only
#: makes a count too high, and then every entry is looked at.
_STDOUT_FIELD = b"\x0a\x06stdout"
_STDERR_FIELD = b"\x0a\x06stderr"
_PARTIAL_FIELD = b"\x20\x01"


def _field1_header(length: int) -> bytes:
    """Tag of field 1 (length-delimited) and ``length`` as a varint padded to
    three bytes, so it takes the place of the 4-byte frame header exactly.
    (Parsers accept varints with redundant continuation bytes.)"""
    return bytes([0x0A, (length & 0x7F) | 0x80, ((length >> 7) & 0x7F) | 0x80, length >> 14])


#: Frame lengths a 3-byte varint can hold; longer frames take the careful path.
_MAX_WRAPPED = (1 << 21) - 1
#: Headers for the common lengths (dockerd cuts lines into 16 KiB chunks), built once.
_SHORT_FRAME = 1 << 15
_FIELD1_HEADERS = [_field1_header(n) for n in range(_SHORT_FRAME)]


#: Written over each frame header for the column parse: two empty ``line``
#: fields (field 3, length 0). Every entry then adds two markers to the ``line``
#: column, followed by its own line unless that is empty (proto3 leaves an
#: empty field out), which keeps the column aligned with the entries.
_LINE_MARKERS = b"\x1a\x00\x1a\x00"


@dataclass
class FrameErrors:
    """What the decoder had to throw away, by reason."""

    corrupt: int = 0
    """Frames whose body is not a valid LogEntry (or has no usable source)."""
    oversize: int = 0
    """Lengths above the bound; each one starts a resynchronisation."""
    skipped_bytes: int = 0
    """Bytes discarded while resynchronising, plus bodies of corrupt frames."""
    truncated: int = 0
    """Streams that ended in the middle of a frame."""

    def total(self) -> int:
        return self.corrupt + self.oversize + self.truncated


class FrameDecoder:
    """Decodes the whole frames at the start of a buffer (:meth:`decode`); the caller
    keeps the rest and passes it again with more bytes."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, resync: bool = False) -> None:
        """``resync=True`` for a stream that may begin mid-frame (reattaching to a FIFO
        another process was reading): decoding starts at the first plausible frame."""
        if max_frame < 16:
            raise ValueError("max_frame too small")
        self.max_frame = max_frame
        self.errors = FrameErrors()
        self._resync = resync

    @property
    def in_step(self) -> bool:
        """Whether the next byte is a frame's first (not resynchronising)."""
        return not self._resync

    def decode(self, buf: bytes, *, final: bool = False) -> tuple[EntryBatch, int]:
        """Decode the whole frames at the start of ``buf``; returns them and the bytes used.

        Nothing is buffered: bytes past the last whole frame are left for the
        caller to pass again with more data (the FIFO reader leaves them in the
        pipe). ``final`` says no more bytes can ever complete a trailing frame
        (end of stream, or a pipe full of one frame bigger than the pipe): that
        frame is then given up, counted, and decoding resynchronises after it.
        """
        if not self._resync:
            fast = self._decode_columns(buf, final)
            if fast is None:
                fast = self._decode_run(buf, final)
            if fast is not None:
                return fast
        entries, used = self._decode_frames(buf, final)
        return EntryBatch.of(entries), used

    def _walk(
        self, buf: bytes, final: bool, marker: bytes | None
    ) -> tuple[memoryview, int, int] | None:
        """The whole frames at the start of ``buf``, each header overwritten in a copy.

        ``marker`` is written over every header; without one, each header
        becomes the header of a :class:`LogEntryBatch` entry of that length.
        Returns (the copy, frames, bytes they take), or None when a length is
        out of bounds or ``final`` leaves a frame cut at the end.
        """
        wrapped = bytearray(buf)
        view = memoryview(wrapped)
        unpack = _LEN.unpack_from
        headers = _FIELD1_HEADERS
        max_frame = self.max_frame if marker is not None else min(self.max_frame, _MAX_WRAPPED)
        count = 0
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (length,) = unpack(buf, pos)
            if length > max_frame:
                return None
            stop = pos + 4 + length
            if stop > end:
                break
            if marker is not None:
                view[pos : pos + 4] = marker
            else:
                view[pos : pos + 4] = (
                    headers[length] if length < _SHORT_FRAME else _field1_header(length)
                )
            count += 1
            pos = stop
        if final and pos < end:
            return None
        return view, count, pos

    @staticmethod
    def _sources(buf: bytes, pos: int, count: int) -> str | None:
        """The one source of the ``count`` frames in ``buf[:pos]``, if they share one."""
        n_out = buf.count(_STDOUT_FIELD, 0, pos)
        n_err = buf.count(_STDERR_FIELD, 0, pos)
        if n_out == count and n_err == 0:
            return STDOUT
        if n_err == count and n_out == 0:
            return STDERR
        return None

    def _decode_columns(self, buf: bytes, final: bool) -> tuple[EntryBatch, int] | None:
        """The fastest path: a run of whole lines as dockerd writes them, parsed as
        columns (:class:`LogEntryColumns`, see ``_LINE_MARKERS``): no object per entry.

        Returns None, having changed nothing, for anything else: chunks of long
        lines (``partial``) or anything :meth:`_decode_run` would refuse.
        """
        if _PARTIAL_FIELD in buf:
            return None  # checked first: the entry path walks the frames itself
        walked = self._walk(buf, final, _LINE_MARKERS)
        if walked is None:
            return None
        view, count, pos = walked
        if not count:
            return EntryBatch(), 0
        try:
            columns = LogEntryColumns.FromString(cast(bytes, view[:pos]))
        except DecodeError:
            return None
        times = list(columns.time_nano)
        marked = columns.line
        if len(marked) == 3 * count and not any(marked[0::3]) and not any(marked[1::3]):
            lines: list[bytes] = list(marked[2::3])
        else:
            lines = _unmark(list(marked))
        if len(times) != count or len(lines) != count:
            return None
        every = list(columns.source)
        if len(every) != count:
            return None
        sources: str | list[str] = every
        if every.count(STDOUT) == count:
            sources = STDOUT
        elif every.count(STDERR) == count:
            sources = STDERR
        elif any(s != STDOUT and s != STDERR for s in every):
            return None
        return EntryBatch(lines, times, sources, frozenset()), pos

    def _decode_run(self, buf: bytes, final: bool) -> tuple[EntryBatch, int] | None:
        """The fast path: every frame in ``buf`` is well formed, as dockerd writes them.

        Each ``[uint32 length]`` header is rewritten as the header of field 1
        of :class:`LogEntryBatch` and the run is parsed in one call. Returns
        None, having changed nothing, when anything is unusual (a bad length, a
        body that does not parse, a source that is not stdout/stderr, a cut
        frame at the end of a stream): :meth:`_decode_frames` then takes the
        run frame by frame and counts each problem.
        """
        walked = self._walk(buf, final, None)
        if walked is None:
            return None
        view, count, pos = walked
        if not count:
            return EntryBatch(), 0
        try:
            # upb parses any buffer; the stubs only say bytes.
            entries = LogEntryBatch.FromString(cast(bytes, view[:pos])).entries
        except DecodeError:
            return None
        if len(entries) != count:
            return None
        sources: str | list[str] | None = self._sources(buf, pos, count)
        if sources is None:
            sources = [e.source for e in entries]
            if any(s != STDOUT and s != STDERR for s in sources):
                return None
        incomplete: frozenset[int] = frozenset()
        if buf.find(_PARTIAL_FIELD, 0, pos) >= 0:
            # Only long lines and a last line without a newline have it set.
            incomplete = frozenset(
                i for i, e in enumerate(entries) if e.partial and not e.partial_log_metadata.last
            )
        return (
            EntryBatch(
                [e.line for e in entries], [e.time_nano for e in entries], sources, incomplete
            ),
            pos,
        )

    def _decode_frames(self, buf: bytes, final: bool) -> tuple[list[Entry], int]:
        """The careful path: one frame at a time, counting every problem."""
        out: list[Entry] = []
        append = out.append
        pos = 0
        end = len(buf)
        max_frame = self.max_frame
        parse = LogEntry.FromString
        unpack = _LEN.unpack_from
        errors = self.errors
        while True:
            if self._resync:
                found = self._find_sync(buf, pos)
                if found < 0:
                    # Keep what could still begin a header (4) + sync pattern (8).
                    keep_from = end if final else max(pos, end - 11)
                    errors.skipped_bytes += keep_from - pos
                    pos = keep_from
                    break
                errors.skipped_bytes += found - pos
                pos = found
                self._resync = False
            if end - pos < 4:
                if final and pos < end:
                    errors.truncated += 1
                    errors.skipped_bytes += end - pos
                    pos = end
                break
            (length,) = unpack(buf, pos)
            if length > max_frame:
                errors.oversize += 1
                errors.skipped_bytes += 1
                self._resync = True
                pos += 1
                continue
            start = pos + 4
            stop = start + length
            if stop > end:
                if final:
                    errors.truncated += 1
                    errors.skipped_bytes += 1
                    self._resync = True
                    pos += 1
                    continue
                break
            pos = stop
            try:
                msg = parse(buf[start:stop])
            except DecodeError:
                errors.corrupt += 1
                errors.skipped_bytes += 4 + length
                continue
            source = msg.source
            if source != "stdout" and source != "stderr":
                errors.corrupt += 1
                errors.skipped_bytes += 4 + length
                continue
            if msg.partial:
                append(Entry(source, msg.time_nano, msg.line, msg.partial_log_metadata.last))
            else:
                append(Entry(source, msg.time_nano, msg.line))
        return out, pos

    def _find_sync(self, buf: bytes, start: int) -> int:
        """Offset of the next plausible frame header at or after ``start``, or -1."""
        i = start + 4
        while True:
            j = buf.find(_SYNC, i)
            if j < 0 or j + 8 > len(buf):
                return -1
            if bytes(buf[j + 5 : j + 8]) in _SYNC_TAILS:
                (length,) = _LEN.unpack_from(buf, j - 4)
                if 8 <= length <= self.max_frame:
                    return j - 4
            i = j + 1

    def wanted(self, buf: bytes, used: int) -> int:
        """Bytes the cut frame at ``buf[used:]`` takes in all, header included; 0 if unknown.

        The FIFO reader asks after :meth:`decode` has left a cut frame: one
        longer than its pipes can show at once must be read into memory
        instead of waited for. A length above the bound is never wanted (the
        decoder counts it and resynchronises instead), and nothing is known
        while resynchronising.
        """
        if self._resync or used >= len(buf):
            return 0
        if len(buf) - used < 4:
            return 4
        (length,) = _LEN.unpack_from(buf, used)
        return 4 + length if length <= self.max_frame else 0


def _unmark(marked: list[bytes]) -> list[bytes]:
    """The lines of a ``line`` column read with ``_LINE_MARKERS`` when some are
    empty: each entry is two markers, then its line if that is not empty.
    Anything else returns [] (out of step: the caller falls back)."""
    lines: list[bytes] = []
    i, n = 0, len(marked)
    while i + 1 < n:
        if marked[i] or marked[i + 1]:
            return []
        if i + 2 < n and marked[i + 2]:
            lines.append(marked[i + 2])
            i += 3
        else:
            lines.append(b"")
            i += 2
    return lines if i == n else []


#: The four tags a whole line's frame may hold, each once: ``source``, ``time_nano``,
#: ``line``, and ``partial`` (only as false).
_TAG_SOURCE, _TAG_TIME, _TAG_LINE, _TAG_PARTIAL = 0x0A, 0x10, 0x1A, 0x20

#: What :func:`decode_whole_reference` returns: lines, times, sources (one
#: string when all share it) and the bytes the frames took.
WholeLines = tuple[list[bytes], list[int], str | list[str], int]


def _varint(buf: bytes, i: int, end: int) -> tuple[int, int] | None:
    """The varint at ``buf[i:]`` and where it ends; None if cut or above 64 bits."""
    value = 0
    for shift in range(0, 70, 7):
        if i >= end:
            return None
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return (value, i) if value < 1 << 64 else None
    return None


def _whole_line(buf: bytes, i: int, end: int) -> tuple[str, int, bytes] | None:
    """One frame's body, ``buf[i:end]``, if it is a whole line as dockerd writes it."""
    source: str | None = None
    time_ns = 0
    line = b""
    seen: set[int] = set()
    while i < end:
        tag = buf[i]
        i += 1
        if tag in seen or tag not in (_TAG_SOURCE, _TAG_TIME, _TAG_LINE, _TAG_PARTIAL):
            return None
        seen.add(tag)
        got = _varint(buf, i, end)
        if got is None:
            return None
        value, i = got
        if tag == _TAG_TIME:
            time_ns = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == _TAG_PARTIAL:
            if value != 0:
                return None
        else:
            if value > end - i:
                return None
            field = buf[i : i + value]
            i += value
            if tag == _TAG_LINE:
                line = field
            elif field in (b"stdout", b"stderr"):
                source = field.decode()
            else:
                return None
    if source is None:
        return None
    return source, time_ns, line


def decode_whole_reference(buf: bytes, max_frame: int, final: bool) -> WholeLines | None:
    """The whole frames at the start of ``buf`` if every one is a whole line as
    dockerd writes it (a source of stdout or stderr, a time, a line, each at most
    once, ``partial`` false if present), with a length within ``max_frame``, and
    ``final`` leaves no cut frame at the end; else None, and
    :class:`FrameDecoder` takes them its careful way (which counts every
    problem). The parse half of ``driver.whole_records_reference`` (and so of
    ``_speedups.whole_records``); what it returns is what protobuf's parse of
    the same frames gives."""
    lines: list[bytes] = []
    times: list[int] = []
    sources: list[str] = []
    pos = 0
    end = len(buf)
    while end - pos >= 4:
        (length,) = _LEN.unpack_from(buf, pos)
        if length > max_frame:
            return None
        stop = pos + 4 + length
        if stop > end:
            break
        entry = _whole_line(buf, pos + 4, stop)
        if entry is None:
            return None
        sources.append(entry[0])
        times.append(entry[1])
        lines.append(entry[2])
        pos = stop
    if final and pos < end:
        return None
    if sources.count(STDERR) == len(sources) and sources:
        return lines, times, STDERR, pos
    if sources.count(STDOUT) == len(sources):
        return lines, times, STDOUT, pos
    return lines, times, sources, pos


def encode_entry(source: str, time_ns: int, line: bytes) -> bytes:
    """One framed LogEntry, as ReadLogs returns it to dockerd."""
    body = LogEntry(source=source, time_nano=time_ns, line=line).SerializeToString()
    return _LEN.pack(len(body)) + body
