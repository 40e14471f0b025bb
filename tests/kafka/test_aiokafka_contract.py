"""What pylog relies on in aiokafka's sender, checked against a real broker.

``shipper/batching.py`` hands a partition's next batch to aiokafka only once the
one before it is delivered, because aiokafka sends a partition's queued batch as
soon as the one in flight is done, failed or not (behaviour 2 of its docstring),
and stopping the producer sends it too. If this test fails, aiokafka changed
that: re-check the workaround (``tests/unit/shipper/test_aiokafka_contract.py``
has the checks that need no broker).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidTimestampError
from kafka.broker import KafkaBroker

from .shipping_helpers import consume, new_topic

#: Records older than this are refused by the test topic, every time.
MAX_AGE_MS = 3_600_000


async def _refused_then_queued(
    bootstrap: str, topic: str, idempotence: bool, stop: bool
) -> list[object]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"message.timestamp.before.max.ms": str(MAX_AGE_MS)}
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()
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
