"""One container's shipping task (shipper/task.py) and the worker's handling of Ship,
where no broker is needed: nothing listens at the brokers' address, so every send fails."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pylog.config import KafkaSettings, RotationPolicy, Settings
from pylog.models import ContainerInfo
from pylog.shipper import ipc
from pylog.shipper.assemble import LineAssembler
from pylog.shipper.backoff import Backoff
from pylog.shipper.position import POSITION_FILE, load_position, save_position
from pylog.shipper.producer import ClusterProducer
from pylog.shipper.routing import Route
from pylog.shipper.schema import ValueBuilder
from pylog.shipper.task import ShippingTask, start_position
from pylog.shipper.view import LogView
from pylog.shipper.worker import Worker
from pylog.store import Store
from pylog.store.logfile import LogFile
from pylog.store.reader import Position

from ..store.conftest import make_records

NOWHERE = ("127.0.0.1:1",)
CID = "c" * 64


def settings(tmp_path: Path, **kafka: Any) -> Settings:
    return Settings(state_dir=tmp_path / "state", kafka=KafkaSettings(brokers=NOWHERE, **kafka))


def written_log(tmp_path: Path, n: int, *, close: bool = True) -> LogFile:
    lf = LogFile(Store(tmp_path / "state").directory(CID), RotationPolicy(-1, 1, False))
    lf.append(b"".join(make_records(n)))
    if close:
        lf.close()
    return lf


def ship(lf: LogFile) -> ipc.Ship:
    info = {"ContainerID": CID, "ContainerName": "/web", "Config": {"kafka-topic": "t"}}
    return ipc.Ship(CID, info, lf.state(), Position(0, 0))


def test_start_position_stored_else_first_start_else_oldest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(5 * 100, 3, False))
    lf.append(b"".join(make_records(60)))
    first = Position(9, 9)

    async def positions() -> list[Position]:
        view = LogView(lf.directory, lf.policy, lf.state())
        out = [start_position(lf.directory, view, first, "c")]
        save_position(lf.directory, Position(2, 5))
        out.append(start_position(lf.directory, view, first, "c"))
        (lf.directory / POSITION_FILE).write_text("{torn")
        out.append(start_position(lf.directory, view, first, "c"))
        return out

    oldest = lf.rotated_generations()[0]
    assert oldest > 0
    assert asyncio.run(positions()) == [first, Position(2, 5), Position(oldest, 0)]
    assert "shipping again from the oldest kept log file" in caplog.text
    lf.close()


def test_a_stopped_containers_old_backlog_is_given_up_counted_and_finished(
    tmp_path: Path,
) -> None:
    """KAFKA_BACKLOG_MAX_AGE: the log is closed, nothing was acknowledged or written
    for longer than that, and the broker does not take the lines: the task counts them
    abandoned, stores the log's end as the position, reports it and ends."""
    lf = written_log(tmp_path, 40)
    directory = lf.directory
    save_position(directory, Position(0, 0))
    old = time.time() - 7200
    for name in (POSITION_FILE, "json.log"):
        os.utime(directory / name, (old, old))
    sent: list[ipc.FromWorker] = []

    async def run() -> Worker:
        worker = Worker(ipc.Hello(settings(tmp_path, backlog_max_age=3600.0), 0, 1), sent.append)
        worker.ship(ship(lf))
        task = worker.tasks[CID]
        assert await task.join(30)
        assert not worker.tasks
        return worker

    worker = asyncio.run(run())
    end = Position(0, lf.state().size)
    assert load_position(directory) == end
    assert worker.abandoned[CID].lines == 40
    assert worker.abandoned[CID].stored_name == "web"
    assert sent[0] == ipc.Progress(CID, Position(0, 0), 0)
    assert ipc.Progress(CID, end, 0) not in sent  # same generation: no second Progress
    assert sent[-1] == ipc.Finished(CID)
    report = worker.report()
    assert report.shippers == [] and report.abandoned[0].lines == 40


def test_a_halted_task_saves_its_position_and_does_not_finish(tmp_path: Path) -> None:
    lf = written_log(tmp_path, 10, close=False)
    sent: list[ipc.FromWorker] = []

    async def run() -> tuple[float, Position | None]:
        worker = Worker(ipc.Hello(settings(tmp_path), 0, 1), sent.append)
        worker.ship(ship(lf))
        task = worker.tasks[CID]
        await asyncio.sleep(0.5)
        # A second Ship for the same container only updates the view.
        worker.ship(ship(lf))
        assert worker.tasks[CID] is task
        report = worker.report()
        assert report.shippers[0].stored_name == "web"
        assert report.shippers[0].backlog_bytes == lf.state().size
        started = time.monotonic()
        task.halt()
        assert await task.join(5)
        return time.monotonic() - started, load_position(lf.directory)

    took, stored = asyncio.run(run())
    assert took < 1.5
    assert stored == Position(0, 0)
    assert not any(isinstance(m, ipc.Finished) for m in sent)
    lf.close()


def test_a_task_that_fails_unexpectedly_is_logged_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lf = written_log(tmp_path, 10)
    calls: list[Position] = []

    def make_assembler(pos: Position) -> LineAssembler:
        calls.append(pos)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return LineAssembler(pos, max_line=1 << 20)

    async def run() -> ShippingTask:
        view = LogView(lf.directory, lf.policy, lf.state())
        task = new_task(view, make_assembler, ClusterProducer(KafkaSettings(brokers=NOWHERE)))
        task.start()
        deadline = time.monotonic() + 20
        while task.stats.retries < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.halt()
        assert await task.join(5)
        return task

    caplog.set_level(logging.WARNING)
    task = asyncio.run(run())
    assert "Kafka shipping failed unexpectedly" in caplog.text
    assert "RuntimeError: a bug" in caplog.text  # with its traceback
    assert task.stats.retries >= 2  # the crash, then the broker that is not there
    assert calls[:2] == [Position(0, 0), Position(0, 0)]


def new_task(
    view: LogView,
    make_assembler: Callable[[Position], LineAssembler],
    producer: ClusterProducer,
) -> ShippingTask:
    info = ContainerInfo(container_id=CID, container_name="/web")
    return ShippingTask(
        container_id=CID,
        directory=view.directory,
        view=view,
        route=Route(NOWHERE, "t", None),
        builder=ValueBuilder(info, tag="web", labels={}, env={}, parse_json=False),
        make_assembler=make_assembler,
        producer=producer,
        start=Position(0, 0),
        send=lambda message: None,
        backoff=Backoff(0.01, 0.02),
    )
