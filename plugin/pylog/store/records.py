"""json-file's record format: one JSON object per line.

``{"log":"<line>\\n","stream":"stdout","attrs":{...},"time":"<RFC3339Nano>"}``

A chunk of a line longer than 16 KiB, and a last line written without a
newline, are stored without the trailing ``\\n``, exactly as Docker's json-file
driver stores them, so ``docker logs`` prints the same bytes. Bytes that are not
valid UTF-8 become U+FFFD, one per bad byte, as Go's JSON encoder does.

This module is the only place that knows the format, both ways: it writes
records (:class:`RecordEncoder`) and reads them, whole (:func:`decode_record`,
:func:`record_time`) or, for the shipper's fast path, without decoding
(:func:`split_plain_run`, :func:`match_plain`). The files
underneath (:mod:`.logfile`) deal in opaque newline-terminated records; the
shipper (``shipper.assemble``, ``shipper.schema``) gets fields from here and
never looks inside a record itself.
"""

from __future__ import annotations

import codecs
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from ..models import Entry, EntryBatch
from ..speedups import compiled
from ..timefmt import NS_PER_SECOND, format_rfc3339nano, parse_record_time, seconds_of_prefix


def _go_replace(err: UnicodeError) -> tuple[str | bytes, int]:
    """U+FFFD for each byte that is not UTF-8 (decoding), or each lone surrogate
    (encoding: a ``\\ud800`` escape decodes to one), as Go's JSON does. The
    UTF-8 encoder takes a replacement that is not ASCII only as bytes."""
    if isinstance(err, UnicodeEncodeError):
        return "\ufffd".encode() * (err.end - err.start), err.end
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("pylog-go-replace", _go_replace)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


#: Bytes that JSON strings must escape; a line without them (and pure ASCII) is
#: copied into the record as it is, the common case on the hot path.
_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'


def _is_plain(data: bytes) -> bool:
    """ASCII with nothing to escape: copied into a record as it is."""
    return data.isascii() and len(data.translate(None, _ESCAPED_BYTES)) == len(data)


def _escaped(line: bytes) -> bytes:
    """A line as the text of a JSON string (no quotes): as it is when nothing in
    it needs escaping, else decoded (U+FFFD per byte that is not UTF-8) and
    escaped as Python's JSON encoder does."""
    if _is_plain(line):
        return line
    return _dumps(line.decode("utf-8", "pylog-go-replace"))[1:-1].encode()


class RecordEncoder:
    """Turns entries into record lines; ``attrs`` (labels, env, tag) are fixed per container."""

    def __init__(self, attrs: Mapping[str, str] | None = None) -> None:
        if attrs:
            middle = '","attrs":' + _dumps(dict(sorted(attrs.items()))) + ',"time":"'
        else:
            middle = '","time":"'
        self._tails = {
            (source, complete): (
                ('\\n"' if complete else '"') + ',"stream":"' + source + middle
            ).encode()
            for source in ("stdout", "stderr")
            for complete in (True, False)
        }
        #: The tails of whole lines, stdout's and stderr's (:func:`encode_lines_reference`).
        self.whole_tails = (self._tails["stdout", True], self._tails["stderr", True])
        # No second is cached yet. (Not -1: that is a real second, the one
        # before the epoch, whose records would then be written without a date.)
        self._last_second: int | None = None
        self._second_prefix = b""

    def _time(self, ns: int) -> bytes:
        seconds, frac = divmod(ns, NS_PER_SECOND)
        if seconds != self._last_second:
            self._last_second = seconds
            self._second_prefix = format_rfc3339nano(seconds * NS_PER_SECOND)[:-1].encode()
        if frac == 0:
            return self._second_prefix + b'Z"}\n'
        return self._second_prefix + (f".{frac:09d}".rstrip("0") + 'Z"}\n').encode()

    def encode(self, entry: Entry) -> bytes:
        source, time_ns, line, complete = entry
        return b'{"log":"' + _escaped(line) + self._tails[source, complete] + self._time(time_ns)

    def encode_batch(self, batch: EntryBatch) -> bytes:
        """The records of ``batch``, concatenated (each ends with ``\\n``).

        A batch of whole lines (nearly every batch) is made in one call in C
        (:func:`encode_lines_reference`); without the extension, one from one
        stream, within one second, with nothing to escape is formatted by one
        template per line. Anything else goes line by line through :meth:`encode`.
        """
        lines, times = batch.lines, batch.times
        if not lines:
            return b""
        source = batch.sources
        if not batch.incomplete and _encode_lines is not None:
            records: bytes | None = _encode_lines(lines, times, source, self.whole_tails)
            if records is not None:
                return records
        elif isinstance(source, str) and not batch.incomplete:
            joined = b"".join(lines)
            second = min(times) // NS_PER_SECOND
            if max(times) // NS_PER_SECOND == second and _is_plain(joined):
                return self._encode_run(lines, times, source, second)
        encode = self.encode
        return b"".join([encode(e) for e in batch.entries()])

    def _encode_run(self, lines: list[bytes], times: list[int], source: str, second: int) -> bytes:
        base = second * NS_PER_SECOND
        self._time(base)  # sets self._second_prefix
        fixed = (self._tails[source, True] + self._second_prefix).replace(b"%", b"%%")
        template = b'{"log":"%b' + fixed + b'.%09dZ"}\n'
        # Go's RFC 3339 with nanoseconds drops trailing zeros of the fraction
        # (and the dot with them); one time in ten ends in a zero.
        trimmed = b'{"log":"%b' + fixed + b'%bZ"}\n'
        return b"".join(
            [
                template % (line, frac)
                if (frac := t - base) % 10
                else trimmed % (line, _fraction(frac))
                for line, t in zip(lines, times, strict=True)
            ]
        )


def encode_lines_reference(
    lines: list[bytes], times: list[int], sources: str | list[str], tails: tuple[bytes, bytes]
) -> bytes | None:
    """The records of whole lines (``tails``: what follows the text of a stdout
    and a stderr line, up to the time), or None for a time that is not an int64
    of ns or a source that is neither stdout nor stderr: the Python twin (the
    specification) of ``_speedups.encode_lines``, which
    :meth:`RecordEncoder.encode_batch` uses. Each record is what
    :meth:`RecordEncoder.encode` makes of the line."""
    out: list[bytes] = []
    for i, (line, time_ns) in enumerate(zip(lines, times, strict=True)):
        source = sources if isinstance(sources, str) else sources[i]
        if source not in ("stdout", "stderr") or not -(2**63) <= time_ns < 2**63:
            return None
        tail = tails[source == "stderr"]
        out.append(
            b'{"log":"' + _escaped(line) + tail + format_rfc3339nano(time_ns).encode() + b'"}\n'
        )
    return b"".join(out)


_encode_lines = compiled.encode_lines if compiled is not None else None


def _fraction(frac: int) -> bytes:
    """``.123`` for 123,000,000 ns, nothing for 0: the fraction as Go prints it."""
    return (b".%09d" % frac).rstrip(b"0").rstrip(b".")


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record, decoded."""

    stream: str
    time_ns: int
    log: bytes
    """The line as stored: with its ``\\n`` unless it is an unfinished chunk."""
    path: str = ""
    """``attrs.path``: in a declared file log, the file (inside the container) the
    line was read from; empty elsewhere."""


class RecordError(ValueError):
    """A stored line that is not a json-file record."""


def decode_record(raw: bytes) -> Record:
    try:
        obj = json.loads(raw)
        log = obj["log"]
        stream = obj["stream"]
        time_text = obj["time"]
        time_ns = parse_record_time(time_text)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"not a json-file record: {exc}") from None
    if not isinstance(log, str) or not isinstance(stream, str):
        raise RecordError("not a json-file record: bad field types")
    attrs = obj.get("attrs")
    path = attrs.get("path") if isinstance(attrs, dict) else None
    line = log.encode("utf-8", "pylog-go-replace")
    return Record(stream, time_ns, line, path if isinstance(path, str) else "")


def record_time(raw: bytes) -> int:
    """The ``time`` of a record without decoding the whole object.

    pylog writes ``time`` last; records from elsewhere fall back to a full decode.
    """
    tail = raw[-48:]
    idx = tail.rfind(b'"time":"')
    if idx >= 0 and raw.endswith(b'"}\n'):
        try:
            return parse_record_time(tail[idx + 8 : -3].decode())
        except ValueError:
            pass
    return decode_record(raw).time_ns


# -- plain whole lines, read without decoding (the shipper's fast path) ----------------

#: A whole line as pylog stores it, matched without decoding: its escaped text
#: up to the escaped newline that ends it (an escape is taken as a pair, so an
#: escaped backslash before an ``n`` is not mistaken for one), the stream, attrs
#: (skipped), the time to the second and its fraction (Go trims trailing zeros:
#: 0 to 9 digits). Nothing in it matches a raw newline, so in a buffer of
#: records each match is one whole record. Anything else (a chunk, a line
#: without newline, another layout) must be read with :func:`decode_record`.
_PLAIN_RECORD = re.compile(
    rb'^\{"log":"([^"\\\n]*(?:\\[^\n][^"\\\n]*)*)\\n","stream":"(stdout|stderr)"'
    rb'(?:,"attrs":\{[^\n]*?\})?,"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z"\}$',
    re.MULTILINE,
)

#: One plain whole line's fields: its text JSON-escaped (no quotes, no newline;
#: it can be spliced into a JSON string as it is), its stream (``b"stdout"`` or
#: ``b"stderr"``), its time to the second (``YYYY-MM-DDTHH:MM:SS``, UTC, a valid
#: time) and the nine digits of its fraction of a second.
PlainFields = tuple[bytes, bytes, bytes, bytes]


#: Where a plain line's fields are in its stored record (:func:`split_plain_run`):
#: the end of its escaped text (which starts right after ``{"log":"``), the start
#: of its time (``YYYY-MM-DDTHH:MM:SS``), its stream (0 stdout, 1 stderr), how
#: many fraction digits follow the second (after a ``.``), and its time in ms
#: since the epoch. ``_speedups.c`` writes the same 20 bytes.
PLAIN_MARK = struct.Struct("<iiBBxxq")
#: Where a plain record's escaped text starts.
PLAIN_TEXT_START = len(b'{"log":"')
#: The stored streams by their number in a :data:`PLAIN_MARK`.
PLAIN_STREAMS = (b"stdout", b"stderr")


@dataclass(frozen=True, slots=True)
class PlainLines:
    """Plain whole lines, consecutive in a log: the stored records and a
    :data:`PLAIN_MARK` for each (``marks``), which say where their fields are, so
    that a Kafka value can be cut out of a record without reading it again."""

    records: list[bytes]
    marks: bytes
    longest: int
    """The longest escaped text of them, in bytes."""

    def __len__(self) -> int:
        return len(self.records)

    def fields(self) -> list[PlainFields]:
        """The same lines as :data:`PlainFields` (tests and tools)."""
        out: list[PlainFields] = []
        for raw, (text_end, time_start, stream, frac_len, _) in zip(
            self.records, PLAIN_MARK.iter_unpack(self.marks), strict=True
        ):
            frac = raw[time_start + 20 : time_start + 20 + frac_len]
            out.append(
                (
                    raw[PLAIN_TEXT_START:text_end],
                    PLAIN_STREAMS[stream],
                    raw[time_start : time_start + 19],
                    frac.ljust(9, b"0"),
                )
            )
        return out


@lru_cache(maxsize=4096)
def _second_ms(second: bytes) -> int | None:
    seconds = seconds_of_prefix(second)
    return None if seconds is None else seconds * 1000


def scan_plain_reference(batch: list[bytes]) -> tuple[bytes, int] | None:
    """The marks of ``batch`` and its longest escaped text if every record is a plain
    whole line with a valid time, else None: the Python twin (the specification)
    of ``_speedups.scan_plain`` (see :mod:`pylog.speedups`)."""
    if not batch:
        return None
    marks = bytearray()
    longest = 0
    last = len(batch) - 1
    for i, raw in enumerate(batch):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif i != last:
            return None
        m = _PLAIN_RECORD.fullmatch(raw)
        if m is None:
            return None
        ms = _second_ms(m[3])
        if ms is None:
            return None
        frac = m[4] or b""
        marks += PLAIN_MARK.pack(
            m.end(1),
            m.start(3),
            PLAIN_STREAMS.index(m[2]),
            len(frac),
            ms + int(frac[:3].ljust(3, b"0")),
        )
        longest = max(longest, m.end(1) - m.start(1))
    return bytes(marks), longest


_scan_plain = compiled.scan_plain if compiled is not None else scan_plain_reference


def split_plain_run(batch: list[bytes]) -> PlainLines | None:
    """Every record of ``batch`` as a plain whole line, or None if any is not one
    (one pass in C, see :mod:`pylog.speedups`)."""
    scanned = _scan_plain(batch)
    if scanned is None:
        return None
    return PlainLines(batch, scanned[0], scanned[1])


def match_plain(raw: bytes) -> tuple[PlainFields, int] | None:
    """The fields and time (ns since the epoch) of one record if it is a plain whole
    line with a valid time, else None."""
    plain = _PLAIN_RECORD.match(raw)
    if plain is None:
        return None
    escaped, stream, second, fraction = plain.groups(b"")
    seconds = seconds_of_prefix(second)
    if seconds is None:
        return None
    nanos = fraction.ljust(9, b"0")
    return (escaped, stream, second, nanos), seconds * NS_PER_SECOND + int(nanos)


def plain_time_ns(second: bytes, nanos: bytes) -> int:
    """Nanoseconds since the epoch of a plain line's time (see :data:`PlainFields`)."""
    seconds = seconds_of_prefix(second)
    if seconds is None:
        raise RecordError(f"not a stored time: {second!r}")
    return seconds * NS_PER_SECOND + int(nanos)
