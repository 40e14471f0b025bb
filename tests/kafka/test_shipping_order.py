"""A failed batch never lets a later batch of the same container reach Kafka before it.

The broker refuses one batch for good while the next one is already handed to
aiokafka: the topic must never hold a line whose earlier lines are missing.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka.broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import Fifo, acked, make_settings, retries, shipping, wait_for
from .shipping_helpers import cid, consume, dedupe_in_order, info, messages, new_topic

#: Lines older than this are refused by the test topic (InvalidTimestampException).
MAX_AGE_MS = 3_600_000


async def _create_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


def assert_no_line_before_a_missing_one(got: list[str], expected: list[str]) -> None:
    """First occurrences are a prefix of what was logged: nothing after a hole."""
    firsts = dedupe_in_order(got)
    assert firsts == expected[: len(firsts)], (
        f"{len(firsts)} lines in Kafka, the first {firsts[:3]}: later lines got ahead "
        "of earlier ones that never arrived"
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("idempotence", [True, False])
def test_batch_refused_for_good_holds_back_the_batches_after_it(
    kafka_broker: KafkaBroker, tmp_path: Path, idempotence: bool
) -> None:
    """aiokafka sends a partition's next batch as soon as one fails, and the broker
    appends it, idempotent producer or not.

    The first lines are too old for the topic, so their batch is refused every
    time; the lines after them fill the batches behind it. None of those may
    reach Kafka while the first ones are missing.
    """
    topic = new_topic("order")
    asyncio.run(
        _create_topic(
            kafka_broker.bootstrap, topic, {"message.timestamp.before.max.ms": str(MAX_AGE_MS)}
        )
    )
    settings = make_settings(
        tmp_path,
        brokers=(kafka_broker.bootstrap,),
        idempotence=idempotence,
        batch_size=4096,
        linger_ms=0,
    )
    svc = LoggingService(settings)
    svc.startup()
    container = cid(90)
    fifo = Fifo(settings.fifo_root / "f")
    now = time.time_ns()
    old = now - 2 * MAX_AGE_MS * 1_000_000
    expected = [f"old {i}" for i in range(5)] + [f"new {i}" for i in range(1000)]
    try:
        svc.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        fifo.entries(
            [Entry("stdout", old + i, m.encode()) for i, m in enumerate(expected[:5])]
            + [Entry("stdout", now + i, m.encode()) for i, m in enumerate(expected[5:])]
        )
        wait_for(lambda: retries(svc) >= 2, what="two failed attempts")
        acked_then = acked(svc)
        got = messages(consume(kafka_broker.bootstrap, topic, 1, timeout=3))
    finally:
        fifo.close()
        svc.shutdown()
    assert acked_then == 0
    assert_no_line_before_a_missing_one(got, expected)


#: The test topic's max.message.bytes: far below pylog's batches.
SMALL_TOPIC_LIMIT = 16_384


@pytest.mark.timeout(180)
def test_batches_larger_than_the_topic_takes_are_split_and_every_line_arrives_once(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The topic takes batches of at most 16 KiB; pylog fills them to 256 KiB of
    lines that barely compress. Every refused batch is split until it fits: all
    lines arrive, once, in order (they were dropped as rejected before)."""
    topic = new_topic("small")
    asyncio.run(
        _create_topic(kafka_broker.bootstrap, topic, {"max.message.bytes": str(SMALL_TOPIC_LIMIT)})
    )
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,))
    svc = LoggingService(settings)
    svc.startup()
    fifo = Fifo(settings.fifo_root / "f")
    now = time.time_ns()
    expected = [f"{i} {os.urandom(100).hex()}" for i in range(4000)]
    try:
        svc.start_logging(str(fifo.path), info(cid(91), Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", now + i, m.encode()) for i, m in enumerate(expected)])
        got = messages(consume(kafka_broker.bootstrap, topic, len(expected)))
        wait_for(lambda: acked(svc) == len(expected), what="every line acknowledged")
        counters = shipping(svc)
    finally:
        fifo.close()
        svc.shutdown()
    assert got == expected
    assert counters is not None and counters.lines_rejected == 0
