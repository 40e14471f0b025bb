"""The service with Kafka configured but no broker reachable: nothing waits on it."""

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from pylog.config import KafkaSettings, Settings
from pylog.framing import FrameDecoder, encode_entries
from pylog.models import Entry, RequestError
from pylog.service import LoggingService
from pylog.shipper.position import load_position, save_position
from pylog.store.reader import Position

from ..conftest import Fifo, wait_for

CID = "d" * 64


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def kafka_settings(settings: Settings) -> Settings:
    return Settings(
        state_dir=settings.state_dir,
        socket_path=settings.socket_path,
        fifo_root=settings.fifo_root,
        retention_seconds=3600,
        kafka=KafkaSettings(brokers=(closed_port(),)),
    )


@pytest.fixture
def kservice(kafka_settings: Settings) -> Iterator[LoggingService]:
    svc = LoggingService(kafka_settings)
    svc.startup()
    yield svc
    svc.shutdown(timeout=2)


def info(**config: str) -> dict[str, object]:
    return {"ContainerID": CID, "ContainerName": "/w", "Config": config}


def test_broker_down_never_blocks_logging(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f")
    t = time.monotonic()
    kservice.start_logging(str(fifo.path), info())
    assert time.monotonic() - t < 0.5
    fifo.write(encode_entries([Entry("stdout", i, f"l{i}".encode()) for i in range(2000)]))
    data = b""
    deadline = time.monotonic() + 10
    while len(FrameDecoder().feed(data)) < 2000 and time.monotonic() < deadline:
        data = b"".join(kservice.read_logs({"ContainerID": CID}, {}))
    assert len(FrameDecoder().feed(data)) == 2000
    (shipper,) = kservice.shipping.shippers()
    wait_for(lambda: shipper.stats.retries >= 1, timeout=15)
    assert shipper.stats.lines_acked == 0
    assert load_position(kservice.store.directory(CID)) == Position(0, 0)
    t = time.monotonic()
    kservice.shutdown(timeout=2)
    assert time.monotonic() - t < 10
    assert load_position(kservice.store.directory(CID)) == Position(0, 0)


def test_bad_topic_label_fails_the_start(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f")
    obj = info()
    obj["ContainerLabels"] = {"pylog.topic": "{{.Password}}"}
    with pytest.raises(RequestError, match=r"pylog\.topic"):
        kservice.start_logging(str(fifo.path), obj)
    assert not kservice.store.is_active(CID)


def test_kafka_false_is_local_only(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f")
    kservice.start_logging(str(fifo.path), info(kafka="false"))
    assert not kservice.shipping.shippers()


def test_unshipped_backlog_resumes_at_startup(
    kafka_settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    first = LoggingService(kafka_settings)
    first.startup()
    fifo = make_fifo("f")
    first.start_logging(str(fifo.path), info())
    fifo.write(encode_entries([Entry("stdout", i, b"x") for i in range(10)]))
    fifo.close()
    wait_for(lambda: not first.drivers())
    first.shutdown(timeout=1)
    directory = first.store.directory(CID)
    assert load_position(directory) == Position(0, 0)  # nothing acknowledged

    second = LoggingService(kafka_settings)
    second.startup()
    try:
        assert [s.container_id for s in second.shipping.shippers()] == [CID]
    finally:
        second.shutdown(timeout=1)

    # A container whose position is at the end of its log has nothing to resume.
    size = (directory / "json.log").stat().st_size
    save_position(directory, Position(0, size))
    third = LoggingService(kafka_settings)
    third.startup()
    try:
        assert third.shipping.shippers() == []
    finally:
        third.shutdown(timeout=1)


def test_lines_rotated_away_before_shipping_are_counted(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo], caplog: pytest.LogCaptureFixture
) -> None:
    fifo = make_fifo("f")
    kservice.start_logging(str(fifo.path), info(**{"max-size": "1k", "max-file": "2"}))
    fifo.write(encode_entries([Entry("stdout", i, b"first") for i in range(5)]))
    (shipper,) = kservice.shipping.shippers()
    wait_for(lambda: shipper.stats.retries >= 1, timeout=15)
    fifo.write(encode_entries([Entry("stdout", i, b"y" * 100) for i in range(500)]))
    wait_for(lambda: shipper.stats.lines_lost_rotation > 0, timeout=15)
    assert shipper.stats.lines_lost_rotation <= 505
    assert "rotation deleted" in caplog.text


def test_rotation_holds_what_the_shipper_still_needs(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    """Broker unreachable: rotation keeps the unshipped files beyond max-file
    (within max-file more), so nothing is lost to Kafka and none is counted lost."""
    fifo = make_fifo("f")
    kservice.start_logging(str(fifo.path), info(**{"max-size": "2k", "max-file": "2"}))
    fifo.write(encode_entries([Entry("stdout", i, b"first") for i in range(5)]))
    (shipper,) = kservice.shipping.shippers()
    wait_for(lambda: shipper.stats.retries >= 1, timeout=15)
    fifo.write(encode_entries([Entry("stdout", 10 + i, b"y" * 100) for i in range(30)]))
    logfile = shipper.logfile
    wait_for(lambda: logfile.generation >= 2)
    assert logfile.rotated_generations()[0] == 0  # held: the shipper is still at 0
    assert len(logfile.rotated_generations()) > 1
    assert shipper.stats.lines_lost_rotation == 0
