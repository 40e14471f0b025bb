"""The shipping process (pylog.shipper.worker) on its own: a real process, a real store,
a real broker; the test plays the main process's part over the socket pair."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylog
import pytest
from kafka.broker import KafkaBroker
from pylog.config import RotationPolicy, Settings
from pylog.models import Entry
from pylog.shipper import ipc
from pylog.shipper.position import load_position
from pylog.store import Store
from pylog.store.logfile import LogFile
from pylog.store.reader import Position
from pylog.store.records import RecordEncoder

from ..helpers import make_settings, wait_for
from .shipping_helpers import cid, consume, info, messages, new_topic, values

T0 = 1_700_000_000_000_000_000


class WorkerProcess:
    """A shipping process started like the supervisor starts one, and the messages it sent."""

    def __init__(self, settings: Settings, log_path: Path, index: int = 0) -> None:
        self.sock, child = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(pylog.__file__).parent.parent), env.get("PYTHONPATH", "")]
        )
        self.stderr = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pylog.shipper.worker", "--fd", str(child.fileno())],
            pass_fds=[child.fileno()],
            stderr=self.stderr,
            env=env,
        )
        child.close()
        self.received: list[ipc.FromWorker] = []
        self._lock = threading.Lock()
        self.ended = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send(ipc.Hello(settings, index, 1))

    def _read(self) -> None:
        try:
            while (message := ipc.read_message(self.sock)) is not None:
                with self._lock:
                    self.received.append(message)
        except OSError:
            pass
        self.ended.set()

    def send(self, message: ipc.ToWorker) -> None:
        self.sock.sendall(ipc.encode(message))

    def of(self, kind: type[Any]) -> list[Any]:
        with self._lock:
            return [m for m in self.received if isinstance(m, kind)]

    def finished(self, container_id: str) -> bool:
        return any(m.container_id == container_id for m in self.of(ipc.Finished))

    def last_report(self) -> ipc.Report | None:
        reports = self.of(ipc.Report)
        return reports[-1] if reports else None

    def close(self) -> None:
        """Close our end (the main process went away) and wait for the exit."""
        with _suppress():
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


class Container:
    """A container's log as the main process writes it, and the messages it sends about it."""

    def __init__(
        self, settings: Settings, n: int, topic: str, policy: RotationPolicy, **config: str
    ) -> None:
        self.id = cid(n)
        self.info = info(self.id, Config={"kafka-topic": topic, **config})
        self.store = Store(settings.state_dir)
        self.directory = self.store.directory(self.id)
        self.log = LogFile(self.directory, policy)
        self.encoder = RecordEncoder()
        self.written = 0

    def write(self, prefix: str, count: int, size: int = 0) -> list[str]:
        lines = [f"{prefix} {i:06d}" + "x" * size for i in range(count)]
        self.log.append(
            b"".join(
                self.encoder.encode(Entry("stdout", T0 + self.written + i, line.encode()))
                for i, line in enumerate(lines)
            )
        )
        self.written += count
        return lines

    def ship(self, first_start: Position | None = None) -> ipc.Ship:
        return ipc.Ship(self.id, self.info, self.log.state(), first_start or Position(0, 0))

    def grew(self) -> ipc.Grew:
        return ipc.Grew({self.id: self.log.state()})

    def close(self) -> None:
        self.log.close()


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "worker.log"
    yield path
    if path.exists():
        sys.stderr.write(path.read_text(errors="replace")[-8000:])


def backlog(w: WorkerProcess, container_id: str) -> int:
    report = w.last_report()
    if report is None:
        return 0
    return sum(s.backlog_bytes for s in report.shippers if s.container_id == container_id)


def settings_for(broker: KafkaBroker, tmp_path: Path, **kafka: Any) -> Settings:
    kafka.setdefault("linger_ms", 5)
    return make_settings(tmp_path, brokers=(broker.bootstrap,), **kafka)


@pytest.mark.timeout(180)
def test_ships_every_line_once_in_order_across_rotations_and_reports(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    topic = new_topic("worker")
    settings = settings_for(kafka_broker, tmp_path)
    c = Container(settings, 1, topic, RotationPolicy(20_000, 3, True))
    expected = c.write("early", 50)
    w = WorkerProcess(settings, worker_log)
    try:
        w.send(c.ship())
        for round_ in range(20):  # about 8 rotations; 3 files kept
            expected += c.write(f"r{round_}", 40, size=60)
            w.send(c.grew())
            time.sleep(0.05)
        c.close()
        w.send(c.grew())
        wait_for(lambda: w.finished(c.id), 60, "Finished")
        got = consume(kafka_broker.bootstrap, topic, len(expected))
        assert messages(got) == expected
        first = values(got)[0]
        assert first["v"] == 1
        assert first["container"]["id"] == c.id
        assert first["container"]["name"] == "web"
        assert first["stream"] == "stdout"
        assert first["time"].endswith("Z") and first["tag"] == c.id[:12]
        # Progress is sent when the acknowledged or the read generation moves (that
        # is all the main process needs, to trim rotated files), so the last one is
        # in the last generation but not necessarily at its end; the stored
        # position is.
        final = c.log.state()
        progress = w.of(ipc.Progress)
        assert progress[0] == ipc.Progress(c.id, Position(0, 0), 0)
        assert [p.acked for p in progress] == sorted(p.acked for p in progress)
        assert [p.read_generation for p in progress] == sorted(p.read_generation for p in progress)
        assert progress[-1].acked.generation == progress[-1].read_generation
        assert progress[-1].read_generation == final.generation > 3
        assert load_position(c.directory) == Position(final.generation, final.size)
        wait_for(lambda: w.last_report() is not None, 5, "a Report")
        report = w.last_report()
        assert report is not None and report.producers
        assert report.producers[0].records_acked >= len(expected)
    finally:
        w.close()
    assert w.proc.returncode == 0


@pytest.mark.timeout(240)
def test_broker_down_then_back_loses_nothing(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    topic = new_topic("worker-outage")
    settings = settings_for(kafka_broker, tmp_path)
    c = Container(settings, 2, topic, RotationPolicy(-1, 1, False))
    w = WorkerProcess(settings, worker_log)
    try:
        expected = c.write("before", 200)
        w.send(c.ship())
        wait_for(lambda: load_position(c.directory) == Position(0, c.log.state().size), 60)
        kafka_broker.stop()
        try:
            for i in range(10):
                expected += c.write(f"during{i}", 100)
                w.send(c.grew())
                time.sleep(0.5)
            # The idempotent producer retries a broker that is down by itself (no
            # failure comes); the report shows the lines waiting.
            wait_for(lambda: backlog(w, c.id) > 0, 30, "a backlog in the report")
        finally:
            kafka_broker.start()
        expected += c.write("after", 100)
        c.close()
        w.send(c.grew())
        wait_for(lambda: w.finished(c.id), 120, "Finished")
        got = messages(consume(kafka_broker.bootstrap, topic, len(expected), timeout=120))
    finally:
        w.close()
    seen: set[str] = set()
    assert [m for m in got if not (m in seen or seen.add(m))] == expected  # type: ignore[func-returns-value]


@pytest.mark.timeout(240)
def test_stop_with_the_broker_down_keeps_its_deadline_and_the_next_worker_ships_the_rest(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    topic = new_topic("worker-stop")
    settings = settings_for(kafka_broker, tmp_path)
    c = Container(settings, 3, topic, RotationPolicy(-1, 1, False))
    expected = c.write("acked", 100)
    w = WorkerProcess(settings, worker_log)
    try:
        w.send(c.ship())
        acked = Position(0, c.log.state().size)
        wait_for(lambda: load_position(c.directory) == acked, 60, "the first lines acked")
        kafka_broker.stop()
        try:
            expected += c.write("unacked", 300)
            c.close()
            w.send(c.grew())
            time.sleep(1.0)
            started = time.monotonic()
            w.send(ipc.Stop(started + 2.0))
            assert w.proc.wait(10) == 0
            took = time.monotonic() - started
            w.ended.wait(5)
        finally:
            kafka_broker.start()
        assert took < 2.0 + 0.8, f"stopping took {took:.2f} s"
        assert load_position(c.directory) == acked
        assert not w.finished(c.id)
        assert w.last_report() is not None  # the last one, sent before exiting
    finally:
        w.close()
    # A second worker, later, on the same store: only what was not acknowledged.
    w2 = WorkerProcess(settings, worker_log)
    try:
        w2.send(c.ship())
        wait_for(lambda: w2.finished(c.id), 120, "Finished")
        got = messages(consume(kafka_broker.bootstrap, topic, len(expected), timeout=60))
    finally:
        w2.close()
    assert got[:100] == expected[:100]
    # At least once: what was in flight at the outage may come twice, nothing is missing.
    assert set(got) == set(expected)
    assert got[-300:] == expected[-300:]
    assert len(got) < len(expected) + 300


@pytest.mark.timeout(120)
def test_the_worker_exits_soon_after_the_main_process_goes_away(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    topic = new_topic("worker-orphan")
    settings = settings_for(kafka_broker, tmp_path)
    c = Container(settings, 4, topic, RotationPolicy(-1, 1, False))
    c.write("line", 100)
    w = WorkerProcess(settings, worker_log)
    w.send(c.ship())
    wait_for(lambda: load_position(c.directory) == Position(0, c.log.state().size), 60)
    c.write("more", 100)
    w.send(c.grew())  # the log stays open: the task would follow it forever
    started = time.monotonic()
    w.sock.close()
    assert w.proc.wait(10) == 0
    assert time.monotonic() - started < 3.0
    w.stderr.close()
    c.close()


def ship_a_rejected_record(
    broker: KafkaBroker, tmp_path: Path, worker_log: Path, *, idempotence: bool, wait: float
) -> None:
    settings = settings_for(broker, tmp_path, max_line=3 << 20, idempotence=idempotence)
    bad_topic, good_topic = new_topic("worker-bad"), new_topic("worker-good")
    bad = Container(settings, 5, bad_topic, RotationPolicy(-1, 1, False))
    good = Container(settings, 6, good_topic, RotationPolicy(-1, 1, False))
    huge = base64.b64encode(os.urandom(2 << 20)).decode()
    bad_expected = bad.write("before", 10)
    bad.write(huge, 1)
    bad_expected += bad.write("after", 10)
    good_expected = good.write("good", 500)
    bad.close()
    good.close()
    w = WorkerProcess(settings, worker_log)
    try:
        w.send(bad.ship())
        w.send(good.ship())
        wait_for(lambda: w.finished(bad.id) and w.finished(good.id), wait, "both Finished")
        assert messages(consume(broker.bootstrap, good_topic, 500)) == good_expected
        assert messages(consume(broker.bootstrap, bad_topic, 20)) == bad_expected
    finally:
        w.close()
    assert "rejected 1 records for good" in worker_log.read_text()


@pytest.mark.timeout(180)
def test_a_record_the_broker_rejects_leaves_another_container_unaffected(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    """A line above the broker's message.max.bytes (1 MB by default) is rejected for
    good: counted and dropped; the lines around it and another container's lines ship.
    (Without idempotence: see the next test.)"""
    ship_a_rejected_record(kafka_broker, tmp_path, worker_log, idempotence=False, wait=60)


@pytest.mark.timeout(120)
def test_a_record_the_broker_rejects_with_idempotence(
    kafka_broker: KafkaBroker, tmp_path: Path, worker_log: Path
) -> None:
    """Before: the rejected batch had used up its sequence numbers, every later batch of
    the partition failed with OutOfOrderSequenceNumber, and the container sent the same
    lines again forever. Now the producer is replaced after it."""
    ship_a_rejected_record(kafka_broker, tmp_path, worker_log, idempotence=True, wait=30)
