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
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from .models import Entry
from .wire.entry_pb2 import LogEntry

_LEN = struct.Struct(">I")
_SYNC = b"\x0a\x06std"
_SYNC_TAILS = (b"out", b"err")

DEFAULT_MAX_FRAME = 1 << 20


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
    """Incremental decoder: feed it bytes in any chunking, get whole entries."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, resync: bool = False) -> None:
        """``resync=True`` for a stream that may begin mid-frame (reattaching to a FIFO
        another process was reading): decoding starts at the first plausible frame."""
        if max_frame < 16:
            raise ValueError("max_frame too small")
        self.max_frame = max_frame
        self.errors = FrameErrors()
        self._buf = bytearray()
        self._resync = resync

    def feed(self, data: bytes) -> list[Entry]:
        """Append ``data`` and return every entry completed by it, in order.

        A frame cut by the end of ``data`` is kept until the next call.
        """
        buf: bytes = bytes(self._buf) + data if self._buf else data
        out, used = self.decode(buf)
        self._buf = bytearray(buf[used:])
        return out

    def decode(self, buf: bytes, *, final: bool = False) -> tuple[list[Entry], int]:
        """Decode the whole frames at the start of ``buf``; returns them and the bytes used.

        Nothing is buffered: bytes past the last whole frame are left for the
        caller to pass again with more data (the FIFO reader leaves them in the
        pipe). ``final`` says no more bytes can ever complete a trailing frame
        (end of stream, or a pipe full of one frame bigger than the pipe): that
        frame is then given up, counted, and decoding resynchronises after it.
        """
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

    def close(self) -> list[Entry]:
        """End of stream: a trailing cut frame is counted as truncated; returns any
        entries found after it while resynchronising."""
        out: list[Entry] = []
        if self._buf:
            out, _ = self.decode(bytes(self._buf), final=True)
            self._buf.clear()
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buf)


def encode_entry(source: str, time_ns: int, line: bytes) -> bytes:
    """One framed LogEntry, as ReadLogs returns it to dockerd."""
    body = LogEntry(source=source, time_nano=time_ns, line=line).SerializeToString()
    return _LEN.pack(len(body)) + body


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """Frames for entries as dockerd writes them to a FIFO (tests, tools)."""
    parts: list[bytes] = []
    for e in entries:
        msg = LogEntry(source=e.source, time_nano=e.time_ns, line=e.line)
        if not e.complete:
            msg.partial = True
        body = msg.SerializeToString()
        parts.append(_LEN.pack(len(body)))
        parts.append(body)
    return b"".join(parts)
