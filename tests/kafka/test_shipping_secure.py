"""Shipping over TLS (CA, client certificate) and SASL (SCRAM-SHA-256/512, PLAIN) to a real
broker; the password never shows."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.helpers import create_ssl_context
from kafka.broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import Fifo, acked, make_settings, retries, wait_for
from .shipping_helpers import cid, consume, info, messages, new_topic

USER, PASSWORD = "pylog", "s3cret-pa55word"
T0 = 1_764_237_000_000_000_000


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[KafkaBroker]:
    plain = {
        # SASL/PLAIN beside the broker's SCRAM mechanisms, same user and password.
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USER}="{PASSWORD}";'
        ),
    }
    with KafkaBroker(scram_users={USER: PASSWORD}, ssl=True, extra_config=plain) as broker:
        yield broker


def ship(
    tmp_path: Path, topic: str, lines: int, log_level: str = "info", **kafka: Any
) -> LoggingService:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(make_settings(tmp_path, **kafka), log_level=log_level)
    svc = LoggingService(settings)
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


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl(secure_broker: KafkaBroker, tmp_path: Path, mechanism: str) -> None:
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
    secure_broker: KafkaBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-" + PASSWORD
    svc = ship(
        tmp_path,
        new_topic("badauth"),
        10,
        log_level="debug",  # the shipping process's too: nothing secret even at debug
        brokers=(secure_broker.sasl_bootstrap,),
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USER,
        sasl_password=wrong,
    )
    try:
        wait_for(lambda: retries(svc) >= 2, what="retry")
        assert acked(svc) == 0
        exposition = svc.metrics().decode() + json.dumps(svc.status())
    finally:
        svc.shutdown(timeout=2)
    # The shipping process logs to the same stderr (at debug level too: see below).
    shipping_log = capfd.readouterr().err
    text = caplog.text + shipping_log + repr(svc.settings) + exposition
    assert "failed" in shipping_log
    assert wrong not in text and PASSWORD not in text
    # The broker refusing the login is one "failing" line, not one per retry.
    failing = [line for line in shipping_log.splitlines() if "is failing" in line]
    assert len(failing) == 1, failing
    assert "pylog ship-0 DEBUG" in shipping_log


def client_cert(tls: Path) -> tuple[Path, Path]:
    """A client certificate signed by the test broker's CA (PEM cert, unencrypted key)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=pylog-client",
        "-keyout", "client.key", "-out", "client.csr")  # fmt: skip
    (tls / "client.cnf").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "client.cnf",
        "-out", "client.pem")  # fmt: skip
    return tls / "client.pem", tls / "client.key"


def test_mutual_tls_with_client_certificate(tmp_path: Path) -> None:
    work = tmp_path / "broker"
    tls = work / "tls"
    mtls = {
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.ssl.ssl.truststore.type": "PEM",
        "listener.name.ssl.ssl.truststore.location": str(tls / "ca.pem"),
    }
    with KafkaBroker(ssl=True, workdir=work, extra_config=mtls) as broker:
        assert broker.ssl_cafile is not None
        cert, key = client_cert(tls)
        ca = Path(broker.ssl_cafile)
        topic = new_topic("mtls")
        svc = ship(
            tmp_path / "with",
            topic,
            100,
            brokers=(broker.ssl_bootstrap,),
            tls=True,
            tls_ca=ca,
            tls_cert=cert,
            tls_key=key,
        )
        try:
            ctx = create_ssl_context(cafile=str(ca), certfile=str(cert), keyfile=str(key))
            got = consume(
                broker.ssl_bootstrap, topic, 100, security_protocol="SSL", ssl_context=ctx
            )
        finally:
            svc.shutdown()
        assert messages(got) == [f"secure {i}" for i in range(100)]

        # Without the client certificate the broker refuses the connection: retried, not shipped.
        svc = ship(tmp_path / "without", new_topic("mtls-no"), 5,
                   brokers=(broker.ssl_bootstrap,), tls=True, tls_ca=ca)  # fmt: skip
        try:
            wait_for(lambda: any(s.retries for s in svc.snapshot().shippers), what="retry")
            assert all(s.lines_acked == 0 for s in svc.snapshot().shippers)
        finally:
            svc.shutdown(timeout=2)
