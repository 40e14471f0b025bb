"""What pylog relies on in aiokafka's sender, checked against a real broker.

aiokafka sends a partition's queued batch as soon as the one in flight is done,
failed or not, and stopping the producer sends it too (behaviour 2 of
``shipper/batching.py``'s docstring). So when a batch fails, the pump takes the
one queued behind it back out of the accumulator's queue, from the done
callback of the failed batch's own future, which aiokafka runs before its
sender drains the queue again. If a test here fails, aiokafka changed one of
these: re-check the workaround (``tests/unit/shipper/test_aiokafka_contract.py``
has the checks that need no broker).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidTimestampError
from aiokafka.structs import TopicPartition
from kafka.broker import KafkaBroker

from .shipping_helpers import consume, new_topic

#: Records older than this are refused by the test topic, every time.
MAX_AGE_MS = 3_600_000


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"message.timestamp.before.max.ms": str(MAX_AGE_MS)}
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def _refused_then_queued(
    bootstrap: str, topic: str, idempotence: bool, stop: bool
) -> list[object]:
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=idempotence, linger_ms=0, acks="all"
    )
    await producer.start()
    try:
        now = int(time.time() * 1000)
        old, new = producer.create_batch(), producer.create_batch()
        assert old.append(key=None, value=b"old", timestamp=now - 2 * MAX_AGE_MS, headers=[])
        assert new.append(key=None, value=b"new", timestamp=now, headers=[])
        refused = await producer.send_batch(old, topic, partition=0)
        # Returns once the sender took ``old``: ``new`` is queued behind it in flight.
        queued = await producer.send_batch(new, topic, partition=0)
        assert not refused.done(), "the first batch came back before the second was queued"
        if stop:
            await producer.stop()
        return list(await asyncio.gather(refused, queued, return_exceptions=True))
    finally:
        await producer.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [False, True], ids=["running", "stopped"])
@pytest.mark.parametrize("idempotence", [False, True], ids=["plain", "idempotent"])
def test_sender_sends_the_queued_batch_after_the_one_before_failed(
    kafka_broker: KafkaBroker, idempotence: bool, stop: bool
) -> None:
    """The broker refuses the first batch for good; the one queued behind it goes out
    anyway (``Sender._send_produce_req`` unmutes the partition, the next
    ``drain_by_nodes`` takes it) and lands first in the topic: the hole the pump in
    batching.py prevents by never queueing a second batch of a partition."""
    topic = new_topic("contract")
    refused, queued = asyncio.run(
        _refused_then_queued(kafka_broker.bootstrap, topic, idempotence, stop)
    )
    assert isinstance(refused, InvalidTimestampError), refused
    assert not isinstance(queued, BaseException), (
        f"the batch queued behind a failed one was not sent ({queued!r}): aiokafka's sender "
        "changed; re-check behaviour 2 in pylog/shipper/batching.py"
    )
    got = consume(kafka_broker.bootstrap, topic, 1, timeout=30)
    assert [r.value for r in got] == [b"new"]


async def _refused_then_withdrawn(bootstrap: str, topic: str, stop: bool) -> dict[str, object]:
    """What the pump does (batching._queued_batch, _delivered, _withdraw), on aiokafka's
    own objects: find the MessageBatch of each batch just queued, and from the done
    callback of the refused one's future take the one queued behind it back out."""
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=0, acks="all"
    )
    await producer.start()
    seen: dict[str, object] = {}
    try:
        tp = TopicPartition(topic, 0)
        queue = producer._message_accumulator._batches
        now = int(time.time() * 1000)
        old, new = producer.create_batch(), producer.create_batch()
        assert old.append(key=None, value=b"old", timestamp=now - 2 * MAX_AGE_MS, headers=[])
        assert new.append(key=None, value=b"new", timestamp=now, headers=[])
        await producer.send_batch(old, topic, partition=0)
        old_batch = queue[tp][-1]
        seen["old found"] = old_batch._builder is old
        await producer.send_batch(new, topic, partition=0)
        new_batch = queue[tp][-1]
        seen["new found"] = new_batch._builder is new

        def withdraw(fut: asyncio.Future[object]) -> None:
            waiting = queue.get(tp)
            seen["queued when the first failed"] = waiting is not None and new_batch in waiting
            if waiting is not None and new_batch in waiting:
                waiting.remove(new_batch)
                if not waiting:
                    del queue[tp]
                new_batch.failure(exception=RuntimeError("withdrawn"))

        old_batch.future.add_done_callback(withdraw)
        if stop:
            await asyncio.wait_for(producer.stop(), 30)
        results = await asyncio.gather(old_batch.future, new_batch.future, return_exceptions=True)
        seen["old"], seen["new"] = results
        return seen
    finally:
        await producer.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [False, True], ids=["running", "stopped"])
def test_a_failed_batchs_callback_runs_before_the_batch_queued_behind_it_is_drained(
    kafka_broker: KafkaBroker, stop: bool
) -> None:
    """The pump's withdrawal: the batch queued behind a refused one is found in the
    accumulator's queue, is still there when the refused one's future calls back,
    and once taken out it never reaches the topic and stopping the producer does
    not wait for it."""
    topic = new_topic("contract-withdraw")
    seen = asyncio.run(_refused_then_withdrawn(kafka_broker.bootstrap, topic, stop))
    assert seen["old found"] and seen["new found"], (
        "send_batch no longer leaves the batch last in MessageAccumulator._batches[tp] "
        f"({seen}): re-check behaviour 2 in pylog/shipper/batching.py"
    )
    assert seen["queued when the first failed"], (
        "the sender drained the queued batch before the failed one's future called back: "
        "re-check behaviour 2 in pylog/shipper/batching.py"
    )
    assert isinstance(seen["old"], InvalidTimestampError), seen
    assert isinstance(seen["new"], RuntimeError), seen
    assert consume(kafka_broker.bootstrap, topic, 1, timeout=10) == []
