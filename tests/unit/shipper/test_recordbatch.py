"""pylog's record batches against aiokafka's own builder: the same bytes, batch by batch.

Both are filled with the same records, each batch as full as its rule allows,
and built; the result must be byte-identical for every codec (gzip only up
to its header's mtime, so there the decoded batches are compared), with and
without idempotence's producer state. The compiled append and its Python twin
run on every input.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import codec as aiokafka_codec
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylog.shipper import recordbatch
from pylog.shipper.compression import LZ4_LEVEL
from pylog.shipper.recordbatch import (
    CODECS,
    MAX_RAW_BATCH,
    CompressionRatio,
    RecordBatch,
    encode_records_reference,
)
from pylog.shipper.schema import OutRecord
from pylog.speedups import compiled

NO_LIMIT = 1 << 40


@pytest.fixture(params=["compiled", "reference"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "reference":
        monkeypatch.setattr(recordbatch, "_encode_records", encode_records_reference)
    else:
        assert compiled is not None, "pylog._speedups is not built"
        monkeypatch.setattr(recordbatch, "_encode_records", compiled.encode_records)
    yield request.param


@pytest.fixture(autouse=True)
def aiokafka_at_pylogs_lz4_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's builders compress LZ4 at pylog's level, so that the bytes compare
    (they look ``lz4_encode`` up in their module's globals at every build)."""
    fast = functools.partial(aiokafka_codec.lz4_encode, level=LZ4_LEVEL)
    for name in ("aiokafka.record.default_records", "aiokafka.record._crecords.default_records"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # the compiled variant is optional
            continue
        monkeypatch.setattr(module, "lz4_encode", fast)


def aiokafka_batches(
    records: list[OutRecord], key: bytes | None, size: int, codec: str, state: Any
) -> list[bytes]:
    out: list[bytes] = []
    builder: Any = None
    for value, headers, ts in records:
        if (
            builder is None
            or builder.append(timestamp=ts, key=key, value=value, headers=headers) is None
        ):
            if builder is not None:
                out.append(_built(builder, state))
            builder = BatchBuilder(size, CODECS[codec])
            assert builder.append(timestamp=ts, key=key, value=value, headers=headers) is not None
    if builder is not None:
        out.append(_built(builder, state))
    return out


def pylog_batches(
    records: list[OutRecord],
    key: bytes | None,
    size: int,
    codec: str,
    state: Any,
    chunk: int,
    precompress: bool = False,
) -> list[bytes]:
    """Filled the way batching fills them: one add per send of ``chunk`` records;
    with ``precompress``, each full batch compressed before the producer state is
    set (as the pump does for the next batch)."""
    out: list[bytes] = []
    batch: RecordBatch | None = None
    for i in range(0, len(records), chunk):
        part = records[i : i + chunk]
        j = 0
        while j < len(part):
            if batch is None or batch.closed():
                if batch is not None:
                    if precompress:
                        batch.compress()
                    out.append(_built(batch, state))
                batch = RecordBatch(size, codec, NO_LIMIT)
            j = batch.add(part, j, key)
    if batch is not None:
        out.append(_built(batch, state))
    return out


def _built(builder: Any, state: Any) -> bytes:
    if isinstance(builder, RecordBatch):
        return builder.stamp(*(state or (-1, -1, 0)))  # aiokafka's defaults
    if state is not None:
        builder._set_producer_state(*state)
    return bytes(builder._build())


def decoded(raw: bytes) -> tuple[Any, ...]:
    batch = DefaultRecordBatch(bytearray(raw))
    head = (
        batch.base_offset,
        batch.magic,
        batch.attributes,
        batch.last_offset_delta,
        batch.first_timestamp,
        batch.max_timestamp,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        batch.validate_crc(),
    )
    recs = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]
    return head, recs


values = st.binary(max_size=300)
headers = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))), max_size=3
)
stamps = st.integers(
    min_value=0, max_value=2**42
)  # aiokafka takes a first timestamp of -1 for none
out_records = st.lists(st.tuples(values, headers, stamps), min_size=1, max_size=40)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    out_records,
    st.one_of(st.none(), st.binary(max_size=70)),
    st.integers(min_value=70, max_value=3000),
    st.sampled_from(sorted(CODECS)),
    st.one_of(
        st.none(), st.tuples(st.integers(0, 2**40), st.integers(0, 100), st.integers(0, 2**30))
    ),
    st.integers(min_value=1, max_value=17),
    st.booleans(),
)
def test_same_batches_as_aiokafka(
    encoder: str,
    records: list[OutRecord],
    key: bytes | None,
    size: int,
    codec: str,
    state: Any,
    chunk: int,
    precompress: bool,
) -> None:
    theirs = aiokafka_batches(records, key, size, codec, state)
    ours = pylog_batches(records, key, size, codec, state, chunk, precompress)
    if codec == "gzip":  # the gzip header holds the time it was made
        assert [decoded(b) for b in ours] == [decoded(b) for b in theirs]
    else:
        assert ours == theirs
    assert all(decoded(b)[0][-1] for b in ours)  # CRC


def test_a_large_record_gets_a_batch_of_its_own(encoder: str) -> None:
    recs: list[OutRecord] = [(b"a", [], 1), (b"B" * 100, [], 2), (b"c", [], 3), (b"D" * 100, [], 4)]
    batch = RecordBatch(NO_LIMIT, "none", 100)
    assert batch.add(recs, 0, None) == 1 and batch.closed()
    batch = RecordBatch(NO_LIMIT, "none", 100)
    assert batch.add(recs, 1, None) == 2 and batch.closed()
    batch = RecordBatch(NO_LIMIT, "none", 100)
    assert batch.add(recs, 2, None) == 3 and batch.closed()
    batch = RecordBatch(NO_LIMIT, "none", 100)
    assert batch.add(recs, 3, None) == 4 and batch.closed()
    assert [r[3] for r in decoded(batch.stamp(-1, -1, 0))[1]] == [b"D" * 100]
    open_ = RecordBatch(NO_LIMIT, "none", 100)
    assert open_.add(recs[:1], 0, None) == 1 and not open_.closed()


def test_stamped_again_only_the_header_changes_and_the_crc_holds(encoder: str) -> None:
    """A batch renumbered after one before it was refused (pipeline.py)."""
    batch = RecordBatch(NO_LIMIT, "lz4", NO_LIMIT)
    batch.add([(b"x%d" % i, [("k", b"v")], 5 + i) for i in range(3)], 0, b"key")
    first = DefaultRecordBatch(bytearray(batch.stamp(7, 2, 10)))
    again = DefaultRecordBatch(bytearray(batch.stamp(7, 2, 4)))
    assert (first.base_sequence, again.base_sequence) == (10, 4)
    assert (again.producer_id, again.producer_epoch) == (7, 2)
    assert first.validate_crc() and again.validate_crc()
    assert [r.value for r in again] == [r.value for r in first] == [b"x0", b"x1", b"x2"]


def test_built_once_and_closed(encoder: str) -> None:
    batch = RecordBatch(NO_LIMIT, "lz4", NO_LIMIT)
    batch.add([(b"x" * 1000, [("k", b"v")], 5)], 0, b"key")
    first = batch.stamp(-1, -1, 0)
    assert batch.closed() and batch.stamp(-1, -1, 0) is first and batch.record_count() == 1
    assert batch.add([(b"y", [], 6)], 0, None) == 0


@pytest.mark.parametrize(
    "bad",
    [
        [("not bytes", [], 1)],
        [(b"v", (), 1)],
        [(b"v", [("k", "not bytes")], 1)],
        [(b"v", [(b"k", b"v")], 1)],
        [(b"v", [], "1")],
        [(b"v", [])],
    ],
)
def test_bad_records_raise(bad: list[Any]) -> None:
    assert compiled is not None
    for fn in (compiled.encode_records, encode_records_reference):
        with pytest.raises((TypeError, ValueError, AttributeError)):
            fn(bytearray(61), bad, 0, None, 0, 0, NO_LIMIT, NO_LIMIT)


def _log_lines(n: int) -> list[OutRecord]:
    return [(b'{"log":"GET /index.html 200 %d","stream":"stdout"}' % i, [], i) for i in range(n)]


def test_batch_size_counts_the_batch_as_sent_once_the_ratio_is_known(encoder: str) -> None:
    """The first batch of a partition takes batch_size bytes of records; once one
    was compressed, the next takes as many as compress to about batch_size
    (as the Java producer counts batch.size), never more than MAX_RAW_BATCH."""
    size = 64 * 1024
    recs = _log_lines(100_000)
    ratio = CompressionRatio()
    first = RecordBatch(size, "lz4", NO_LIMIT, ratio)
    taken = first.add(recs, 0, None)
    assert first.closed() and ratio.ratio == 1.0
    sent = len(first.stamp(-1, -1, 0))
    assert sent < size // 4  # log lines compress well
    assert ratio.ratio < 0.25
    second = RecordBatch(size, "lz4", NO_LIMIT, ratio)
    more = second.add(recs, taken, None) - taken
    assert more > 3 * taken
    assert len(second.stamp(-1, -1, 0)) <= size * 1.1
    assert sum(len(v) for v, _, _ in recs[taken : taken + more]) < MAX_RAW_BATCH


def test_records_that_compress_very_well_stop_at_max_raw_batch(encoder: str) -> None:
    ratio = CompressionRatio()
    ratio.observe(1_000_000, 1_000)
    assert ratio.raw_limit(256 * 1024) == MAX_RAW_BATCH
    assert ratio.raw_limit(4 << 20) == 4 << 20  # a larger batch_size still holds
    batch = RecordBatch(256 * 1024, "none", NO_LIMIT, ratio)
    end = batch.add([(b"x" * 1000, [], 1)] * 2000, 0, None)
    assert batch.closed() and 900 < end < 1000


def test_records_that_do_not_compress_keep_batches_at_batch_size() -> None:
    ratio = CompressionRatio()
    ratio.observe(100_000, 100_400)  # lz4 on random bytes: a little larger
    assert 0.99 * 100_000 < ratio.raw_limit(100_000) <= 100_000
    ratio.observe(0, 0)  # nothing learnt from an empty batch
    assert ratio.raw_limit(100_000) < 100_000


def test_a_bad_record_leaves_the_records_before_it_and_nothing_more() -> None:
    """The compiled append grows its buffer ahead of the records (doubling) and
    cuts it back on the way out, also when a record is refused."""
    assert compiled is not None
    bad: Any = ("not bytes", [], 99)
    records: list[Any] = [*[(b"v%d" % i * 50, [("k", b"v")], i) for i in range(40)], bad]
    bufs = []
    for fn in (compiled.encode_records, encode_records_reference):
        buf = bytearray(61)
        with pytest.raises(TypeError):
            fn(buf, records, 0, b"key", 0, 0, NO_LIMIT, NO_LIMIT)
        bufs.append(bytes(buf))
    assert bufs[0] == bufs[1] and len(bufs[0]) > 61 + 40 * 100


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_batch_split_in_two_holds_its_records_in_order(encoder: str, codec: str) -> None:
    """What a batch the broker refused as too large becomes (pipeline.TOO_LARGE)."""
    batch = RecordBatch(NO_LIMIT, codec, NO_LIMIT)
    batch.add([(b"a%d" % i, [("h", b"%d" % i)], 100 + i) for i in range(3)], 0, b"one")
    batch.add([(b"b%d" % i, [], 200 + i) for i in range(4)], 0, None)
    head, whole = decoded(batch.stamp(7, 1, 30))
    parts = batch.split()
    assert parts is not None and [p.record_count() for p in parts] == [3, 4]
    assert all(p.closed() for p in parts)
    got = []
    for p in parts:
        part_head, recs = decoded(p.stamp(7, 1, 30))
        assert part_head[-1]  # CRC
        got += [r[1:] for r in recs]  # offsets count from each batch's first
    assert got == [r[1:] for r in whole] and head[-1]
    single = RecordBatch(NO_LIMIT, codec, NO_LIMIT)
    single.add([(b"x", [], 1)], 0, None)
    assert single.split() is None


def test_unknown_compression_is_refused() -> None:
    make: Callable[[], RecordBatch] = lambda: RecordBatch(100, "brotli", 100)  # noqa: E731
    with pytest.raises(ValueError, match="brotli"):
        make()
