"""KAFKA_BACKLOG_MAX_AGE with the broker stopped: the idempotent producer retries
forever without failing, and the backlog of the stopped container is still given up."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.shipper.position import load_position
from pylog.store.reader import Position

from ..helpers import Fifo, acked, make_settings, retries, wait_for
from .shipping_helpers import cid, info, new_topic
from .test_shipping import T0

MAX_AGE = 2.0


@pytest.mark.timeout(180)
def test_backlog_given_up_while_the_broker_is_down(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = new_topic("abandon")
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,), backlog_max_age=MAX_AGE)
    container = cid(82)
    svc = LoggingService(settings)
    svc.startup()
    fifo = Fifo(settings.fifo_root / "f")
    try:
        svc.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", T0 + i, f"before {i}".encode()) for i in range(100)])
        wait_for(lambda: acked(svc) == 100)
        kafka_broker.stop()
        try:
            fifo.entries([Entry("stdout", T0 + i, f"during {i}".encode()) for i in range(500)])
            fifo.close()
            wait_for(lambda: not svc.drivers())
            # No delivery fails (aiokafka retries the stopped broker): the wait for
            # acknowledgements is what notices the age.
            seen_retries = [0]

            def given_up() -> bool:
                seen_retries[0] = max(seen_retries[0], retries(svc))
                return not svc.shipping.shipped()

            wait_for(given_up, timeout=60)
            assert seen_retries[0] == 0
            wait_for(lambda: bool(svc.snapshot().abandoned), what="the abandoned lines reported")
            ((gave_up,),) = [[a for a in svc.snapshot().abandoned if a.container_id == container]]
            assert gave_up.lines == 500
            directory = settings.state_dir / "containers" / container
            end = Position(0, (directory / "json.log").stat().st_size)
            assert load_position(directory) == end
        finally:
            svc.shutdown()
            kafka_broker.start()
    finally:
        fifo.close()
