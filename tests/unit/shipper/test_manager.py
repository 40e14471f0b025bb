"""The service with Kafka configured but no broker reachable: nothing waits on it."""

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import KafkaSettings, RotationPolicy, Settings
from pylog.models import Entry, RequestError
from pylog.service import LoggingService
from pylog.shipper.position import (
    PositionUnreadable,
    load_position,
    position_path,
    save_position,
)
from pylog.store import LogFile
from pylog.store.reader import Position
from pylog.store.records import RecordEncoder

from ...helpers import BufferedDecoder, Fifo, acked, encode_entries, retries, shipping, wait_for

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
    while len(BufferedDecoder().feed(data)) < 2000 and time.monotonic() < deadline:
        data = b"".join(kservice.read_logs({"ContainerID": CID}, {}))
    assert len(BufferedDecoder().feed(data)) == 2000
    wait_for(lambda: retries(kservice) >= 1, timeout=15)
    assert acked(kservice) == 0
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
    assert not kservice.shipping.shipped()
    assert kservice.shipping.processes() == (0, 0)


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
        assert second.shipping.shipped() == [CID]
    finally:
        second.shutdown(timeout=1)

    # A container whose position is at the end of its log has nothing to resume.
    size = (directory / "json.log").stat().st_size
    save_position(directory, Position(0, size))
    third = LoggingService(kafka_settings)
    third.startup()
    try:
        assert third.shipping.shipped() == []
    finally:
        third.shutdown(timeout=1)


def test_lines_rotated_away_before_shipping_are_counted(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo], caplog: pytest.LogCaptureFixture
) -> None:
    fifo = make_fifo("f")
    kservice.start_logging(str(fifo.path), info(**{"max-size": "1k", "max-file": "2"}))
    fifo.write(encode_entries([Entry("stdout", i, b"first") for i in range(5)]))
    wait_for(lambda: retries(kservice) >= 1, timeout=15)
    fifo.write(encode_entries([Entry("stdout", i, b"y" * 100) for i in range(500)]))

    def lost() -> int:
        s = shipping(kservice)
        return s.lines_lost_rotation if s is not None else 0

    wait_for(lambda: lost() > 0, timeout=15)
    assert lost() <= 505
    assert "rotation deleted" in caplog.text


def test_rotation_holds_what_the_shipper_still_needs(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    """Broker unreachable: rotation keeps the unshipped files beyond max-file
    (within max-file more), so nothing is lost to Kafka and none is counted lost."""
    fifo = make_fifo("f")
    kservice.start_logging(str(fifo.path), info(**{"max-size": "2k", "max-file": "2"}))
    fifo.write(encode_entries([Entry("stdout", i, b"first") for i in range(5)]))
    wait_for(lambda: retries(kservice) >= 1, timeout=15)
    fifo.write(encode_entries([Entry("stdout", 10 + i, b"y" * 100) for i in range(30)]))
    logfile = kservice.store.reader(CID, RotationPolicy(2000, 2, True))
    assert logfile.state().closed is False  # the live log
    wait_for(lambda: logfile.state().generation >= 2)
    assert logfile.rotated_generations()[0] == 0  # held: the shipper is still at 0
    assert len(logfile.rotated_generations()) > 1
    s = shipping(kservice)
    assert s is not None and s.lines_lost_rotation == 0


def stopped_container(
    settings: Settings, cid: str, position: str, labels: dict[str, str] | None = None
) -> LogFile:
    """A container pylog logged earlier: rotated files (the oldest kept is not
    generation 0), its info.json and the given ``kafka.position`` text."""
    directory = settings.state_dir / "containers" / cid
    opts = {"max-size": "1k", "max-file": "3", "compress": "false"}
    enc = RecordEncoder()
    log = LogFile(directory, RotationPolicy(1000, 3, False))
    for i in range(100):
        log.append(enc.encode(Entry("stdout", i, b"x" * 60)))
    log.close()
    obj = {"ContainerID": cid, "ContainerName": "/old", "Config": opts}
    obj["ContainerLabels"] = labels or {}
    (directory / "info.json").write_text(json.dumps(obj))
    position_path(directory).write_text(position)
    return LogFile(directory, RotationPolicy(1000, 3, False), writable=False)


def stored(directory: Path) -> Position | None:
    try:
        return load_position(directory)
    except PositionUnreadable:
        return None


@pytest.mark.parametrize("position", ["", "garbage", '{"generation": -3, "offset": 7}'])
def test_a_corrupt_position_resumes_from_the_oldest_kept_file(
    kafka_settings: Settings, capfd: pytest.CaptureFixture[str], position: str
) -> None:
    """Before: a lost position read as never-shipped, and the backlog was skipped."""
    log = stopped_container(kafka_settings, CID, position)
    oldest = log.rotated_generations()[0]
    assert oldest > 0
    svc = LoggingService(kafka_settings)
    svc.startup()
    try:
        assert svc.shipping.shipped() == [CID]
        # The position is good again: the oldest kept file, where shipping starts.
        wait_for(lambda: stored(svc.store.directory(CID)) == Position(oldest, 0))
        # (The shipping process logs to the same stderr.)
        assert "shipping again from the oldest kept log file" in capfd.readouterr().err
    finally:
        svc.shutdown(timeout=1)


def test_a_corrupt_position_ships_a_restarted_container_from_the_oldest_kept_file(
    kafka_settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    log = stopped_container(kafka_settings, CID, "{")
    oldest = log.rotated_generations()[0]
    # No backlog is resumed at startup (no Kafka brokers configured then); the
    # container starts again later, with Kafka named by its log-opts.
    local = Settings(
        state_dir=kafka_settings.state_dir,
        socket_path=kafka_settings.socket_path,
        fifo_root=kafka_settings.fifo_root,
    )
    svc = LoggingService(local)
    svc.startup()
    try:
        assert svc.shipping.shipped() == []
        fifo = make_fifo("f")
        brokers = kafka_settings.kafka.brokers[0]
        opts = {"max-size": "1k", "max-file": "3", "kafka-brokers": brokers}
        svc.start_logging(str(fifo.path), info(**opts))
        assert svc.shipping.shipped() == [CID]
        wait_for(lambda: stored(svc.store.directory(CID)) == Position(oldest, 0))
    finally:
        svc.shutdown(timeout=1)


def test_a_backlog_that_no_longer_routes_is_skipped_and_the_others_resume(
    kafka_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the RoutingError stopped startup, so the worker never booted."""
    bad = "b" * 64
    stopped_container(
        kafka_settings, bad, '{"generation": 0, "offset": 0}', {"pylog.topic": "{{.Password}}"}
    )
    stopped_container(kafka_settings, CID, '{"generation": 0, "offset": 0}')
    unparsable = kafka_settings.state_dir / "containers" / ("e" * 64)
    stopped_container(kafka_settings, "e" * 64, '{"generation": 0, "offset": 0}')
    (unparsable / "info.json").write_text("[" * 100_000)
    svc = LoggingService(kafka_settings)
    svc.startup()
    try:
        assert svc.shipping.shipped() == [CID]
        assert f"container {bad[:12]}: not resuming Kafka shipping" in caplog.text
        assert "container eeeeeeeeeeee: not resuming Kafka shipping" in caplog.text
    finally:
        svc.shutdown(timeout=1)
