"""Stopping pylog with the broker down and a backlog: one deadline for every stage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.shipper.position import load_position
from pylog.store.reader import Position

from ..helpers import Fifo, acked, make_settings, shipping, wait_for
from .shipping_helpers import cid, info, new_topic
from .test_shipping import T0, next_pylog_ships_the_rest

#: The budget given to shutdown here, and what may come on top of it (the work
#: after the last wait: stopping the loop thread, a log line).
BUDGET = 2.0
MARGIN = 0.8


def sent(svc: LoggingService) -> int:
    s = shipping(svc)
    return s.lines_sent if s is not None else 0


@pytest.mark.timeout(300)
def test_shutdown_with_the_broker_down_keeps_to_its_deadline(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Readers, shippers draining, shippers halting and the producers closing share
    one deadline: shutdown returns by it though the broker never answers, the
    stored position is the last acknowledged one, and the next pylog ships the rest."""
    topic = new_topic("deadline")
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,), linger_ms=5)
    container = cid(81)
    first = LoggingService(settings)
    first.startup()
    fifo = Fifo(settings.fifo_root / "f")
    try:
        first.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", T0 + i, f"before {i}".encode()) for i in range(100)])
        directory = settings.state_dir / "containers" / container
        wait_for(lambda: acked(first) == 100)
        at_100 = Position(0, (directory / "json.log").stat().st_size)
        wait_for(lambda: load_position(directory) == at_100, what="the position stored")
        kafka_broker.stop()
        try:
            fifo.entries([Entry("stdout", T0 + i, f"during {i}".encode()) for i in range(500)])
            wait_for(lambda: sent(first) == 600, what="the backlog handed over")
            fifo.close()
            wait_for(lambda: not first.drivers())
            started = time.monotonic()
            first.shutdown(timeout=BUDGET)
            took = time.monotonic() - started
        finally:
            kafka_broker.start()
        assert took < BUDGET + MARGIN, f"shutdown took {took:.2f} s"
        assert load_position(directory) == at_100
        next_pylog_ships_the_rest(settings, kafka_broker, topic, container)
    finally:
        fifo.close()
