"""json-file's record format: one JSON object per line.

``{"log":"<line>\\n","stream":"stdout","attrs":{...},"time":"<RFC3339Nano>"}``

A chunk of a line longer than 16 KiB, and a last line written without a
newline, are stored without the trailing ``\\n``, exactly as Docker's json-file
driver stores them, so ``docker logs`` prints the same bytes. Bytes that are not
valid UTF-8 become U+FFFD, one per bad byte, as Go's JSON encoder does.

This module is the only place that knows the format; the files underneath
(:mod:`.logfile`) deal in opaque newline-terminated records.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..models import Entry
from ..timefmt import format_rfc3339nano, parse_record_time


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("pylog-go-replace", _go_replace)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RecordEncoder:
    """Turns entries into record lines; ``attrs`` (labels, env, tag) are fixed per container."""

    def __init__(self, attrs: Mapping[str, str] | None = None) -> None:
        if attrs:
            self._middle = '","attrs":' + _dumps(dict(sorted(attrs.items()))) + ',"time":"'
        else:
            self._middle = '","time":"'

    def encode(self, entry: Entry) -> bytes:
        text = entry.line.decode("utf-8", "pylog-go-replace")
        if entry.complete:
            text += "\n"
        return (
            '{"log":'
            + _dumps(text)
            + ',"stream":"'
            + entry.source
            + self._middle
            + format_rfc3339nano(entry.time_ns)
            + '"}\n'
        ).encode()

    def encode_all(self, entries: list[Entry]) -> list[bytes]:
        return [self.encode(e) for e in entries]


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record, decoded."""

    stream: str
    time_ns: int
    log: bytes
    """The line as stored: with its ``\\n`` unless it is an unfinished chunk."""
    attrs: Mapping[str, str] | None = None


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
    return Record(stream, time_ns, log.encode(), obj.get("attrs"))


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
