"""/metrics and /status of a service shipping to a real Kafka broker."""

from __future__ import annotations

from pathlib import Path

from broker import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from pylog.models import Entry
from pylog.service import LoggingService
from shipping_helpers import Fifo, cid, consume, info, make_settings, new_topic, wait_for


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
        (shipper,) = svc.shipping.shippers()
        wait_for(lambda: shipper.stats.lines_acked == 300, what="300 lines acked")
        assert len(consume(kafka_broker.bootstrap, topic, 300)) == 300
        text = svc.metrics().decode()
        c = {"container_id": container[:12], "container_name": "web"}
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
