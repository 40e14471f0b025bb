"""A Kafka record batch (message format v2) built by pylog, sent by :mod:`.pipeline`.

aiokafka's own builder (``BatchBuilder``, what ``create_batch`` returns) takes
one Python call per record, and that call was the largest single cost of a
shipping process once values were made in C (a quarter of its CPU: about 1 us
a record, for a few varints and copies). :class:`RecordBatch` appends a whole
send's records with one call (``_speedups.encode_records``, see
:mod:`pylog.speedups`; its Python twin :func:`encode_records_reference` is the
specification) and builds the same bytes aiokafka's builder builds for the same
records: the same layout, the same fill rule (a record that would take the
batch to its limit or past it waits for the next batch, except that an
empty batch takes any record), the same compression (always, even when it does
not make the batch smaller, as aiokafka's compiled builder does; LZ4 at
pylog's level, :mod:`.compression`) and the same producer state fields.
``tests/unit/shipper/test_recordbatch.py`` compares the two byte for byte, for
every codec.

A batch's limit is ``batch_size`` bytes as sent, compressed, as with the Java
producer's ``batch.size`` (:class:`CompressionRatio`): the records before
compression may take up to ``batch_size`` divided by how well the partition's last
batch compressed, at most :data:`MAX_RAW_BATCH` bytes (or ``batch_size`` if larger).

The records are compressed and the batch built once (:meth:`stamp`); its header
is written again only when its producer ID, epoch or first sequence number
change (a batch renumbered after one before it was refused).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.util import calc_crc32c

from ..speedups import compiled
from .compression import LZ4_LEVEL
from .schema import OutRecord

#: The v2 batch header: base offset, length, partition leader epoch, magic, CRC,
#: attributes, last offset delta, first and max timestamp, producer id and
#: epoch, base sequence, record count.
HEADER = struct.Struct(">qiibIhiqqqhii")
#: The CRC covers everything from the attributes on.
ATTRIBUTES_OFFSET = struct.calcsize(">qiibI")
CRC_OFFSET = struct.calcsize(">qiib")
#: The length counts everything after itself.
AFTER_LENGTH = struct.calcsize(">qi")
MAGIC = 2
NO_PARTITION_LEADER_EPOCH = -1

#: The codec ids of the batch attributes, by pylog's ``compression`` setting.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

_ENCODERS: dict[int, Callable[[bytes], bytes]] = {
    1: codec.gzip_encode,
    2: codec.snappy_encode,
    3: lambda data: codec.lz4_encode(data, level=LZ4_LEVEL),
    4: codec.zstd_encode,
}

#: The most bytes of records (before compression) a batch takes, however well they
#: compress, unless ``batch_size`` is larger: records that do not compress at all
#: still make a batch within a broker's default ``message.max.bytes`` (1,048,588).
MAX_RAW_BATCH = 1_000_000

#: A size no batch reaches (the parts of a split batch take all of its records).
_UNLIMITED = 1 << 62


class CompressionRatio:
    """How well one partition's last batch compressed: sizes the batches after it.

    Why: with ``batch_size`` counted before compression, 256 KiB of log lines
    compressed to batches of 7.6 KB (a ratio of 0.03), seven times as many batches
    and produce requests as Kafka's ProducerPerformance made of the same records
    with the same ``batch.size`` (which the Java producer counts after compression,
    estimated the same way), and the broker spent 5.4 CPU s per million records
    on them against 3.3.
    """

    __slots__ = ("ratio",)

    def __init__(self) -> None:
        #: Bytes sent per byte of records; 1.0 until a batch was compressed.
        self.ratio = 1.0

    def observe(self, raw: int, sent: int) -> None:
        """A batch of ``raw`` bytes of records compressed to ``sent`` bytes."""
        if raw > 0 and sent > 0:
            self.ratio = sent / raw

    def raw_limit(self, batch_size: int) -> int:
        """The bytes of records a batch may take to be about ``batch_size`` once compressed."""
        return min(max(batch_size, MAX_RAW_BATCH), int(batch_size / self.ratio))


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _varint(value: int) -> bytes:
    u = _zigzag(value) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def encode_records_reference(
    buf: bytearray,
    records: list[OutRecord],
    start: int,
    key: bytes | None,
    first_ts: int,
    offset: int,
    batch_size: int,
    alone: int,
) -> tuple[int, int, bool]:
    """Append ``records[start:end]`` to ``buf`` in the v2 record layout; returns
    ``(end, max_ts, stop)``: the Python twin (the specification) of
    ``_speedups.encode_records``.

    Offset deltas count from ``offset`` (the records already in the batch),
    timestamp deltas from ``first_ts``. A record that would take ``buf`` to
    ``batch_size`` or past it is left for the next batch unless the batch is empty
    (``offset`` 0); a record whose value is ``alone`` bytes or more only goes
    into an empty batch, and nothing after it. ``stop`` tells that the batch
    must be closed (a record did not fit, or it holds such a record);
    ``max_ts`` is the largest timestamp appended (-2**63 if none)."""
    max_ts = -(2**63)
    r = start
    while r < len(records):
        value, headers, ts = records[r]
        if not isinstance(value, bytes) or not isinstance(headers, list):
            raise TypeError("encode_records: value must be bytes, headers a list")
        if offset > 0 and len(value) >= alone:
            return r, max_ts, True
        body = bytearray(b"\x00")
        body += _varint(ts - first_ts) + _varint(offset)
        body += _varint(-1) if key is None else _varint(len(key)) + key
        body += _varint(len(value)) + value + _varint(len(headers))
        for name, hvalue in headers:
            kb = name.encode()
            body += _varint(len(kb)) + kb
            body += _varint(-1) if hvalue is None else _varint(len(hvalue)) + hvalue
        record = _varint(len(body)) + body
        if offset > 0 and len(record) + len(buf) >= batch_size:
            return r, max_ts, True
        buf += record
        max_ts = max(max_ts, ts)
        offset += 1
        r += 1
        if len(value) >= alone:
            return r, max_ts, True
    return r, max_ts, False


_encode_records = compiled.encode_records if compiled is not None else encode_records_reference


class RecordBatch:
    """One batch being filled (:meth:`add`), then built once for aiokafka.

    ``alone``: a record whose value has at least this many bytes gets a batch
    of its own (see ``batching.LARGE_RECORD``). ``ratio``: how well its
    partition's batches compress, which sets how many bytes of records it takes
    (:class:`CompressionRatio`; without one, ``batch_size`` bytes).
    """

    __slots__ = (
        "_alone",
        "_attributes",
        "_batch_size",
        "_buffer",
        "_built",
        "_closed",
        "_codec",
        "_compression",
        "_count",
        "_first_ts",
        "_max_ts",
        "_producer",
        "_ratio",
    )

    def __init__(
        self,
        batch_size: int,
        compression: str,
        alone: int,
        ratio: CompressionRatio | None = None,
    ) -> None:
        if compression not in CODECS:
            raise ValueError(f"unknown compression {compression!r}")
        self._batch_size = batch_size
        self._compression = compression
        self._codec = CODECS[compression]
        self._alone = alone
        self._ratio = ratio
        self._buffer = bytearray(HEADER.size)
        self._count = 0
        self._first_ts = 0
        self._max_ts = 0
        self._closed = False
        self._built: bytes | None = None
        #: The batch attributes (its codec) once compressed; -1 before.
        self._attributes = -1
        #: producer id, epoch and base sequence (aiokafka's builder's defaults until stamped).
        self._producer = (-1, -1, 0)

    def add(self, records: list[OutRecord], start: int, key: bytes | None) -> int:
        """Append records from ``start`` on, as many as fit; returns the index of
        the first one not appended. The batch closes itself when one did not fit
        (or it took a record of ``alone`` bytes or more)."""
        if self._closed or start >= len(records):
            return start
        if self._count == 0:
            self._first_ts = records[start][2]
            self._max_ts = self._first_ts
        limit = self._batch_size
        if self._ratio is not None:
            # Read at every add: the batches before this one are compressed late
            # (when sent), and the estimate moves with them.
            limit = self._ratio.raw_limit(limit)
        end, max_ts, stop = _encode_records(
            self._buffer,
            records,
            start,
            key,
            self._first_ts,
            self._count,
            limit,
            self._alone,
        )
        self._count += end - start
        self._max_ts = max(self._max_ts, max_ts)
        if stop:
            self._closed = True
        return end

    def record_count(self) -> int:
        return self._count

    def split(self) -> list[RecordBatch] | None:
        """Its records as two batches of half of them each, in order, with their
        keys, headers and timestamps (a batch the broker refused as too large, see
        ``pipeline.TOO_LARGE``); None for a batch of fewer than two records."""
        if self._count < 2:
            return None
        records = list(DefaultRecordBatch(bytearray(self._build())))
        half = len(records) // 2
        parts = []
        for part in (records[:half], records[half:]):
            batch = RecordBatch(_UNLIMITED, self._compression, _UNLIMITED)
            for r in part:
                batch.add([(r.value, list(r.headers), r.timestamp)], 0, r.key)
            batch.close()
            parts.append(batch)
        return parts

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def compress(self) -> None:
        """Compress the records (closing the batch); :meth:`_build` does it if not done."""
        if self._attributes < 0:
            self._closed = True
            encode = _ENCODERS.get(self._codec)
            if encode is None:
                self._attributes = 0
            else:
                with memoryview(self._buffer) as view:  # one copy of the records, not two
                    records = bytes(view[HEADER.size :])
                compressed = encode(records)
                if self._ratio is not None:
                    self._ratio.observe(len(records), len(compressed))
                self._buffer = bytearray(HEADER.size) + compressed
                self._attributes = self._codec

    def _build(self) -> bytes:
        """The batch's bytes with its current producer state (built on the first call)."""
        if self._built is None:
            self.compress()
            buf = self._buffer
            self._buffer = bytearray()
            self._built = self._pack(buf)
        return self._built

    def stamp(self, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        """The batch's bytes for this producer ID, epoch and first sequence number
        (``pipeline.PartitionSender``: built once, the header written again when the
        numbers change, as after a batch before it was rejected)."""
        state = (producer_id, producer_epoch, base_sequence)
        if self._built is None or state != self._producer:
            self._producer = state
            if self._built is None:
                return self._build()
            self._built = self._pack(bytearray(self._built))
        return self._built

    def _pack(self, buf: bytearray) -> bytes:
        """Write the header (and its CRC) into ``buf``, which holds the compressed records."""
        producer_id, producer_epoch, base_sequence = self._producer
        HEADER.pack_into(
            buf,
            0,
            0,
            len(buf) - AFTER_LENGTH,
            NO_PARTITION_LEADER_EPOCH,
            MAGIC,
            0,
            self._attributes,
            max(0, self._count - 1),
            self._first_ts,
            self._max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            self._count,
        )
        struct.pack_into(">I", buf, CRC_OFFSET, calc_crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
        return bytes(buf)
