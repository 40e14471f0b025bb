"""What pylog relies on in aiokafka, checked against aiokafka's own objects (no broker).

``shipper/batching.py`` works around three aiokafka behaviours and
``shipper/compression.py`` patches aiokafka's LZ4 level; both name the aiokafka
version they were written against. These tests fail when aiokafka changes what
they rely on: then re-read those docstrings and re-check each workaround (it may
have become wrong, or no longer needed). The sender's behaviour needs a broker:
``tests/kafka/test_aiokafka_contract.py``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, codec
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.protocol.metadata import MetadataResponse_v0
from aiokafka.record import default_records
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import TopicPartition
from pylog.shipper import batching, compression, recordbatch
from pylog.shipper.recordbatch import RecordBatch

TP = TopicPartition("t", 0)
LZ4 = 3  # aiokafka's compression type code
RECHECK = (
    "re-check the workarounds in pylog/shipper/batching.py and compression.py "
    "against this aiokafka, then update their docstrings and AIOKAFKA_VERSIONS"
)


def test_installed_aiokafka_is_a_version_the_workarounds_name() -> None:
    installed = importlib.metadata.version("aiokafka")
    assert installed in batching.AIOKAFKA_VERSIONS, f"aiokafka {installed} is installed: {RECHECK}"
    for module in (batching, compression, recordbatch):
        assert f"aiokafka **{installed}**" in (module.__doc__ or ""), (
            f"{module.__name__}'s docstring does not name aiokafka {installed}: {RECHECK}"
        )


# ---------------------------------------------------------------- batching, behaviour 1


def _accumulator() -> MessageAccumulator:
    """aiokafka's accumulator with one topic partition led by broker 0, no linger."""
    cluster = ClusterMetadata()
    cluster.update_metadata(
        MetadataResponse_v0(
            brokers=[(0, "localhost", 9092)],
            topics=[(0, TP.topic, [(0, TP.partition, 0, [0], [0])])],
        )
    )
    return MessageAccumulator(cluster, 16384, 0, 30.0, linger_ms=0)


def _builder(acc: MessageAccumulator, value: bytes) -> Any:
    builder = acc.create_builder()
    assert builder.append(timestamp=None, key=None, value=value) is not None
    return builder


def _drain(acc: MessageAccumulator) -> list[bytes]:
    """What the sender would take now: the first record's value of each batch."""
    nodes, unknown = acc.drain_by_nodes(ignore_nodes=set())
    assert not unknown
    return [
        next(iter(DefaultRecordBatch(bytes(batch.get_data_buffer())))).value
        for batches in nodes.values()
        for batch in batches.values()
    ]


def test_accumulator_queues_one_batch_per_partition_and_others_wait_for_it() -> None:
    """Behaviour 1: a second ``send_batch`` of a partition waits until the queued one
    was taken by the sender; one caller per partition (the pump) is all it serves."""

    async def run() -> None:
        acc = _accumulator()
        await acc.add_batch(_builder(acc, b"a"), TP, timeout=5)
        b = asyncio.ensure_future(acc.add_batch(_builder(acc, b"b"), TP, timeout=5))
        c = asyncio.ensure_future(acc.add_batch(_builder(acc, b"c"), TP, timeout=5))
        await asyncio.sleep(0.1)
        assert not b.done() and not c.done(), f"aiokafka queues more than one batch: {RECHECK}"
        assert _drain(acc) == [b"a"]
        await asyncio.sleep(0.05)
        assert b.done() and not c.done(), f"aiokafka let both waiters in: {RECHECK}"
        assert _drain(acc) == [b"b"]
        await asyncio.sleep(0.05)
        assert c.done()
        assert _drain(acc) == [b"c"]

    asyncio.run(run())


def test_accumulator_takes_the_whole_wait_off_the_timeout_at_every_wake_up() -> None:
    """Behaviour 1: with three callers on a partition, the last one is woken twice
    and times out before its timeout, with the partition's slot free.

    ``add_batch`` does ``timeout -= time.monotonic() - start`` with ``start`` set
    once: woken at 0.9 s and 1.4 s, a caller with 2 s has 2 - 0.9 - 1.4 < 0 left.
    If this fails, aiokafka counts its timeout right now: the single caller per
    partition in batching.py may no longer be needed.
    """
    timeout, first_drain, second_drain = 2.0, 0.9, 1.4

    async def run() -> tuple[BaseException | None, float, bool]:
        acc = _accumulator()
        await acc.add_batch(_builder(acc, b"a"), TP, timeout=timeout)
        start = time.monotonic()
        b = asyncio.ensure_future(acc.add_batch(_builder(acc, b"b"), TP, timeout=timeout))
        c = asyncio.ensure_future(acc.add_batch(_builder(acc, b"c"), TP, timeout=timeout))
        await asyncio.sleep(first_drain)
        assert _drain(acc) == [b"a"]
        await asyncio.sleep(second_drain - first_drain)
        assert b.done() and not c.done()
        assert _drain(acc) == [b"b"]
        free = not acc._batches.get(TP)
        results = await asyncio.gather(c, return_exceptions=True)
        outcome = results[0] if isinstance(results[0], BaseException) else None
        return outcome, time.monotonic() - start, free

    error, waited, free = asyncio.run(run())
    assert free
    assert isinstance(error, KafkaTimeoutError), (
        f"the third caller got in ({error!r}): aiokafka no longer shrinks the timeout "
        f"twice; {RECHECK}"
    )
    assert waited < timeout, f"it timed out after {waited:.2f} s, its full timeout"


# ---------------------------------------------------------------- LZ4 level patch


# ---------------------------------------------------------------- pylog's record batch in aiokafka


def _idempotent_accumulator(
    epoch: int,
) -> tuple[AIOKafkaProducer, TransactionManager, MessageAccumulator]:
    """A real idempotent producer, never started (its TransactionManager is made
    here, with producer id 7 and ``epoch``), and an accumulator for TP that uses
    it. Call from a running loop."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True)
    txn = producer._txn_manager
    assert isinstance(txn, TransactionManager), f"no TransactionManager: {RECHECK}"
    txn.set_pid_and_epoch(7, epoch)
    cluster = ClusterMetadata()
    cluster.update_metadata(
        MetadataResponse_v0(
            brokers=[(0, "localhost", 9092)],
            topics=[(0, TP.topic, [(0, TP.partition, 0, [0], [0])])],
        )
    )
    acc = MessageAccumulator(cluster, 16384, 0, 30.0, linger_ms=0, txn_manager=txn)
    return producer, txn, acc


def test_the_accumulator_sends_pylogs_record_batch_and_sets_its_producer_state() -> None:
    """aiokafka takes a RecordBatch where its own builder goes (``send_batch`` ->
    ``MessageBatch``): it counts its records, numbers it for idempotence through
    ``_set_producer_state`` and sends what ``_build`` returns (recordbatch.py)."""

    async def run() -> tuple[int, Any]:
        producer, _, acc = _idempotent_accumulator(epoch=3)
        batch = RecordBatch(16384, "lz4", 1 << 20)
        records: list[Any] = [(b"%d" % i, [("stream", b"stdout")], 1000 + i) for i in range(5)]
        assert batch.add(records, 0, b"key") == 5
        await acc.add_batch(batch, TP, 5.0)
        nodes, _ = acc.drain_by_nodes(ignore_nodes=set())
        (sent,) = [b for batches in nodes.values() for b in batches.values()]
        data = bytes(sent.get_data_buffer())
        await producer.stop()
        return sent.record_count, DefaultRecordBatch(bytearray(data))

    count, built = asyncio.run(run())
    assert count == 5, f"MessageBatch no longer counts through record_count(): {RECHECK}"
    assert (built.producer_id, built.producer_epoch, built.base_sequence) == (7, 3, 0), (
        f"the producer state no longer reaches the builder: {RECHECK}"
    )
    assert built.validate_crc()
    assert [(r.key, r.value, r.timestamp) for r in built] == [
        (b"key", b"%d" % i, 1000 + i) for i in range(5)
    ]


def test_lz4_encode_takes_a_level_and_defaults_to_high_compression() -> None:
    """``use_fast_lz4`` binds ``level`` of aiokafka's encoder; 9 (HC) is why it exists."""
    params = inspect.signature(codec.lz4_encode).parameters
    assert list(params)[:2] == ["payload", "level"], f"{params}: {RECHECK}"
    assert params["level"].default == 9, f"aiokafka's LZ4 level is no longer 9: {RECHECK}"


@pytest.fixture
def builder_modules() -> Iterator[list[ModuleType]]:
    """The batch builder modules, their ``lz4_encode`` restored after the test."""
    modules = compression._modules()
    saved = [(m, m.lz4_encode) for m in modules if hasattr(m, "lz4_encode")]
    yield modules
    for module, encode in saved:
        module.lz4_encode = encode  # type: ignore[attr-defined]


def _lines(n: int) -> list[bytes]:
    return [b'{"v":1,"message":"GET /api/items/%d 200 %d ms"}' % (i, i % 97) for i in range(n)]


def _build(builder_class: Any, values: list[bytes]) -> bytes:
    builder = builder_class(2, LZ4, 0, -1, -1, 0, 1 << 20)
    for i, value in enumerate(values):
        assert builder.append(i, timestamp=i, key=b"k", value=value, headers=[]) is not None
    return bytes(builder.build())


@pytest.mark.parametrize(
    "builder_class",
    [
        pytest.param(default_records._DefaultRecordBatchBuilderPy, id="python"),
        # what aiokafka uses: the compiled builder when its extension is there
        pytest.param(default_records.DefaultRecordBatchBuilder, id="default"),
    ],
)
def test_the_lz4_patch_changes_what_the_builders_compress_and_it_reads_back(
    builder_modules: list[ModuleType], builder_class: Any
) -> None:
    """The builders look ``lz4_encode`` up in their module at every build: pointing
    it at level 1 changes the bytes built, and they still read back whole."""
    assert {m.__name__ for m in builder_modules} >= {"aiokafka.record.default_records"}
    for module in builder_modules:
        assert hasattr(module, "lz4_encode"), f"{module.__name__} has no lz4_encode: {RECHECK}"
    values = _lines(2000)
    for module in builder_modules:
        module.lz4_encode = codec.lz4_encode  # type: ignore[attr-defined]
    high = _build(builder_class, values)
    assert compression.use_fast_lz4() == len(builder_modules)
    fast = _build(builder_class, values)
    assert fast != high, f"the LZ4 patch no longer reaches {builder_class.__name__}: {RECHECK}"
    for data in (high, fast):
        batch = DefaultRecordBatch(data)
        assert batch.compression_type == LZ4
        assert [r.value for r in batch] == values
