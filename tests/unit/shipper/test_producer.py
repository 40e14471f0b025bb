"""ClusterProducer against fake aiokafka producers: how sends become batches, and
how they go through aiokafka's sender (the path without idempotence).

The fakes keep aiokafka's rule that matters here: one batch per partition is
queued while the one before it is in flight, so a partition takes one batch
per broker round trip. :class:`FakeProducer` has no accumulator queue to take a
batch back from, so the pump sends one batch at a time to it (its fallback);
:class:`QueueingProducer` has one, shaped like aiokafka's, so the pump keeps a
batch queued behind the one in flight. ``tests/kafka/test_aiokafka_contract.py``
checks that shape and order against aiokafka and a real broker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from pylog.config import KafkaSettings
from pylog.shipper import batching
from pylog.shipper import producer as producer_mod
from pylog.shipper.errors import DeliveryError
from pylog.shipper.producer import ClusterProducer, SendGroup
from pylog.shipper.schema import OutRecord

ROUND_TRIP = 0.02
#: Without idempotence, batches go through aiokafka's sender (with it, through
#: pylog's own requests: test_pipeline.py).
PLAIN = KafkaSettings(brokers=("fake:9092",), idempotence=False)


class FakeBatch:
    """A RecordBatch that holds at most ``limit`` records and keeps them as they came
    (a record of ``alone`` bytes or more alone, as RecordBatch does)."""

    def __init__(self, limit: int, alone: int) -> None:
        self.limit = limit
        self.alone = alone
        self._closed = False
        self.records: list[tuple[bytes | None, bytes]] = []

    def add(self, records: list[OutRecord], start: int, key: bytes | None) -> int:
        end = start
        while end < len(records) and not self._closed:
            big = len(records[end][0]) >= self.alone
            if len(self.records) >= self.limit or (big and self.records):
                self._closed = True
                break
            self.records.append((key, records[end][0]))
            end += 1
            self._closed = big
        return end

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def compress(self) -> None:
        self._closed = True


class FakeProducer:
    made: ClassVar[list[FakeProducer]] = []
    fail_sends = False
    #: Fail the hand-over of these batches (0 is the first one created).
    fail_batches: ClassVar[set[int]] = set()
    #: Fail the delivery of these batches (after their round trip).
    fail_deliveries: ClassVar[set[int]] = set()
    batch_limit = 100

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[int, FakeBatch]] = []
        self.created: list[FakeBatch] = []
        self._last: dict[int, asyncio.Future[None]] = {}
        FakeProducer.made.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    @staticmethod
    def new_batch(batch_size: int, compression: str, alone: int) -> FakeBatch:
        """Stands in for RecordBatch: a batch of the newest producer."""
        batch = FakeBatch(FakeProducer.batch_limit, alone)
        FakeProducer.made[-1].created.append(batch)
        return batch

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        if FakeProducer.fail_sends or self.created.index(batch) in FakeProducer.fail_batches:
            raise KafkaConnectionError()
        last = self._last.get(partition)
        if last is not None:
            # One batch queued per partition, behind the one in flight, sent
            # once that one is done, failed or not.
            await asyncio.wait([last])
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        if self.created.index(batch) in FakeProducer.fail_deliveries:
            loop.call_later(ROUND_TRIP, delivered.set_exception, KafkaConnectionError())
        else:
            loop.call_later(ROUND_TRIP, delivered.set_result, None)
        self._last[partition] = delivered
        self.sent.append((partition, batch))
        return delivered


class FakeMessageBatch:
    """What the pump reads of aiokafka's MessageBatch: its builder and its future."""

    def __init__(self, builder: FakeBatch) -> None:
        self._builder = builder
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def failure(self, exception: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exception)


class FakeAccumulator:
    def __init__(self) -> None:
        self._batches: dict[TopicPartition, deque[FakeMessageBatch]] = {}


class QueueingProducer(FakeProducer):
    """Queues batches like aiokafka's accumulator (one per partition behind the one
    in flight) and drains like its sender: the next queued batch of a partition
    goes out once the one in flight is done, a loop turn after that one's own
    future called back. ``sent`` is what went out (reached the broker)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._message_accumulator = FakeAccumulator()
        self.in_flight: dict[TopicPartition, FakeMessageBatch] = {}
        self.most_inside = 0

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        tp = TopicPartition(topic, partition)
        queue = self._message_accumulator._batches
        while queue.get(tp):
            await asyncio.sleep(ROUND_TRIP / 10)  # a batch is queued: wait for its drain
        mb = FakeMessageBatch(batch)
        queue.setdefault(tp, deque()).append(mb)
        inside = len(queue[tp]) + (tp in self.in_flight)
        self.most_inside = max(self.most_inside, inside)
        if tp not in self.in_flight:
            asyncio.get_running_loop().call_soon(self._drain, tp)
        return asyncio.shield(mb.future)

    def _drain(self, tp: TopicPartition) -> None:
        queue = self._message_accumulator._batches
        if tp in self.in_flight or not queue.get(tp):
            return
        mb = queue[tp].popleft()
        if not queue[tp]:
            del queue[tp]
        self.in_flight[tp] = mb
        self.sent.append((tp.partition, mb._builder))
        asyncio.get_running_loop().call_later(ROUND_TRIP, self._done, tp, mb)

    def _done(self, tp: TopicPartition, mb: FakeMessageBatch) -> None:
        if self.created.index(mb._builder) in FakeProducer.fail_deliveries:
            mb.failure(KafkaConnectionError())
        elif not mb.future.done():
            mb.future.set_result(None)
        del self.in_flight[tp]
        loop = asyncio.get_running_loop()
        # The request task ends, its end wakes the sender, which drains.
        loop.call_soon(loop.call_soon, self._drain, tp)


@pytest.fixture(autouse=True)
def fake_producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(producer_mod, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(producer_mod, "RecordBatch", FakeProducer.new_batch)
    FakeProducer.made = []
    FakeProducer.fail_sends = False
    FakeProducer.fail_batches = set()
    FakeProducer.fail_deliveries = set()
    FakeProducer.batch_limit = 100
    yield


def rec(text: str) -> OutRecord:
    return (text.encode(), [], 0)


def test_containers_on_a_partition_share_its_batches() -> None:
    """200 containers, one line each every 10 ms: the lines of every container on a
    partition go out together, one batch per round trip, not one batch per
    container per round trip (which piled up their sends in memory)."""
    containers, lines = 200, 10
    cp = ClusterProducer(PLAIN)

    async def container(n: int, group: SendGroup) -> list[Any]:
        sends = []
        for i in range(lines):
            key = f"container-{n}".encode()
            sends.append(asyncio.ensure_future(cp.send(group, "t", key, [rec(f"{n}:{i}")])))
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*sends))

    async def run() -> list[list[Any]]:
        return await asyncio.gather(*(container(n, SendGroup()) for n in range(containers)))

    results = asyncio.run(run())
    assert all(r.rejected == 0 for per in results for r in per)
    (fake,) = FakeProducer.made
    assert sum(len(b.records) for _, b in fake.sent) == containers * lines
    # 2,000 lines over about 0.1 s in 2 partitions at one batch per 20 ms round trip:
    # about 5 batches each (10 to 40 when round trips are stretched by a busy machine).
    assert len(fake.sent) <= 60, len(fake.sent)
    # Each container's lines arrive in order, all in one partition.
    per_key: dict[bytes | None, list[tuple[int, bytes]]] = {}
    for partition, batch in fake.sent:
        for key, value in batch.records:
            per_key.setdefault(key, []).append((partition, value))
    assert len(per_key) == containers
    for key, got in per_key.items():
        assert len({p for p, _ in got}) == 1
        n = key.decode().split("-")[1] if key else ""
        assert [v for _, v in got] == [f"{n}:{i}".encode() for i in range(lines)]


def test_without_a_queue_to_withdraw_from_no_batch_is_handed_over_behind_another() -> None:
    """Where the pump cannot find aiokafka's queue (aiokafka changed), a partition's
    batch is handed to aiokafka only once the one before is delivered: if that one
    fails, the later ones fail here, unsent, instead of reaching Kafka ahead of the
    failed lines sent again."""
    cp = ClusterProducer(PLAIN)
    FakeProducer.fail_deliveries = {0}

    async def run() -> None:
        with pytest.raises(DeliveryError):
            await cp.send(SendGroup(), "t", b"k", [rec(f"{i}") for i in range(350)])
        await asyncio.sleep(3 * ROUND_TRIP)

    asyncio.run(run())
    (fake,) = FakeProducer.made
    assert len(fake.created) == 4
    assert [fake.created.index(b) for _, b in fake.sent] == [0]


def test_a_large_record_gets_a_batch_of_its_own() -> None:
    cp = ClusterProducer(PLAIN)
    big = "x" * batching.LARGE_RECORD

    async def run() -> None:
        await cp.send(SendGroup(), "t", b"k", [rec("a"), rec(big), rec("b")])

    asyncio.run(run())
    (fake,) = FakeProducer.made
    assert [[v[:1] for _, v in b.records] for _, b in fake.sent] == [[b"a"], [b"x"], [b"b"]]


def test_a_failed_hand_over_fails_the_sends_in_it_and_later_ones() -> None:
    cp = ClusterProducer(PLAIN)
    group = SendGroup()

    async def run() -> tuple[object, object]:
        await cp.send(group, "t", b"k", [rec("ok")])
        FakeProducer.fail_sends = True
        first = await asyncio.gather(cp.send(group, "t", b"k", [rec("a")]), return_exceptions=True)
        FakeProducer.fail_sends = False
        later = await asyncio.gather(cp.send(group, "t", b"k", [rec("b")]), return_exceptions=True)
        return first[0], later[0]

    first, later = asyncio.run(run())
    assert isinstance(first, DeliveryError) and first.generation == 1
    assert isinstance(later, DeliveryError)  # the group failed: nothing after it is sent
    assert group.failed
    assert cp.stats.errors["connection"] == 1


def test_after_a_failed_batch_the_later_ones_are_not_sent() -> None:
    """Batch 1 of 5 cannot be handed over (a broker outage longer than the request
    timeout): the batches after it fail with it, unsent, and so do their groups,
    so that no line reaches Kafka before one sent earlier that failed."""
    FakeProducer.batch_limit = 1
    FakeProducer.fail_batches = {1}
    cp = ClusterProducer(PLAIN)
    a, b = SendGroup(), SendGroup()

    async def run() -> list[Any]:
        sends = [cp.send(a, "t", b"k", [rec(f"a{i}")]) for i in range(3)]
        sends += [cp.send(b, "t", b"k", [rec(f"b{i}")]) for i in range(2)]
        return list(await asyncio.gather(*sends, return_exceptions=True))

    results = asyncio.run(run())
    assert results[0].rejected == 0
    assert all(isinstance(r, DeliveryError) for r in results[1:]), results
    assert a.failed and b.failed
    (fake,) = FakeProducer.made
    assert [b.records for _, b in fake.sent] == [[(b"k", b"a0")]]


def test_a_partition_keeps_one_batch_queued_behind_the_one_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker is never left waiting for the client's turn: while a batch is in
    flight the next one is queued inside aiokafka, never more than that, and the
    batches go out in order."""
    monkeypatch.setattr(producer_mod, "AIOKafkaProducer", QueueingProducer)
    cp = ClusterProducer(PLAIN)

    async def run() -> None:
        await cp.send(SendGroup(), "t", b"k", [rec(f"{i}") for i in range(550)])

    asyncio.run(run())
    (fake,) = FakeProducer.made
    assert isinstance(fake, QueueingProducer)
    assert fake.most_inside == batching.PIPELINE == 2
    assert [v for _, b in fake.sent for _, v in b.records] == [f"{i}".encode() for i in range(550)]


def test_a_failed_batch_withdraws_the_one_queued_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first batch fails at the broker while the second waits queued inside
    aiokafka: the second is taken back out before the sender drains it, and it
    and the rest fail unsent, so nothing reaches Kafka ahead of the failed lines."""
    monkeypatch.setattr(producer_mod, "AIOKafkaProducer", QueueingProducer)
    FakeProducer.fail_deliveries = {0}
    cp = ClusterProducer(PLAIN)
    group = SendGroup()

    async def run() -> None:
        with pytest.raises(DeliveryError):
            await cp.send(group, "t", b"k", [rec(f"{i}") for i in range(350)])
        await asyncio.sleep(3 * ROUND_TRIP)

    asyncio.run(run())
    (fake,) = FakeProducer.made
    assert isinstance(fake, QueueingProducer)
    assert fake.most_inside == 2  # the second batch was queued
    assert [fake.created.index(b) for _, b in fake.sent] == [0]
    assert fake._message_accumulator._batches == {}
    assert group.failed
    assert cp.stats.errors["cancelled"] == 1  # the withdrawn batch
