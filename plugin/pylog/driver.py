"""One container's logging session: its FIFO, decoder, record encoder and log.

A driver lives from StartLogging until its FIFO reaches EOF (after
StopLogging) or pylog shuts down. Nothing in here can fail a container: a
frame that does not decode is counted, a batch the disk refuses is counted as
dropped, and reading goes on either way so dockerd's writes never block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import LogOptions
from .framing import FrameDecoder, FrameErrors, decode_whole_reference
from .ingest import FifoReader
from .models import ContainerInfo
from .speedups import compiled
from .store import LogFile, StoreError
from .store.reader import ReadOptions, read_records
from .store.records import RecordEncoder, encode_lines_reference

log = logging.getLogger(__name__)

#: The records of a read's whole frames, how many, the bytes of their lines, and
#: the bytes the frames took (:func:`whole_records_reference`).
WholeRecords = tuple[bytes, int, int, int]


def whole_records_reference(
    buf: bytes, max_frame: int, final: bool, tails: tuple[bytes, bytes]
) -> WholeRecords | None:
    """Frames straight to records: :func:`~.framing.decode_whole_reference`, then
    :func:`~.store.records.encode_lines_reference` (``tails``:
    :attr:`RecordEncoder.whole_tails`); None where the first is None. The Python
    twin (the specification) of ``_speedups.whole_records``, which keeps no
    object per line."""
    whole = decode_whole_reference(buf, max_frame, final)
    if whole is None:
        return None
    lines, times, sources, used = whole
    records = encode_lines_reference(lines, times, sources, tails)
    if records is None:  # cannot be: decoded times are int64, sources stdout or stderr
        return None
    return records, len(lines), sum(map(len, lines)), used


#: Without the extension, reads take the decode and encode steps.
_whole_records = compiled.whole_records if compiled is not None else None


@dataclass
class DriverStats:
    lines_received: int = 0
    bytes_received: int = 0
    lines_stored: int = 0
    bytes_stored: int = 0
    lines_dropped_store: int = 0
    """Lines the disk refused (full, read-only...)."""


class ContainerDriver:
    """Reads one FIFO into one container's log."""

    def __init__(
        self,
        fifo: Path,
        info: ContainerInfo,
        options: LogOptions,
        logfile: LogFile,
        *,
        max_frame: int,
        on_done: Callable[[ContainerDriver, bool], None],
        resync: bool = False,
    ) -> None:
        """``resync``: the FIFO was being read by a process that died, so the
        stream may start mid-frame; decoding begins by looking for a frame start."""
        self.fifo = fifo
        self.info = info
        self.logfile = logfile
        self.stats = DriverStats()
        self.stopping = False
        self._on_done = on_done
        self._decoder = FrameDecoder(max_frame, resync=resync)
        self._check_replay = resync
        self._reported_errors = FrameErrors()
        self._store_failing = False
        attrs = options.extra_attributes(info.container_labels, info.env)
        if options.tag is not None:
            attrs["tag"] = options.tag.render(info)
        self._encoder = RecordEncoder(attrs)
        self._reader = FifoReader(
            fifo, self._on_data, self._on_end, name=f"pylog-fifo-{info.short_id}"
        )

    @property
    def frame_errors(self) -> FrameErrors:
        return self._decoder.errors

    def start(self) -> None:
        self._reader.start()

    def mark_stopping(self) -> None:
        """StopLogging: only marks the driver as stopping and returns at once; the reader
        drains the FIFO until dockerd closes it. :meth:`halt` is what stops reading."""
        self.stopping = True

    def halt(self) -> None:
        """pylog is shutting down: stop reading now, keep what is stored."""
        self._reader.halt()

    def join(self, timeout: float | None = None) -> bool:
        return self._reader.join(timeout)

    def _on_data(self, data: bytes, final: bool) -> tuple[int, int]:
        """Store the whole frames at the start of ``data``; returns the bytes they
        took and the length of the cut frame after them (see ingest.DataHandler).

        Whole lines as dockerd writes them (nearly every read) go from frames to
        records in one C call (:func:`whole_records_reference`); anything else is
        decoded (counting each problem) and then encoded."""
        decoder = self._decoder
        if _whole_records is not None and decoder.in_step:
            whole: WholeRecords | None = _whole_records(
                data, decoder.max_frame, final, self._encoder.whole_tails
            )
            if whole is not None:
                records, count, line_bytes, used = whole
                if count:
                    self._keep(records, count, line_bytes)
                return used, decoder.wanted(data, used)
        batch, used = decoder.decode(data, final=final)
        wanted = decoder.wanted(data, used)
        self._report_frame_errors()
        if batch.lines:
            records = self._encoder.encode_batch(batch)
            self._keep(records, len(batch.lines), sum(map(len, batch.lines)))
        return used, wanted

    def _keep(self, records: bytes, count: int, line_bytes: int) -> None:
        """Count and store the records of ``count`` lines received."""
        stats = self.stats
        stats.lines_received += count
        stats.bytes_received += line_bytes
        if self._check_replay:
            self._check_replay = False
            records, count = self._without_replay(records, count)
        self._store(records, count)

    def _without_replay(self, records: bytes, count: int) -> tuple[bytes, int]:
        """Drop the head of ``records`` that the log already ends with.

        A process killed after storing a batch but before taking it out of the
        FIFO leaves it there; the next process reads it again. Records carry
        nanosecond timestamps, so an exact match is the same line.
        """
        new = records.splitlines(keepends=True)
        tail = list(read_records(self.logfile, ReadOptions(tail=count)))
        start = 0
        while True:
            try:
                j = tail.index(new[0], start)
            except ValueError:
                return records, count
            if tail[j:] == new[: len(tail) - j]:
                dropped = len(tail) - j
                log.info(
                    "container %s: %d lines were stored before the restart, not storing again",
                    self.info.short_id,
                    dropped,
                )
                return b"".join(new[dropped:]), count - dropped
            start = j + 1

    def _store(self, records: bytes, count: int) -> None:
        if not records:
            return
        stats = self.stats
        try:
            written = self.logfile.append(records)
        except StoreError as exc:
            stats.lines_dropped_store += count
            if not self._store_failing:
                self._store_failing = True
                log.error(
                    "container %s: cannot store logs, dropping until the store recovers: %s",
                    self.info.short_id,
                    exc,
                )
            return
        if self._store_failing:
            self._store_failing = False
            log.warning(
                "container %s: storing logs again (%d lines dropped so far)",
                self.info.short_id,
                stats.lines_dropped_store,
            )
        stats.lines_stored += count
        stats.bytes_stored += written

    def _report_frame_errors(self) -> None:
        """Log the first problem of each kind per container; the counters keep the rest."""
        errors, seen = self._decoder.errors, self._reported_errors
        for kind in ("corrupt", "oversize", "truncated"):
            if getattr(errors, kind) and not getattr(seen, kind):
                setattr(seen, kind, 1)
                log.warning(
                    "container %s: %s frame on %s (further ones are only counted)",
                    self.info.short_id,
                    kind,
                    self.fifo.name,
                )

    def _on_end(self, eof: bool) -> None:
        self._report_frame_errors()
        self._on_done(self, eof)
