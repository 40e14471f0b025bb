"""The Kafka side: the test broker (scripts/kafka/broker.py, real Apache Kafka on
the machine's Java), topics whose records carry the broker's append time, how many
records arrived, and when.

Topics are created with ``message.timestamp.type=LogAppendTime``: every record's
timestamp is when the broker appended it, which with ``acks=all`` on a single
broker is when it was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka.broker import KafkaBroker
from pylog.timefmt import parse_rfc3339

__all__ = ["KafkaBroker", "Topics"]


class Topics:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.partitions: dict[str, int] = {}

    def create(self, partitions: int) -> str:
        topic = f"bench-{uuid.uuid4().hex[:10]}"

        async def go() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(
                    topic, partitions, 1, topic_configs={"message.timestamp.type": "LogAppendTime"}
                )])  # fmt: skip
            finally:
                await admin.close()

        asyncio.run(go())
        self.partitions[topic] = partitions
        return topic

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20,
        )  # fmt: skip

    def wait_acked(self, topic: str, n: int, idle: float = 30.0) -> tuple[int, float]:
        """Wait until ``n`` records are in ``topic`` (or none arrived for ``idle``
        seconds). Returns (records in the topic, epoch seconds of the latest append)."""

        async def go() -> tuple[int, float]:
            c = self._consumer()
            await c.start()
            try:
                parts = [TopicPartition(topic, p) for p in range(self.partitions[topic])]
                c.assign(parts)
                count, last_change = -1, time.monotonic()
                while True:
                    ends = await c.end_offsets(parts)
                    total = sum(ends.values())
                    if total != count:
                        count, last_change = total, time.monotonic()
                    if count >= n or time.monotonic() - last_change > idle:
                        break
                    await asyncio.sleep(0.1)
                latest = 0
                for tp in parts:
                    if ends[tp] > 0:
                        c.seek(tp, ends[tp] - 1)
                        batch = await c.getmany(tp, timeout_ms=5000)
                        for r in batch.get(tp, []):
                            latest = max(latest, r.timestamp)
                return count, latest / 1000
            finally:
                await c.stop()

        return asyncio.run(go())

    def latencies(self, topic: str, n: int, timeout: float = 300) -> list[float]:
        """ms from each record's log time (dockerd read the line) to its append."""

        async def go() -> list[float]:
            c = self._consumer()
            c.subscribe([topic])
            await c.start()
            out: list[float] = []
            deadline = time.monotonic() + timeout
            try:
                while len(out) < n and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=1000, max_records=50_000)
                    for records in batch.values():
                        for r in records:
                            log_ns = parse_rfc3339(json.loads(r.value)["time"])
                            out.append(r.timestamp - log_ns / 1e6)
            finally:
                await c.stop()
            return out

        return asyncio.run(go())

    def values(self, topic: str, n: int, timeout: float = 60) -> list[bytes]:
        """The values of the first ``n`` records of ``topic`` (fewer if they do not
        arrive within ``timeout``)."""

        async def go() -> list[bytes]:
            c = self._consumer()
            c.subscribe([topic])
            await c.start()
            out: list[bytes] = []
            deadline = time.monotonic() + timeout
            try:
                while len(out) < n and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=1000, max_records=n)
                    for records in batch.values():
                        out += [r.value or b"" for r in records]
            finally:
                await c.stop()
            return out[:n]

        return asyncio.run(go())
