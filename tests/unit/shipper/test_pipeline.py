"""PartitionSender against a model of the broker's rules for an idempotent producer.

:class:`ModelBroker` keeps what Kafka keeps for one producer ID and partition:
the log, the next expected sequence number and the last five batches appended.
It appends a batch whose base sequence is the expected one, answers one of the
last five again with its first offset (a duplicate), and refuses anything else
as out of order, as the broker does; and like the broker, it takes any
sequence number from a producer it has no state for yet. Failures are injected
per send.
``tests/kafka/test_pipeline_contract.py`` checks those rules against a real broker.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
)
from pylog.shipper.backoff import Backoff
from pylog.shipper.pipeline import MAX_IN_FLIGHT, PartitionSender

ROUND_TRIP = 0.01


class Batch:
    """A batch of numbered records: what the sender stamps and the model reads back."""

    def __init__(self, first: int, count: int) -> None:
        self.records = list(range(first, first + count))
        self.stamps: list[tuple[int, int, int]] = []

    def record_count(self) -> int:
        return len(self.records)

    def stamp(self, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        self.stamps.append((producer_id, producer_epoch, base_sequence))
        return json.dumps([base_sequence, self.records]).encode()


class Item:
    def __init__(self, batch: Batch) -> None:
        self.builder = batch


class ModelBroker:
    """One partition of one producer ID, with injected failures.

    ``fail[n]`` is what the n-th send (0 first) meets: ``"lost"`` appends the
    batch (if in order) but loses the answer, ``"down"`` fails the send before it
    reaches the broker; an exception instance is the broker's answer, nothing
    appended."""

    def __init__(self) -> None:
        self.log: list[int] = []
        self.expected = 0
        #: Whether it has state for the producer (it appended one of its batches).
        self.known = False
        self.recent: deque[tuple[int, int]] = deque(maxlen=5)  # (base sequence, offset)
        self.fail: dict[int, Any] = {}
        #: Batches of more records than this are refused as too large (None: any size).
        self.max_records: int | None = None
        self.sends = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._turn: asyncio.Lock | None = None

    async def produce(self, topic: str, partition: int, data: bytes) -> int:
        n = self.sends
        self.sends += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self._turn is None:
            self._turn = asyncio.Lock()
        try:
            async with self._turn:  # one request at a time, in the order sent
                await asyncio.sleep(ROUND_TRIP)
                failure = self.fail.get(n)
                if failure == "down":
                    raise KafkaConnectionError()
                if isinstance(failure, BaseException):
                    raise failure
                offset = self._append(data)
                if failure == "lost":
                    raise KafkaConnectionError()
                return offset
        finally:
            self.in_flight -= 1

    def _append(self, data: bytes) -> int:
        base, records = json.loads(data)
        if self.max_records is not None and len(records) > self.max_records:
            raise MessageSizeTooLargeError()
        for seq, offset in self.recent:
            if seq == base:
                return offset  # a duplicate: answered with its first offset
        if self.known and base != self.expected:
            raise OutOfOrderSequenceNumber()
        self.known = True
        offset = len(self.log)
        self.log.extend(records)
        self.recent.append((base, offset))
        self.expected += len(records)
        return offset


def run_sender(
    broker: ModelBroker,
    batches: list[Batch],
    depth: int = MAX_IN_FLIGHT,
    until: Callable[[dict[int, BaseException | None]], bool] | None = None,
) -> tuple[dict[int, BaseException | None], PartitionSender[Item], list[BaseException]]:
    """Send the batches (all available at once) until each has an outcome."""
    outcomes: dict[int, BaseException | None] = {}
    errors: list[BaseException] = []
    items = [Item(b) for b in batches]
    pending = deque(items)

    def outcome(item: Item, exc: BaseException | None) -> None:
        assert items.index(item) not in outcomes, "an outcome twice"
        outcomes[items.index(item)] = exc

    sender: PartitionSender[Item] = PartitionSender(
        broker.produce,
        "t",
        0,
        (7, 0),
        outcome,
        errors.append,
        depth=depth,
        backoff=Backoff(0.001, 0.002),
    )

    async def go() -> None:
        while len(outcomes) < len(items):
            sender.fill(lambda: pending.popleft() if pending else None)
            if sender.idle():
                break
            await sender.step(None, None)

    asyncio.run(asyncio.wait_for(go(), 10))
    return outcomes, sender, errors


def batches(n: int, size: int = 3) -> list[Batch]:
    return [Batch(i * size, size) for i in range(n)]


def records(bs: list[Batch]) -> list[int]:
    return [r for b in bs for r in b.records]


def test_batches_go_several_at_a_time_numbered_in_order() -> None:
    broker = ModelBroker()
    bs = batches(12)
    outcomes, _, errors = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(12))
    assert broker.log == records(bs)
    assert broker.most_in_flight == MAX_IN_FLIGHT == 5
    assert [b.stamps for b in bs] == [[(7, 0, i * 3)] for i in range(12)]
    assert broker.sends == 12 and not errors


def test_the_first_batch_goes_alone_until_the_broker_knows_the_producer() -> None:
    """A broker takes any sequence number from a producer ID it has no state for:
    had the second batch gone with the first, it would have been appended while the
    first one failed. So the first goes alone; the rest follow once it is in."""
    broker = ModelBroker()
    broker.fail = {0: NotLeaderForPartitionError()}
    bs = batches(8)
    outcomes, _, _ = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(8))
    assert broker.log == records(bs)
    assert broker.most_in_flight == MAX_IN_FLIGHT == 5


def test_depth_one_sends_one_at_a_time() -> None:
    broker = ModelBroker()
    outcomes, _, _ = run_sender(broker, batches(4), depth=1)
    assert len(outcomes) == 4 and broker.most_in_flight == 1


def test_a_failed_batch_and_those_behind_it_go_again_in_order_with_their_numbers() -> None:
    """The second batch fails (leader moved); the three behind it are refused as out
    of order. All four go again, same numbers: the log is whole, in order, once."""
    broker = ModelBroker()
    broker.fail = {1: NotLeaderForPartitionError()}
    bs = batches(5)
    outcomes, _, errors = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(5))
    assert broker.log == records(bs)
    assert [s[-1] for s in bs[1].stamps] == [3, 3]
    assert [type(e) for e in errors] == [NotLeaderForPartitionError]


def test_a_second_failure_while_batches_wait_to_go_again_keeps_their_order() -> None:
    """Five in flight fail (the connection drops under the second); after a failure
    they go again one at a time, and the first of them fails again while the other
    four wait: it must still go before them, with its number."""
    broker = ModelBroker()
    broker.fail = {1: "down", 6: "down"}  # batch 1 twice: in the five, then alone
    bs = batches(8)
    outcomes, sender, errors = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(8))
    assert broker.log == records(bs)
    assert sender.broken is None and len(errors) == 2
    assert broker.most_in_flight == MAX_IN_FLIGHT == 5


def test_a_batch_appended_whose_answer_was_lost_is_not_doubled() -> None:
    """The connection drops after the broker appended batch 0 (and 1 behind it): sent
    again, they are answered as duplicates, so every record is in the log once."""
    broker = ModelBroker()
    broker.fail = {0: "lost", 1: "lost"}
    bs = batches(4)
    outcomes, _, _ = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(4))
    assert broker.log == records(bs)


def test_an_outage_is_retried_until_the_broker_takes_the_batches() -> None:
    broker = ModelBroker()
    broker.fail = {n: "down" for n in range(4)}  # after a failure, the first goes alone
    bs = batches(5)
    outcomes, sender, errors = run_sender(broker, bs)
    assert outcomes == dict.fromkeys(range(5))
    assert broker.log == records(bs)
    assert len(errors) == 4 and sender.broken is None


def test_a_rejected_batch_is_dropped_and_those_behind_it_are_numbered_again() -> None:
    """Batch 1 is too large for the broker: it is dropped (counted by the caller),
    the batches behind it take its numbers, and the partition goes one at a time."""
    broker = ModelBroker()
    broker.fail = {1: MessageSizeTooLargeError()}
    bs = batches(5)
    outcomes, sender, _ = run_sender(broker, bs)
    assert isinstance(outcomes.pop(1), MessageSizeTooLargeError)
    assert outcomes == {0: None, 2: None, 3: None, 4: None}
    assert broker.log == records([bs[0], *bs[2:]])
    assert [s[-1] for s in bs[2].stamps] == [6, 3]  # renumbered into the gap
    assert sender.depth == 1


def test_an_error_retrying_cannot_fix_fails_that_batch_and_every_later_one() -> None:
    """Refused for good (not a size problem): that batch and those behind it fail,
    and so does every batch handed over afterwards; the producer must be replaced."""
    broker = ModelBroker()
    broker.fail = {2: TopicAuthorizationFailedError()}
    bs = batches(6)
    outcomes, sender, _ = run_sender(broker, bs)
    assert [outcomes[i] for i in (0, 1)] == [None, None]
    assert all(isinstance(outcomes[i], TopicAuthorizationFailedError) for i in range(2, 6))
    assert broker.log == records(bs[:2])
    assert isinstance(sender.broken, TopicAuthorizationFailedError)


def test_out_of_order_with_nothing_failed_before_it_is_not_retried() -> None:
    """The broker lost track of the producer's sequence (its state expired):
    sending the same numbers again could never work."""
    broker = ModelBroker()
    broker.known, broker.expected = True, 100
    outcomes, sender, _ = run_sender(broker, batches(3))
    assert all(isinstance(e, OutOfOrderSequenceNumber) for e in outcomes.values())
    assert broker.sends == 1  # not again, and nothing sent behind it
    assert isinstance(sender.broken, OutOfOrderSequenceNumber)


def test_close_fails_what_is_in_flight() -> None:
    broker = ModelBroker()
    outcomes: list[BaseException | None] = []

    async def go() -> None:
        sender: PartitionSender[Item] = PartitionSender(
            broker.produce, "t", 0, (7, 0), lambda _, e: outcomes.append(e), lambda _: None
        )
        pending = deque(Item(b) for b in batches(4))
        sender.fill(lambda: pending.popleft() if pending else None)
        await sender.step(None, None)  # the first alone, acknowledged
        sender.fill(lambda: pending.popleft() if pending else None)
        assert sender.in_flight() == 3
        sender.close(asyncio.CancelledError())
        assert sender.idle()

    asyncio.run(go())
    assert outcomes[0] is None and len(outcomes) == 4
    assert all(isinstance(e, asyncio.CancelledError) for e in outcomes[1:])


def test_depth_is_bounded_by_what_the_broker_remembers() -> None:
    with pytest.raises(ValueError, match="depth"):
        PartitionSender(ModelBroker().produce, "t", 0, (7, 0), lambda *_: None, lambda _: None, 6)


def test_a_batch_too_large_is_split_in_its_place_and_those_behind_keep_their_numbers() -> None:
    """The broker takes at most 4 records a batch here: the batch of 10 is split
    into 5 + 5, each again into 2 + 3; the parts take its numbers in order, the
    batches behind it keep theirs, and every record is appended once, in order."""
    broker = ModelBroker()
    broker.max_records = 4
    bs = [Batch(0, 3), Batch(3, 10), Batch(13, 3), Batch(16, 3)]
    items = [Item(b) for b in bs]
    pending = deque(items)
    outcomes: dict[int, BaseException | None] = {}  # by the item's first record
    split_first: list[int] = []
    errors: list[BaseException] = []

    def outcome(item: Item, exc: BaseException | None) -> None:
        first = item.builder.records[0]
        assert first not in outcomes, "an outcome twice"
        outcomes[first] = exc

    def split(item: Item) -> list[Item] | None:
        recs = item.builder.records
        split_first.append(recs[0])
        half = len(recs) // 2
        return [Item(Batch(recs[0], half)), Item(Batch(recs[half], len(recs) - half))]

    sender: PartitionSender[Item] = PartitionSender(
        broker.produce, "t", 0, (7, 0), outcome, errors.append,
        backoff=Backoff(0.001, 0.002), split=split,
    )  # fmt: skip

    async def go() -> None:
        while True:
            sender.fill(lambda: pending.popleft() if pending else None)
            if sender.idle():
                break
            await sender.step(None, None)

    asyncio.run(asyncio.wait_for(go(), 10))
    assert broker.log == list(range(19))
    assert split_first == [3, 3, 8]
    assert outcomes == dict.fromkeys([0, 3, 5, 8, 10, 13, 16])
    assert bs[2].stamps[-1] == (7, 0, 13) and bs[3].stamps[-1] == (7, 0, 16)
    assert errors and all(isinstance(e, MessageSizeTooLargeError) for e in errors)
    assert sender.broken is None and sender.depth == MAX_IN_FLIGHT
