"""ClusterProducer against a fake producer and client: how sends become batches
shared per partition, and how those go out through the partition's pump.

:class:`FakeClient` stands in for pylog's produce requests on aiokafka's client
(``batching.client_produce``) and keeps the broker's rules for an idempotent
producer that matter here: a partition's batches are appended in the order they
arrive and only if their sequence number follows the last one appended (else
out of order), any number being taken from a producer it does not know yet.
``tests/kafka/test_pipeline_contract.py`` checks those rules on a real broker,
``test_pipeline.py`` the sender's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
)
from pylog.config import KafkaSettings
from pylog.shipper import batching
from pylog.shipper import producer as producer_mod
from pylog.shipper.errors import DeliveryError
from pylog.shipper.pipeline import MAX_IN_FLIGHT
from pylog.shipper.producer import ClusterProducer, SendGroup
from pylog.shipper.recordbatch import CompressionRatio
from pylog.shipper.schema import OutRecord

ROUND_TRIP = 0.02
IDEMPOTENT = KafkaSettings(brokers=("fake:9092",))
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

    def record_count(self) -> int:
        return len(self.records)

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def split(self) -> list[FakeBatch] | None:
        if len(self.records) < 2:
            return None
        half = len(self.records) // 2
        parts = [FakeBatch(self.limit, self.alone) for _ in range(2)]
        parts[0].records, parts[1].records = self.records[:half], self.records[half:]
        FakeProducer.made[-1].created.extend(parts)
        return parts

    def stamp(self, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        index = FakeProducer.made[-1].created.index(self)
        return json.dumps([index, producer_id, base_sequence]).encode()


class FakeClient:
    """The broker's side, per partition: one request at a time in the order sent."""

    #: Fail the first send of these batches (0 is the first one created) with this.
    fail: ClassVar[dict[int, BaseException]] = {}
    #: Batches of more records than this are refused as too large (0: any size).
    max_records: ClassVar[int] = 0
    #: A batch holding this value is refused as too large.
    too_large: ClassVar[bytes] = b""

    def __init__(self, owner: FakeProducer) -> None:
        self.owner = owner
        self.expected: dict[int, int] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self._turns: dict[int, asyncio.Lock] = {}

    async def produce(self, topic: str, partition: int, data: bytes) -> int:
        index, producer_id, sequence = json.loads(data)
        batch = self.owner.created[index]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async with self._turns.setdefault(partition, asyncio.Lock()):
                await asyncio.sleep(ROUND_TRIP)
                failure = FakeClient.fail.pop(index, None)
                if failure is not None:
                    raise failure
                values = [v for _, v in batch.records]
                if 0 < FakeClient.max_records < len(values) or FakeClient.too_large in values:
                    raise MessageSizeTooLargeError()
                if producer_id >= 0:
                    expected = self.expected.get(partition)
                    if expected is not None and sequence != expected:
                        raise OutOfOrderSequenceNumber()
                    self.expected[partition] = sequence + batch.record_count()
                self.owner.sent.append((partition, batch))
                return len(self.owner.sent)
        finally:
            self.in_flight -= 1


class FakeProducer:
    made: ClassVar[list[FakeProducer]] = []
    batch_limit = 100

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[int, FakeBatch]] = []
        """What the broker appended, in order."""
        self.created: list[FakeBatch] = []
        self.client = FakeClient(self)
        FakeProducer.made.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    @staticmethod
    def new_batch(
        batch_size: int, compression: str, alone: int, ratio: CompressionRatio
    ) -> FakeBatch:
        """Stands in for RecordBatch: a batch of the newest producer."""
        batch = FakeBatch(FakeProducer.batch_limit, alone)
        FakeProducer.made[-1].created.append(batch)
        return batch


async def _producer_id(client: FakeClient, timeout: float) -> tuple[int, int]:
    return 7, 0


@pytest.fixture(autouse=True)
def fake_producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(producer_mod, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(producer_mod, "RecordBatch", FakeProducer.new_batch)
    monkeypatch.setattr(batching, "client_produce", lambda client, acks, timeout: client.produce)
    monkeypatch.setattr(batching, "init_producer_id", _producer_id)
    FakeProducer.made = []
    FakeProducer.batch_limit = 100
    FakeClient.fail = {}
    FakeClient.max_records = 0
    FakeClient.too_large = b"never"
    yield


def rec(text: str) -> OutRecord:
    return (text.encode(), [], 0)


def values(fake: FakeProducer) -> list[bytes]:
    return [v for _, b in fake.sent for _, v in b.records]


def ship_numbered(settings: KafkaSettings, n: int) -> tuple[ClusterProducer, Any]:
    """One send of lines "0".."n-1" through a new ClusterProducer: it and the result."""
    cp = ClusterProducer(settings)

    async def run() -> Any:
        return await cp.send(SendGroup(), "t", b"k", [rec(f"{i}") for i in range(n)])

    return cp, asyncio.run(run())


def numbered(n: int) -> list[bytes]:
    return [f"{i}".encode() for i in range(n)]


def test_containers_on_a_partition_share_its_batches() -> None:
    """200 containers, one line each every 10 ms: the lines of every container on a
    partition go out together, one batch per round trip, not one batch per
    container per round trip (which piled up their sends in memory)."""
    containers, lines = 200, 10
    cp = ClusterProducer(IDEMPOTENT)

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


def test_a_large_record_gets_a_batch_of_its_own() -> None:
    cp = ClusterProducer(IDEMPOTENT)
    big = "x" * batching.LARGE_RECORD

    async def run() -> None:
        await cp.send(SendGroup(), "t", b"k", [rec("a"), rec(big), rec("b")])

    asyncio.run(run())
    (fake,) = FakeProducer.made
    assert [[v[:1] for _, v in b.records] for _, b in fake.sent] == [[b"a"], [b"x"], [b"b"]]


def test_a_partition_keeps_up_to_five_batches_in_flight_in_order() -> None:
    """The broker is never left waiting for the client's turn: after the first batch
    (alone: the broker does not know the producer yet), up to five are in flight,
    and they are appended in order."""
    ship_numbered(IDEMPOTENT, 1000)
    (fake,) = FakeProducer.made
    assert fake.client.most_in_flight == MAX_IN_FLIGHT == 5
    assert values(fake) == numbered(1000)


def test_without_idempotence_a_partition_has_one_batch_in_flight() -> None:
    """Without sequence numbers nothing would keep a batch from overtaking a failed
    one before it at the broker."""
    ship_numbered(PLAIN, 550)
    (fake,) = FakeProducer.made
    assert fake.client.most_in_flight == 1
    assert values(fake) == numbered(550)


def test_a_batch_that_failed_on_the_way_goes_again_in_order() -> None:
    """The connection drops under the second batch: it and the ones behind it go
    again, in order; the send waits for that and nothing is lost or doubled."""
    FakeClient.fail = {1: KafkaConnectionError()}
    cp, result = ship_numbered(IDEMPOTENT, 700)
    assert result.rejected == 0
    (fake,) = FakeProducer.made
    assert values(fake) == numbered(700)
    assert cp.stats.errors["connection"] == 1


def test_a_failed_batch_fails_the_sends_in_it_and_later_ones() -> None:
    """Refused for good (not a size problem): the send fails with the producer's
    generation (the shipper rewinds and replaces it), and the group's later sends
    fail without going out."""
    cp = ClusterProducer(IDEMPOTENT)
    group = SendGroup()

    async def run() -> tuple[object, object]:
        await cp.send(group, "t", b"k", [rec("ok")])
        FakeClient.fail = {1: TopicAuthorizationFailedError()}
        first = await asyncio.gather(cp.send(group, "t", b"k", [rec("a")]), return_exceptions=True)
        later = await asyncio.gather(cp.send(group, "t", b"k", [rec("b")]), return_exceptions=True)
        return first[0], later[0]

    first, later = asyncio.run(run())
    assert isinstance(first, DeliveryError) and first.generation == 1
    assert isinstance(later, DeliveryError)  # the group failed: nothing after it is sent
    assert group.failed
    (fake,) = FakeProducer.made
    assert values(fake) == [b"ok"]
    assert cp.stats.errors["broker"] == 1


def test_after_a_failed_batch_the_later_ones_are_not_appended() -> None:
    """Batch 1 of 5 is refused for good while the ones behind it are in flight: the
    broker appends none of them (out of order), they fail with it, and so do their
    groups, so that no line reaches Kafka before one sent earlier that failed."""
    FakeProducer.batch_limit = 1
    FakeClient.fail = {1: TopicAuthorizationFailedError()}
    cp = ClusterProducer(IDEMPOTENT)
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
    assert values(fake) == [b"a0"]


def test_a_replaced_producer_stops_its_pumps() -> None:
    """After a reset, what the old producer's pump still holds fails (the shipper
    sends it again through the new one) instead of being retried on the old one."""
    FakeClient.fail = {n: KafkaConnectionError() for n in range(2)}
    cp = ClusterProducer(IDEMPOTENT)
    group = SendGroup()

    async def run() -> Any:
        send = asyncio.ensure_future(cp.send(group, "t", b"k", [rec("x")]))
        await asyncio.sleep(ROUND_TRIP * 1.5)  # the first attempt failed; it waits to retry
        await cp.reset(cp.generation)
        return (await asyncio.gather(send, return_exceptions=True))[0]

    outcome = asyncio.run(run())
    assert isinstance(outcome, DeliveryError)
    assert FakeProducer.made[0].sent == []


def test_batches_too_large_for_the_topic_are_split_and_nothing_is_lost() -> None:
    """A topic taking fewer records a batch than pylog puts in one (its
    max.message.bytes): every batch is split until it fits, in order."""
    FakeClient.max_records = 30
    cp, result = ship_numbered(IDEMPOTENT, 250)
    assert result.rejected == 0
    (fake,) = FakeProducer.made
    assert values(fake) == numbered(250)
    assert all(len(b.records) <= 30 for _, b in fake.sent)
    assert cp.stats.errors["rejected"] >= 3


def test_a_record_too_large_alone_is_counted_for_the_send_it_came_in() -> None:
    """Two containers' sends share a batch; one record of the second is too large
    even alone: the batch is split down to it, it is dropped and counted for the
    second send only, and every other record is delivered in order."""
    FakeClient.too_large = b"b7"
    cp = ClusterProducer(IDEMPOTENT)

    async def run() -> list[Any]:
        return list(
            await asyncio.gather(
                cp.send(SendGroup(), "t", b"k", [rec(f"a{i}") for i in range(20)]),
                cp.send(SendGroup(), "t", b"k", [rec(f"b{i}") for i in range(20)]),
            )
        )

    first, second = asyncio.run(run())
    assert (first.rejected, second.rejected) == (0, 1)
    (fake,) = FakeProducer.made
    expected = [f"a{i}".encode() for i in range(20)] + [f"b{i}".encode() for i in range(20)]
    expected.remove(b"b7")
    assert values(fake) == expected
