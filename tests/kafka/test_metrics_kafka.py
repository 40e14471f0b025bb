"""/metrics and /status of a service shipping to a real Kafka broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.broker import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import Fifo, make_settings, wait_for
from ..helpers import acked as acked_lines
from .shipping_helpers import cid, consume, info, new_topic


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_shipped_lines_backlog_and_producer_in_the_metrics(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic("metrics")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    container = cid(7)
    fifo = Fifo(svc.settings.fifo_root / "f1")
    try:
        svc.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", 1_000 + i, f"m{i}".encode()) for i in range(300)])
        wait_for(lambda: acked_lines(svc) == 300, what="300 lines acked")
        assert len(consume(kafka_broker.bootstrap, topic, 300)) == 300
        text = svc.metrics().decode()
        c = {"container_id": container[:12], "container_name": "web", "log": "stdout"}
        assert sample(text, "pylog_ship_lines_acked_total", **c) == 300
        assert sample(text, "pylog_ship_backlog_bytes", **c) == 0
        assert sample(text, "pylog_ship_retries_total", **c) == 0
        starts = sample(text, "pylog_kafka_producer_starts_total", brokers=kafka_broker.bootstrap)
        assert starts == 1
        report = svc.status()
        assert report["kafka"]["brokers"] == [
            {"address": kafka_broker.bootstrap, "reachable": True, "error": None}
        ]
        (row,) = report["containers"]
        assert row["shipping"]["topic"] == topic
        assert row["shipping"]["backlog_bytes"] == 0
    finally:
        fifo.close()
        svc.shutdown()


def producer_samples(text: str, brokers: str) -> dict[str, float]:
    """The producer's samples by name (errors by ``errors:<kind>``, buckets by ``le:<bound>``)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("brokers") != brokers:
                continue
            if "kind" in s.labels:
                out[f"errors:{s.labels['kind']}"] = s.value
            elif "le" in s.labels:
                out[f"le:{s.labels['le']}"] = s.value
            else:
                out[s.name] = s.value
    return out


def errors(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("errors:"))


def test_producer_counters_latency_and_broker_down(
    kafka_broker: KafkaBroker,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """After N lines: records sent = acked = the latency histogram's count = N, no errors.

    Broker stopped: the running (idempotent) producer keeps its batch in flight and the
    gauges and one "failing" line show it; a producer that must start meanwhile counts
    errors and retries, and logs "failing" once, not once per error. Broker back: "back"
    is logged and the rest ships."""
    topic = new_topic("pmetrics")
    bootstrap = kafka_broker.bootstrap
    other = "localhost:" + bootstrap.rpartition(":")[2]  # another producer, same broker
    # A batch unacknowledged for 5 s is logged as failing (60 s by default).
    svc = LoggingService(make_settings(tmp_path, brokers=(bootstrap,), request_timeout_ms=5_000))
    svc.startup()
    fifo, fifo2 = Fifo(svc.settings.fifo_root / "f1"), Fifo(svc.settings.fifo_root / "f2")
    n = 1_000
    try:
        first = cid(8)
        svc.start_logging(str(fifo.path), info(first, Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", 1_000 + i, f"p{i}".encode()) for i in range(n)])
        wait_for(lambda: acked_lines(svc) == n, what=f"{n} lines acked")
        m = producer_samples(svc.metrics().decode(), bootstrap)
        assert m["pylog_kafka_records_sent_total"] == n
        assert m["pylog_kafka_records_acked_total"] == n
        assert m["pylog_kafka_delivery_latency_seconds_count"] == n
        assert m["le:+Inf"] == n
        assert 0 < m["pylog_kafka_delivery_latency_seconds_sum"] < 30 * n
        assert 1 <= m["pylog_kafka_batches_sent_total"] <= n
        assert m["pylog_kafka_batches_in_flight"] == 0
        assert m["pylog_kafka_retries_total"] == 0
        assert errors(m) == 0
        bounds = sorted((float(k[3:]), v) for k, v in m.items() if k.startswith("le:"))
        assert [v for _, v in bounds] == sorted(v for _, v in bounds)  # cumulative

        kafka_broker.stop()
        try:
            fifo.entries([Entry("stdout", 5_000 + i, f"q{i}".encode()) for i in range(100)])
            svc.start_logging(
                str(fifo2.path), info(cid(9), Config={"kafka-topic": topic, "kafka-brokers": other})
            )
            fifo2.entries([Entry("stdout", 1, b"r")])

            def stalled() -> bool:
                m = producer_samples(svc.metrics().decode(), bootstrap)
                return m["pylog_kafka_oldest_in_flight_seconds"] >= 5

            wait_for(stalled, timeout=60, what="a batch in flight for 5 s")

            def failing_other() -> bool:
                m = producer_samples(svc.metrics().decode(), other)
                return min(errors(m), m["pylog_kafka_retries_total"]) >= 3

            wait_for(failing_other, timeout=60, what="3 errors and retries")
            m = producer_samples(svc.metrics().decode(), bootstrap)
            assert m["pylog_kafka_records_acked_total"] == n
            assert m["pylog_kafka_delivery_latency_seconds_count"] == n
            assert m["pylog_kafka_batches_in_flight"] >= 1
            m2 = producer_samples(svc.metrics().decode(), other)
            assert m2["errors:unavailable"] == errors(m2) >= 3  # it cannot connect
            assert m2["pylog_kafka_records_acked_total"] == 0
        finally:
            kafka_broker.start()
        wait_for(lambda: acked_lines(svc, first) >= n + 100, timeout=90, what="the rest acked")
        m = producer_samples(svc.metrics().decode(), bootstrap)
        assert m["pylog_kafka_records_acked_total"] >= n + 100
        acked = m["pylog_kafka_records_acked_total"]
        assert m["pylog_kafka_delivery_latency_seconds_count"] == acked
        assert m["le:5.0"] < acked  # the lines held up by the outage took longer
    finally:
        fifo.close()
        fifo2.close()
        svc.shutdown()
    # The shipping process logs to the same stderr.
    lines = capfd.readouterr().err.splitlines()
    failing = [i for i, t in enumerate(lines) if f"Kafka at {bootstrap} is failing" in t]
    back = [i for i, t in enumerate(lines) if f"Kafka at {bootstrap} is back" in t]
    assert failing and back and failing[0] < back[0], lines
    assert sum(f"Kafka at {other} is failing" in t for t in lines) == 1, "once, not per error"


def test_containers_sharing_a_partition_wait_their_turn(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Eight containers, one single-partition topic, small batches: every batch
    waits its turn at the partition's pump, and none of them times out (waiting
    in aiokafka's accumulator, they failed within seconds: aiokafka 0.14 shortens
    a waiter's timeout on each wake-up), so nothing is retried or shipped twice."""
    topic = new_topic("turns")
    svc = LoggingService(
        make_settings(
            tmp_path,
            brokers=(kafka_broker.bootstrap,),
            linger_ms=0,
            batch_size=2048,
            request_timeout_ms=2_000,
        )
    )
    svc.startup()
    fifos = [Fifo(svc.settings.fifo_root / f"f{i}") for i in range(8)]
    n = 2_000
    try:
        for i, fifo in enumerate(fifos):
            svc.start_logging(str(fifo.path), info(cid(20 + i), Config={"kafka-topic": topic}))
        for i, fifo in enumerate(fifos):
            fifo.entries([Entry("stdout", 1_000 + j, f"c{i}-{j}".encode()) for j in range(n)])
        assert len(svc.shipping.shipped()) == 8

        def all_acked() -> bool:
            shippers = svc.snapshot().shippers
            return len(shippers) == 8 and all(s.lines_acked == n for s in shippers)

        wait_for(all_acked, timeout=120, what="every line acked")
        assert [s.retries for s in svc.snapshot().shippers] == [0] * 8
        got = [r.value for r in consume(kafka_broker.bootstrap, topic, 8 * n, settle=2)]
        assert len(got) == len(set(got)) == 8 * n
    finally:
        for fifo in fifos:
            fifo.close()
        svc.shutdown()
