"""The operators' kit (ops/) against a service shipping to a real Kafka broker.

tests/unit/test_ops_kit.py checks the dashboard's and alerts' metric names against the
sample names an exposition's families stand for, which needs no producer. Here a
container is logged and shipped, so every family has its samples: each name the kit
queries must be a sample Prometheus really gets (a histogram's ``_bucket`` with its
``le``, a counter's ``_total``), not only one the family types imply.
"""

from __future__ import annotations

from pathlib import Path

from kafka.broker import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import Fifo, acked, make_settings, wait_for
from ..unit.ops_queries import queried_names, sample_names
from .shipping_helpers import cid, info, new_topic


def test_every_metric_the_kit_queries_is_a_sample_of_a_shipping_service(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    used = queried_names()
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    fifo = Fifo(svc.settings.fifo_root / "f1")
    try:
        svc.start_logging(str(fifo.path), info(cid(3), Config={"kafka-topic": new_topic("ops")}))
        fifo.entries([Entry("stdout", 1_000 + i, f"m{i}".encode()) for i in range(50)])
        wait_for(lambda: acked(svc) == 50, what="50 lines acked")
        text = svc.metrics().decode()
    finally:
        fifo.close()
        svc.shutdown()
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {n: w for n, w in used.items() if n not in samples} == {}
    # What the unit test derives from the family types is what is really scraped.
    assert samples <= sample_names(text)
