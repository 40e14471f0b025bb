"""Helpers for the shipping tests: container info, topics and a consumer (the FIFO,
the settings and the wait are tests/helpers.py's)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def info(cid: str, name: str = "/web", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "ContainerID": cid,
        "ContainerName": name,
        "ContainerImageName": "busybox:latest",
        "ContainerImageID": "sha256:" + "ab" * 32,
        "ContainerLabels": {"app": "shop"},
        "ContainerEnv": ["SECRET=hunter2", "REGION=eu"],
        "Config": {},
    }
    obj.update(extra)
    return obj


def cid(n: int) -> str:
    return f"{n:02d}" + uuid.uuid4().hex + uuid.uuid4().hex[:30]


async def _consume(
    bootstrap: str, topic: str, n: int, timeout: float, settle: float, **kw: Any
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
        **kw,
    )
    await consumer.start()
    try:
        got: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got += records
        # Anything beyond n (duplicates) shows up here.
        end = time.monotonic() + settle
        while time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                got += records
        return got
    finally:
        await consumer.stop()


def consume(
    bootstrap: str, topic: str, n: int, timeout: float = 60.0, settle: float = 1.0, **kw: Any
) -> list[ConsumerRecord[bytes, bytes]]:
    """Records of every partition of ``topic`` from the start, once n arrived (or timeout)."""
    return asyncio.run(_consume(bootstrap, topic, n, timeout, settle, **kw))


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def messages(records: list[ConsumerRecord[bytes, bytes]]) -> list[str]:
    return [json.loads(r.value)["message"] for r in records]


def dedupe_in_order(items: list[str]) -> list[str]:
    """At-least-once: drop repeats, keep first occurrences (the order must then be exact)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
