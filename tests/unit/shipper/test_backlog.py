"""A stopped container's backlog that Kafka never takes is given up after KAFKA_BACKLOG_MAX_AGE."""

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pylog.config import KafkaSettings, OptionError, Settings
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.shipper.backlog import BacklogLimit
from pylog.shipper.position import load_position, position_path
from pylog.store.reader import Position

from ...helpers import Fifo, encode_entries, retries, wait_for
from .test_manager import CID, closed_port, info

HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_age_runs_from_the_later_of_the_last_ack_and_the_last_write() -> None:
    clock = Clock(1000 * HOUR)
    limit = BacklogLimit(72 * HOUR, clock)
    old = clock.now - 73 * HOUR
    assert limit.expired(closed=True, last_ack=old, last_write=old)
    # Acknowledged, or written to, less than 72 h ago: kept.
    assert not limit.expired(closed=True, last_ack=clock.now - HOUR, last_write=old)
    assert not limit.expired(closed=True, last_ack=old, last_write=clock.now - HOUR)
    clock.now += 72 * HOUR
    assert limit.expired(closed=True, last_ack=clock.now - 72 * HOUR, last_write=old)


def test_a_running_container_or_a_max_age_of_0_is_never_given_up() -> None:
    clock = Clock(1000 * HOUR)
    assert not BacklogLimit(72 * HOUR, clock).expired(closed=False, last_ack=0, last_write=0)
    assert not BacklogLimit(0, clock).expired(closed=True, last_ack=0, last_write=0)


def test_the_setting_is_a_duration() -> None:
    assert KafkaSettings.from_env({}).backlog_max_age == 72 * HOUR
    assert KafkaSettings.from_env({"KAFKA_BACKLOG_MAX_AGE": "7d"}).backlog_max_age == 7 * 24 * HOUR
    assert KafkaSettings.from_env({"KAFKA_BACKLOG_MAX_AGE": "0"}).backlog_max_age == 0
    with pytest.raises(OptionError, match="KAFKA_BACKLOG_MAX_AGE"):
        KafkaSettings.from_env({"KAFKA_BACKLOG_MAX_AGE": "soon"})


def _stopped_container_with_backlog(
    settings: Settings, make_fifo: Callable[[str], Fifo], lines: int
) -> Path:
    """A container that logged ``lines`` lines with the broker unreachable, then stopped."""
    svc = LoggingService(settings)
    svc.startup()
    fifo = make_fifo("f")
    svc.start_logging(str(fifo.path), info())
    fifo.write(encode_entries([Entry("stdout", i, f"l{i}".encode()) for i in range(lines)]))
    fifo.close()
    wait_for(lambda: not svc.drivers())
    svc.shutdown(timeout=1)
    directory = svc.store.directory(CID)
    assert load_position(directory) == Position(0, 0)
    return directory


def _age(directory: os.PathLike[str], hours: float) -> None:
    """Make the log's last write and the position's last move ``hours`` old."""
    then = time.time() - hours * HOUR
    for path in (position_path(directory), os.path.join(directory, "json.log")):  # type: ignore[arg-type]
        os.utime(path, (then, then))


def _settings(base: Settings, max_age: float) -> Settings:
    return Settings(
        state_dir=base.state_dir,
        socket_path=base.socket_path,
        fifo_root=base.fifo_root,
        retention_seconds=30 * 24 * HOUR,
        kafka=KafkaSettings(brokers=(closed_port(),), backlog_max_age=max_age),
    )


@pytest.mark.timeout(60)
def test_an_old_backlog_is_given_up_counted_and_its_position_moved_to_the_end(
    settings: Settings, make_fifo: Callable[[str], Fifo], capfd: pytest.CaptureFixture[str]
) -> None:
    """73 h without an acknowledgement or a line: the next failure gives the backlog
    up. The position goes to the end of the log, one warning says how many lines,
    and pylog_ship_lines_abandoned counts them."""
    kafka_settings = _settings(settings, 72 * HOUR)
    directory = _stopped_container_with_backlog(kafka_settings, make_fifo, 25)
    _age(directory, 73)
    svc = LoggingService(kafka_settings)
    svc.startup()
    try:
        wait_for(lambda: not svc.shipping.shipped(), timeout=30)
        size = (directory / "json.log").stat().st_size
        assert load_position(directory) == Position(0, size)
        wait_for(lambda: bool(svc.snapshot().abandoned), what="the abandoned lines reported")
        ((abandoned,),) = [svc.snapshot().abandoned]
        assert abandoned.container_id == CID and abandoned.lines == 25
        text = svc.metrics().decode()
        assert (
            "pylog_ship_lines_abandoned_total"
            f'{{container_id="{CID[:12]}",container_name="w",log="stdout"}} 25.0' in text
        )
        # The shipping process logs to the same stderr.
        gave_up = [line for line in capfd.readouterr().err.splitlines() if "gave up" in line]
        assert len(gave_up) == 1 and "gave up 25 lines" in gave_up[0]
    finally:
        svc.shutdown(timeout=1)
    # Nothing is left to resume.
    again = LoggingService(kafka_settings)
    again.startup()
    try:
        assert again.shipping.shipped() == []
    finally:
        again.shutdown(timeout=1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("max_age", "hours"), [(72 * HOUR, 71), (0, 1000)])
def test_a_younger_backlog_or_max_age_0_keeps_being_retried(
    settings: Settings, make_fifo: Callable[[str], Fifo], max_age: float, hours: float
) -> None:
    kafka_settings = _settings(settings, max_age)
    directory = _stopped_container_with_backlog(kafka_settings, make_fifo, 25)
    _age(directory, hours)
    svc = LoggingService(kafka_settings)
    svc.startup()
    try:
        wait_for(lambda: retries(svc) >= 2, timeout=30)
        assert svc.shipping.shipped() == [CID]
        assert svc.snapshot().abandoned == []
    finally:
        svc.shutdown(timeout=1)
    assert load_position(directory) == Position(0, 0)
