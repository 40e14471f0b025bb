"""pylog's own log, as written to stderr for dockerd: one line per lifecycle event, no
secret, no log line, no env value -- at debug level, with Kafka failing."""

import dataclasses
import io
import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from pylog.config import KafkaSettings, Settings
from pylog.models import Entry
from pylog.server import configure_logging
from pylog.service import LoggingService

from ..helpers import Fifo, encode_entries, retries, wait_for

SECRET = "s3cr3t-pa55word-own-log"
ENV_SECRET = "hunter2-env-value"
LINE = "LINE-CONTENT-7f3a"


@pytest.fixture
def stderr_log() -> Iterator[Callable[[], str]]:
    """The stderr handler the plugin uses (format, rate limit), writing to a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("debug")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buf = io.StringIO()
    handler.setStream(buf)
    yield buf.getvalue
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_lifecycle_lines_and_nothing_secret(
    settings: Settings,
    make_fifo: Callable[[str], Fifo],
    stderr_log: Callable[[], str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    broker = closed_port()
    kafka = KafkaSettings(
        brokers=(broker,), sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SECRET
    )
    svc = LoggingService(dataclasses.replace(settings, kafka=kafka))
    svc.startup()
    cid = "cd" * 32
    fifo = make_fifo("f1")
    try:
        svc.start_logging(
            str(fifo.path),
            {
                "ContainerID": cid,
                "ContainerName": "/shop",
                "ContainerEnv": [f"DB_PASSWORD={ENV_SECRET}"],
                "Config": {"env": "DB_PASSWORD", "kafka-topic": "t1"},
            },
        )
        fifo.write(encode_entries([Entry("stdout", i, f"{LINE} {i}".encode()) for i in range(50)]))
        (driver,) = svc.drivers()
        wait_for(lambda: driver.stats.lines_stored == 50 and retries(svc) >= 2, 20)
        svc.stop_logging(str(fifo.path))
        fifo.close()
        wait_for(lambda: not svc.drivers())
    finally:
        svc.shutdown(timeout=2)
    # The shipping process writes to the same stderr (the file, not this buffer).
    shipping = capfd.readouterr().err
    assert "pylog ship-0 INFO" in shipping
    text = stderr_log() + shipping
    assert SECRET not in text and ENV_SECRET not in text and LINE not in text
    lines = text.splitlines()

    def count(fragment: str) -> int:
        return sum(fragment in line for line in lines)

    assert count("pylog INFO pylog.service: pylog started") == 1
    assert count(f"container {cid[:12]} (shop): logging started, shipping to Kafka topic t1") == 1
    assert count(f"Kafka at {broker} is failing") == 1  # though it failed again and again
    assert count(f"container {cid[:12]}: logging stopped") == 1
    assert count("pylog stopped: 0 containers were being logged") == 1
