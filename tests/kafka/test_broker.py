"""Tests of the test Kafka broker itself, driven through aiokafka.

They check what pylog's end-to-end tests will rely on: idempotent, compressed
produce; in-order consume; the broker coming back on the same address (with its
data) after a stop or a crash; a producer surviving a broker outage; and the
optional SASL/SCRAM and TLS listeners.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from kafka.broker import KafkaBroker, KafkaBrokerError, free_port

pytestmark = pytest.mark.kafka

# Record batch attribute bits 0-2 (Kafka message format v2).
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def values_for(topic: str, n: int, start: int = 0) -> list[bytes]:
    # Compressible payload, unique per message, so order and duplicates show.
    return [f"{topic} message {i:06d} ".encode() + b"x" * 200 for i in range(start, start + n)]


async def produce(bootstrap: str, topic: str, values: list[bytes], **kw: Any) -> list[Any]:
    opts: dict[str, Any] = {
        "enable_idempotence": True,  # implies acks=all
        "linger_ms": 20,
        "request_timeout_ms": 30000,
    }
    opts.update(kw)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **opts)
    try:
        await producer.start()
        futures = [await producer.send(topic, v) for v in values]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, n: int, timeout: float = 30.0, **kw: Any
) -> list[bytes]:
    """Read partition 0 from the beginning until n records (then check no more come)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **kw)
    try:
        await consumer.start()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            got += [r.value for r in batch.get(tp, [])]
        extra = await consumer.getmany(tp, timeout_ms=500)
        got += [r.value for r in extra.get(tp, [])]
        return got
    finally:
        await consumer.stop()


def record_batches(broker: KafkaBroker, topic: str, partition: int = 0) -> Iterator[dict[str, int]]:
    """Parse the v2 record batch headers of a partition's on-disk segments."""
    assert broker.workdir is not None
    pdir = Path(broker.workdir) / "data" / f"{topic}-{partition}"
    for seg in sorted(pdir.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            magic = data[pos + 16]
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            producer_id, _epoch, base_seq, count = struct.unpack_from(">qhii", data, pos + 43)
            yield {
                "base_offset": base_offset,
                "magic": magic,
                "codec": attributes & 0x7,
                "producer_id": producer_id,
                "base_sequence": base_seq,
                "count": count,
            }
            pos += 12 + length


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------


def test_listens_on_loopback_only(kafka_broker: KafkaBroker) -> None:
    assert kafka_broker.bootstrap == f"127.0.0.1:{kafka_broker.port}"
    assert kafka_broker.workdir is not None
    props = dict(
        line.split("=", 1)
        for line in (kafka_broker.workdir / "server.properties").read_text().splitlines()
        if "=" in line
    )
    for key in ("listeners", "advertised.listeners"):
        for listener in props[key].split(","):
            assert listener.split("://", 1)[1].startswith("127.0.0.1:"), listener
    assert port_open(kafka_broker.port)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd", "snappy"])
def test_idempotent_compressed_roundtrip(kafka_broker: KafkaBroker, codec: str) -> None:
    topic = new_topic(f"roundtrip-{codec}")
    values = values_for(topic, 1000)

    metas = asyncio.run(produce(kafka_broker.bootstrap, topic, values, compression_type=codec))
    # Auto-created with num.partitions; one partition here, offsets dense from 0.
    assert {m.partition for m in metas} == {0}
    assert [m.offset for m in metas] == list(range(len(values)))

    got = asyncio.run(consume(kafka_broker.bootstrap, topic, len(values)))
    assert got == values  # all, in order, no duplicates

    batches = list(record_batches(kafka_broker, topic))
    assert batches, "no record batches on disk"
    assert sum(b["count"] for b in batches) == len(values)
    assert len(batches) < len(values) / 5, "expected multi-record (compressed) batches"
    for b in batches:
        assert b["magic"] == 2
        assert b["codec"] == CODECS[codec], b
        # Idempotent batches carry a producer id and per-partition sequence numbers.
        assert b["producer_id"] >= 0, f"not idempotent: {b}"
        assert b["base_sequence"] == b["base_offset"], b


def test_num_partitions_is_configurable(kafka_broker_factory: Any) -> None:
    broker = kafka_broker_factory(num_partitions=3)
    topic = new_topic("partitions")

    async def run() -> set[int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello")
            parts = await producer.partitions_for(topic)
            return set(parts)
        finally:
            await producer.stop()

    assert asyncio.run(run()) == {0, 1, 2}


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_keeps_address_and_data(kafka_broker: KafkaBroker, kill: bool) -> None:
    topic = new_topic("restart")
    first = values_for(topic, 200)
    second = values_for(topic, 200, start=200)
    bootstrap, port = kafka_broker.bootstrap, kafka_broker.port
    assert port is not None

    asyncio.run(produce(bootstrap, topic, first, compression_type="gzip"))
    try:
        kafka_broker.stop(kill=kill)
        kafka_broker.stop()  # idempotent
        assert not kafka_broker.is_running()
        assert not port_open(port)

        kafka_broker.start()
        kafka_broker.start()  # no-op while running
        assert kafka_broker.bootstrap == bootstrap
        assert kafka_broker.last_start_seconds is not None
        assert kafka_broker.last_start_seconds < 60

        assert asyncio.run(consume(bootstrap, topic, len(first))) == first
        asyncio.run(produce(bootstrap, topic, second, compression_type="gzip"))
        assert asyncio.run(consume(bootstrap, topic, 400)) == first + second
    finally:
        kafka_broker.start()


def test_producer_rides_out_broker_outage(kafka_broker: KafkaBroker) -> None:
    """One idempotent producer keeps sending while the broker is down and restarts."""
    topic = new_topic("outage")
    before = values_for(topic, 100)
    during = values_for(topic, 100, start=100)

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_broker.bootstrap,
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=20,
            request_timeout_ms=60000,
            retry_backoff_ms=200,
        )
        await producer.start()
        try:
            for v in before:
                await producer.send(topic, v)
            await producer.flush()

            await kafka_broker.astop()
            futures = [await producer.send(topic, v) for v in during]
            await asyncio.sleep(3)
            assert not any(f.done() and f.exception() is None for f in futures), (
                "delivered while broker was down?"
            )
            await kafka_broker.astart()
            metas = await asyncio.wait_for(asyncio.gather(*futures), 60)
            assert [m.offset for m in metas] == list(range(100, 200))
        finally:
            await producer.stop()

    try:
        asyncio.run(run())
    finally:
        kafka_broker.start()
    assert asyncio.run(consume(kafka_broker.bootstrap, topic, 200)) == before + during


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    """A broker that cannot bind its port fails start() with the log tail."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = KafkaBroker(workdir=tmp_path, start_timeout=60)
        broker.port = squatter.getsockname()[1]
        broker.controller_port = free_port()
        with pytest.raises(KafkaBrokerError) as info:
            broker.start()
        broker.close()
    assert not broker.is_running()
    assert "log tail" in str(info.value)
    assert "Address already in use" in str(info.value), str(info.value)[-2000:]


# --- optional listeners: SASL_PLAINTEXT/SCRAM and SSL ------------------------

SCRAM_USER, SCRAM_PASSWORD = "pylog", "pylog-secret"


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[KafkaBroker]:
    with KafkaBroker(scram_users={SCRAM_USER: SCRAM_PASSWORD}, ssl=True) as broker:
        yield broker


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_scram_roundtrip(secure_broker: KafkaBroker, mechanism: str) -> None:
    topic = new_topic("scram")
    values = values_for(topic, 50)
    auth: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": SCRAM_USER,
        "sasl_plain_password": SCRAM_PASSWORD,
    }
    asyncio.run(produce(secure_broker.sasl_bootstrap, topic, values, **auth))
    assert asyncio.run(consume(secure_broker.sasl_bootstrap, topic, 50, **auth)) == values


def test_sasl_scram_rejects_bad_password(secure_broker: KafkaBroker) -> None:
    with pytest.raises(KafkaError):
        asyncio.run(
            produce(
                secure_broker.sasl_bootstrap,
                new_topic("scram-bad"),
                [b"x"],
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username=SCRAM_USER,
                sasl_plain_password="wrong",
            )
        )


def test_ssl_roundtrip(secure_broker: KafkaBroker) -> None:
    topic = new_topic("ssl")
    values = values_for(topic, 50)
    assert secure_broker.ssl_cafile and Path(secure_broker.ssl_cafile).exists()
    ctx = create_ssl_context(cafile=secure_broker.ssl_cafile)  # verifies cert + 127.0.0.1 SAN
    tls: dict[str, Any] = {"security_protocol": "SSL", "ssl_context": ctx}
    asyncio.run(produce(secure_broker.ssl_bootstrap, topic, values, **tls))
    assert asyncio.run(consume(secure_broker.ssl_bootstrap, topic, 50, **tls)) == values


def test_ssl_rejects_unknown_ca(secure_broker: KafkaBroker) -> None:
    ctx = create_ssl_context()  # system CAs only: the self-signed CA is unknown
    with pytest.raises(KafkaError):
        asyncio.run(
            produce(
                secure_broker.ssl_bootstrap,
                new_topic("ssl-bad"),
                [b"x"],
                security_protocol="SSL",
                ssl_context=ctx,
            )
        )
