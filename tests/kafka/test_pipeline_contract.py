"""What ``shipper/pipeline.py`` relies on, checked against a real broker and aiokafka's
client: several produce requests in flight on one connection, answered in order;
a batch sent again with the same producer ID and sequence number answered with
its first offset and not appended twice; a batch whose sequence number skips
ahead refused as out of order, except from a producer ID the broker has no state
for yet, whose first batch is taken whatever its number (why the pipeline sends
a lone batch first). If one fails, Kafka or aiokafka changed one of the
rules the pipeline's correctness (or its speed, for the first) stands on.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import ConnectionGroup
from aiokafka.errors import OutOfOrderSequenceNumber
from aiokafka.structs import TopicPartition
from kafka.broker import KafkaBroker
from pylog.shipper.pipeline import MAX_IN_FLIGHT, client_produce, init_producer_id
from pylog.shipper.recordbatch import RecordBatch
from pylog.shipper.schema import OutRecord

from .shipping_helpers import consume, new_topic

PER_BATCH = 10


def _batch(first: int) -> RecordBatch:
    batch = RecordBatch(1 << 20, "lz4", 1 << 20)
    records: list[OutRecord] = [
        (b"%d" % i, [], 1_000_000 + i) for i in range(first, first + PER_BATCH)
    ]
    assert batch.add(records, 0, b"k") == PER_BATCH
    return batch


async def _facts(
    bootstrap: str, topic: str
) -> tuple[list[int], int, int, BaseException | None, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.partitions_for(topic)
        client = producer.client
        producer_id, epoch = await init_producer_id(client, 10)
        produce = client_produce(client, -1, 30_000)
        batches = [_batch(i * PER_BATCH) for i in range(MAX_IN_FLIGHT)]
        sends = [
            asyncio.ensure_future(produce(topic, 0, b.stamp(producer_id, epoch, i * PER_BATCH)))
            for i, b in enumerate(batches)
        ]
        node = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        most = 0
        while not all(s.done() for s in sends):
            conn = client._conns.get((node, ConnectionGroup.DEFAULT))
            if conn is not None:
                most = max(most, len(conn._requests))
            await asyncio.sleep(0)
        offsets = [s.result() for s in sends]
        last = MAX_IN_FLIGHT - 1
        again = await produce(topic, 0, batches[last].stamp(producer_id, epoch, last * PER_BATCH))
        skipping: BaseException | None = None
        try:
            gap = (MAX_IN_FLIGHT + 1) * PER_BATCH
            await produce(topic, 0, _batch(gap).stamp(producer_id, epoch, gap))
        except OutOfOrderSequenceNumber as exc:
            skipping = exc
        stranger_id, stranger_epoch = await init_producer_id(client, 10)
        stranger = await produce(topic, 0, _batch(0).stamp(stranger_id, stranger_epoch, 7))
        return offsets, again, most, skipping, stranger
    finally:
        await producer.stop()


@pytest.mark.timeout(120)
def test_the_broker_and_client_keep_the_pipelines_rules(kafka_broker: KafkaBroker) -> None:
    topic = new_topic("pipeline")
    offsets, again, most, skipping, stranger = asyncio.run(_facts(kafka_broker.bootstrap, topic))
    assert offsets == [i * PER_BATCH for i in range(MAX_IN_FLIGHT)], "not appended in order"
    assert most >= 2, "aiokafka's client no longer keeps several requests in flight"
    assert again == (MAX_IN_FLIGHT - 1) * PER_BATCH, "a batch sent again got a new offset"
    assert isinstance(skipping, OutOfOrderSequenceNumber), "a sequence gap was not refused"
    assert stranger == MAX_IN_FLIGHT * PER_BATCH, "a new producer's first number is checked now"
    total = (MAX_IN_FLIGHT + 1) * PER_BATCH
    got = consume(kafka_broker.bootstrap, topic, total, settle=0.5)
    ours = [b"%d" % i for i in range(MAX_IN_FLIGHT * PER_BATCH)]
    assert [r.value for r in got] == ours + ours[:PER_BATCH]
