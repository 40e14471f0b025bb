"""The body of a ReadLogs response: stored records back into framed LogEntry messages.

``docker logs`` on a pylog container asks the plugin (ReadLogs) and prints what
it returns: a stream of ``[uint32 big-endian length][protobuf LogEntry]``
frames (:mod:`.framing`), one per stored record, with the record's stream,
time and line as it was stored (a whole line keeps its ``\\n``, as json-file's
reader gives it; a chunk of a long line does not have one).

A batch of plain whole lines (:func:`~.store.records.split_plain_run`, the
common case) is turned into frames in one call (:func:`plain_frames_reference`
and its compiled twin, see :mod:`.speedups`); anything else, and a plain batch
whose text the fast path leaves to a full decode, record by record
(:func:`~.store.records.decode_record`). A record that cannot be read, or
whose time a LogEntry cannot carry (an int64 of nanoseconds: 1678 to 2262), is
skipped and counted, never the end of the stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from . import framing
from .speedups import compiled
from .store.records import (
    PLAIN_MARK,
    PlainLines,
    RecordError,
    decode_record,
    plain_time_ns,
    split_plain_run,
)

log = logging.getLogger(__name__)

#: A LogEntry's ``time_nano`` is an int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def plain_frames_reference(batch: list[bytes], marks: bytes) -> bytes | None:
    """The frames of plain whole lines (``batch`` and its ``marks`` from
    :func:`~.store.records.split_plain_run`), or None when a line's text is one
    only a full decode may judge. The Python twin (the specification) of
    ``_speedups.plain_frames``: the same bytes as :func:`decode_record` and
    :func:`~.framing.encode_entry` make, record by record."""
    if len(marks) != len(batch) * PLAIN_MARK.size:
        raise ValueError("plain_frames: marks do not match the batch")
    out: list[bytes] = []
    for escaped, stream, second, nanos in PlainLines(batch, marks, 0).fields():
        try:
            # Strict UTF-8 first: json.loads would guess an encoding from the
            # first bytes, and let surrogates through.
            text: str = json.loads((b'"' + escaped + b'"').decode())
            line = text.encode() + b"\n"
        except ValueError:  # an unknown escape, a control byte, a lone surrogate
            return None
        time_ns = plain_time_ns(second, nanos)
        if not INT64_MIN <= time_ns <= INT64_MAX:
            return None
        out.append(framing.encode_entry(stream.decode(), time_ns, line))
    return b"".join(out)


_plain_frames = compiled.plain_frames if compiled is not None else plain_frames_reference


def batch_frames(batch: list[bytes]) -> tuple[bytes, int]:
    """The frames of a batch of stored records, and how many of them could not be read."""
    plain = split_plain_run(batch)
    if plain is not None:
        frames = _plain_frames(plain.records, plain.marks)
        if frames is not None:
            return frames, 0
    out: list[bytes] = []
    bad = 0
    for raw in batch:
        try:
            rec = decode_record(raw)
        except RecordError:
            bad += 1
            continue
        if not INT64_MIN <= rec.time_ns <= INT64_MAX:
            bad += 1  # a stored time before 1678 or after 2262: no LogEntry holds it
            continue
        out.append(framing.encode_entry(rec.stream, rec.time_ns, rec.log))
    return b"".join(out), bad


def frames(batches: Iterator[list[bytes]], short_id: str) -> Iterator[bytes]:
    """The ReadLogs body: the frames of each batch (empty ones left out); the
    records skipped as unreadable are logged once, at the end."""
    bad = 0
    for batch in batches:
        body, skipped = batch_frames(batch)
        bad += skipped
        if body:
            yield body
    if bad:
        log.warning("container %s: skipped %d unreadable records", short_id, bad)
