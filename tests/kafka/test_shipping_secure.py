"""Shipping over TLS and SASL/SCRAM to a real broker; the password never shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.helpers import create_ssl_context
from broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService
from shipping_helpers import Fifo, cid, consume, info, make_settings, messages, new_topic, wait_for

USER, PASSWORD = "pylog", "s3cret-pa55word"
T0 = 1_764_237_000_000_000_000


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[KafkaBroker]:
    with KafkaBroker(scram_users={USER: PASSWORD}, ssl=True) as broker:
        yield broker


def ship(tmp_path: Path, topic: str, lines: int, **kafka: Any) -> LoggingService:
    svc = LoggingService(make_settings(tmp_path, **kafka))
    svc.startup()
    fifo = Fifo(svc.settings.fifo_root / "f")
    try:
        svc.start_logging(str(fifo.path), info(cid(50), Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", T0 + i, f"secure {i}".encode()) for i in range(lines)])
    finally:
        fifo.close()
    wait_for(lambda: not svc.drivers())
    return svc


def test_tls_with_ca_file(secure_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic("tls")
    assert secure_broker.ssl_cafile is not None
    svc = ship(
        tmp_path,
        topic,
        200,
        brokers=(secure_broker.ssl_bootstrap,),
        tls=True,
        tls_ca=Path(secure_broker.ssl_cafile),
    )
    try:
        ctx = create_ssl_context(cafile=secure_broker.ssl_cafile)
        got = consume(
            secure_broker.ssl_bootstrap, topic, 200, security_protocol="SSL", ssl_context=ctx
        )
    finally:
        svc.shutdown()
    assert messages(got) == [f"secure {i}" for i in range(200)]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_scram(secure_broker: KafkaBroker, tmp_path: Path, mechanism: str) -> None:
    topic = new_topic("scram")
    svc = ship(
        tmp_path,
        topic,
        200,
        brokers=(secure_broker.sasl_bootstrap,),
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
    )
    try:
        got = consume(
            secure_broker.sasl_bootstrap,
            topic,
            200,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_plain_username=USER,
            sasl_plain_password=PASSWORD,
        )
    finally:
        svc.shutdown()
    assert messages(got) == [f"secure {i}" for i in range(200)]


def test_wrong_password_retries_and_never_logs_it(
    secure_broker: KafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-" + PASSWORD
    svc = ship(
        tmp_path,
        new_topic("badauth"),
        10,
        brokers=(secure_broker.sasl_bootstrap,),
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USER,
        sasl_password=wrong,
    )
    try:
        wait_for(lambda: any(s.stats.retries for s in svc.shipping.shippers()), what="a retry")
        (shipper,) = svc.shipping.shippers()
        assert shipper.stats.lines_acked == 0
    finally:
        svc.shutdown(timeout=2)
    text = caplog.text + repr(svc.settings)
    assert "failed" in caplog.text
    assert wrong not in text and PASSWORD not in text
