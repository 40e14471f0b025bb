"""pylog shipping to a real Kafka broker, in process: a LoggingService fed through FIFOs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka.broker import KafkaBroker
from pylog.config import RotationPolicy, Settings
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.shipper.position import load_position
from pylog.store import LogFile
from pylog.store.reader import Position, ReadOptions, read_records
from pylog.store.records import decode_record
from pylog.tag import TagTemplate

from ..helpers import Fifo, acked, make_settings, wait_for
from .shipping_helpers import cid, consume, dedupe_in_order, info, messages, new_topic, values
from .test_broker import CODECS, record_batches

HERE = Path(__file__).resolve().parent
T0 = 1_764_237_000_123_456_789


def test_every_line_in_order_with_every_field(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic("fields")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    container = cid(1)
    fifo = Fifo(svc.settings.fifo_root / "f1")
    try:
        svc.start_logging(
            str(fifo.path),
            info(
                container,
                Config={
                    "kafka-topic": topic,
                    "labels": "app",
                    "env-regex": "^REG",
                    "tag": "{{.Name}}/{{.ID}}",
                },
            ),
        )
        long_line = ("x" * 16384, "y" * 16384, "z" * 1000)
        entries = [
            Entry("stdout" if i % 3 else "stderr", T0 + i, f"line {i} é".encode())
            for i in range(500)
        ]
        entries.append(Entry("stdout", T0 + 600, long_line[0].encode(), complete=False))
        entries.append(Entry("stdout", T0 + 600, long_line[1].encode(), complete=False))
        entries.append(Entry("stdout", T0 + 600, long_line[2].encode(), complete=True))
        entries.append(Entry("stderr", T0 + 700, b"no newline at exit", complete=False))
        fifo.entries(entries)
        fifo.close()
        wait_for(lambda: not svc.drivers(), what="FIFO drained")
        got = consume(kafka_broker.bootstrap, topic, 502)
    finally:
        fifo.close()
        svc.shutdown()
    assert len(got) == 502
    vals = values(got)
    for i, (rec, v) in enumerate(zip(got[:500], vals[:500], strict=True)):
        stream = "stdout" if i % 3 else "stderr"
        assert v == {
            "v": 1,
            "message": f"line {i} é",
            "stream": stream,
            "time": f"2025-11-27T09:50:00.{(123456789 + i):09d}Z",
            "container": {
                "id": container,
                "name": "web",
                "image": "busybox:latest",
                "image_id": "sha256:" + "ab" * 32,
            },
            "host": v["host"],
            "tag": f"web/{container[:12]}",
            "labels": {"app": "shop"},
            "env": {"REGION": "eu"},
        }
        assert rec.key == container.encode()
        assert dict(rec.headers) == {"container_name": b"web", "stream": stream.encode()}
        assert rec.timestamp == (T0 + i) // 1_000_000
    assert vals[0]["host"] and all(v["host"] == vals[0]["host"] for v in vals)
    # 16 KiB chunks joined back into one line; the unfinished last line flushed at close.
    assert vals[500]["message"] == "".join(long_line)
    assert vals[500]["time"].endswith(f".{123457389:09d}Z")
    assert vals[501]["message"] == "no newline at exit"
    assert vals[501]["stream"] == "stderr"
    assert "SECRET" not in json.dumps(vals)
    assert len({r.partition for r in got}) == 1  # one key, one partition: in order


def test_no_brokers_is_local_only(tmp_path: Path) -> None:
    svc = LoggingService(make_settings(tmp_path))
    svc.startup()
    fifo = Fifo(svc.settings.fifo_root / "f1")
    container = cid(2)
    try:
        svc.start_logging(str(fifo.path), info(container))
        fifo.entries([Entry("stdout", T0 + i, f"l{i}".encode()) for i in range(10)])
        fifo.close()
        wait_for(lambda: not svc.drivers())
        assert svc.shipping.processes() == (0, 0)  # no shipping process was started
        assert not svc.shipping.shipped()
        assert load_position(svc.store.directory(container)) is None
        data = b"".join(svc.read_logs({"ContainerID": container}, {}))
        assert data.count(b"l9") == 1
    finally:
        svc.shutdown()


def test_label_and_template_routing(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """pylog.topic label > kafka-topic log-opt > KAFKA_TOPIC; templates over name/labels."""
    suffix = new_topic("r")
    svc = LoggingService(
        make_settings(
            tmp_path,
            brokers=(kafka_broker.bootstrap,),
            topic=TagTemplate("plugin-{{.Name}}-" + suffix),
        )
    )
    svc.startup()
    cases = {
        # container: (labels, log-opts, expected topic, expected key)
        "label": (
            {"app": "shop", "pylog.topic": 'lbl-{{index .ContainerLabels "app"}}-' + suffix},
            {"kafka-topic": "opt-" + suffix},
            f"lbl-shop-{suffix}",
        ),
        "opt": ({"app": "cart"}, {"kafka-topic": "opt-{{.ImageName}}-" + suffix}, None),
        "plugin": (
            {"app": "cart"},
            {"kafka-key": '{{index .ContainerLabels "app"}}'},
            f"plugin-c3-{suffix}",
        ),
    }
    fifos: list[Fifo] = []
    ids: dict[str, str] = {}
    try:
        for n, (name, (labels, opts, _)) in enumerate(cases.items()):
            ids[name] = cid(10 + n)
            fifo = Fifo(svc.settings.fifo_root / name)
            fifos.append(fifo)
            svc.start_logging(
                str(fifo.path),
                info(ids[name], name=f"/c{n + 1}", ContainerLabels=labels, Config=opts),
            )
            fifo.entries([Entry("stdout", T0 + i, f"{name} {i}".encode()) for i in range(20)])
            fifo.close()
        wait_for(lambda: not svc.drivers())
        label = consume(kafka_broker.bootstrap, f"lbl-shop-{suffix}", 20)
        opt = consume(kafka_broker.bootstrap, f"opt-busybox_latest-{suffix}", 20)
        plugin = consume(kafka_broker.bootstrap, f"plugin-c3-{suffix}", 20)
    finally:
        for f in fifos:
            f.close()
        svc.shutdown()
    assert messages(label) == [f"label {i}" for i in range(20)]
    assert messages(opt) == [f"opt {i}" for i in range(20)]
    assert messages(plugin) == [f"plugin {i}" for i in range(20)]
    assert {r.key for r in label} == {ids["label"].encode()}
    assert {r.key for r in opt} == {ids["opt"].encode()}
    assert {r.key for r in plugin} == {b"cart"}


def test_json_fields_and_multiline(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic("ml")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    fifo = Fifo(svc.settings.fifo_root / "f")
    lines = [
        '{"level":"info","msg":"hello","n":1}',
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: boom",
        "2026-01-01 next record",
        "2026-01-01 last record",
    ]
    try:
        svc.start_logging(
            str(fifo.path),
            info(
                cid(20),
                Config={
                    "kafka-topic": topic,
                    "kafka-json": "true",
                    "kafka-multiline-pattern": r"^(\{|Traceback|\d{4}-)",
                    "kafka-multiline-timeout": "500ms",
                },
            ),
        )
        fifo.entries([Entry("stdout", T0 + i, s.encode()) for i, s in enumerate(lines)])
        # The container keeps running: the last record ships after the flush timeout.
        got = consume(kafka_broker.bootstrap, topic, 4, timeout=20)
    finally:
        fifo.close()
        svc.shutdown()
    vals = values(got)
    assert [v["message"] for v in vals] == [
        lines[0],
        "\n".join(lines[1:4]),
        lines[4],
        lines[5],
    ]
    assert vals[0]["fields"] == {"level": "info", "msg": "hello", "n": 1}
    assert "fields" not in vals[1] and vals[1]["lines"] == 3
    assert "lines" not in vals[0] and "lines" not in vals[3]
    assert [v["time"][-4:] for v in vals] == ["789Z", "790Z", "793Z", "794Z"]


class Writer(threading.Thread):
    """A container writing numbered lines steadily; records how long each write took."""

    def __init__(self, fifo: Fifo, prefix: str, per_tick: int = 20, tick: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.fifo, self.prefix, self.per_tick, self.tick = fifo, prefix, per_tick, tick
        self.stop = threading.Event()
        self.count = 0
        self.max_write = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            batch = [
                Entry("stdout", time.time_ns(), f"{self.prefix} {i:07d}".encode())
                for i in range(self.count, self.count + self.per_tick)
            ]
            t = time.monotonic()
            self.fifo.entries(batch)
            self.max_write = max(self.max_write, time.monotonic() - t)
            self.count += self.per_tick
            time.sleep(self.tick)

    def expected(self) -> list[str]:
        return [f"{self.prefix} {i:07d}" for i in range(self.count)]


OUTAGE = float(os.environ.get("PYLOG_KAFKA_OUTAGE_SECONDS", "60"))


def test_broker_down_for_a_minute_loses_nothing(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """Broker stopped mid-stream for 60 s: the container never stalls, docker logs keeps
    working, and once the broker is back every line arrives, in order."""
    topic = new_topic("outage")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,), linger_ms=5))
    svc.startup()
    container = cid(30)
    fifo = Fifo(svc.settings.fifo_root / "f")
    writer = Writer(fifo, "outage")
    try:
        svc.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        writer.start()
        wait_for(lambda: writer.count >= 2000)
        kafka_broker.stop()
        try:
            down_at = writer.count
            time.sleep(OUTAGE)
            # The container kept writing and docker logs served it, broker or not.
            assert writer.count > down_at + 1000
            stored = b"".join(svc.read_logs({"ContainerID": container}, {"Tail": 1}))
            assert b"outage" in stored
        finally:
            kafka_broker.start()
        time.sleep(2)
        writer.stop.set()
        writer.join()
        fifo.close()
        wait_for(lambda: not svc.drivers())
        expected = writer.expected()
        got = messages(consume(kafka_broker.bootstrap, topic, len(expected), timeout=180))
    finally:
        writer.stop.set()
        fifo.close()
        svc.shutdown()
    # Waiting on the broker would block a write for most of the outage (60 s); a
    # second or so is the scheduler of a loaded 2-core machine (seen: 1.05 s).
    assert writer.max_write < 5.0, f"a FIFO write blocked for {writer.max_write:.1f} s"
    assert dedupe_in_order(got) == expected
    assert_resends_only_in_flight(got, expected)
    # With idempotence (the default) the batches out at the outage go again with the
    # same producer ID and numbers: the broker keeps each line once.
    assert len(got) == len(expected), f"{len(got) - len(expected)} lines repeated"


def assert_resends_only_in_flight(got: list[str], expected: list[str]) -> None:
    """At least once: a re-send goes back to an earlier line and repeats in order from there.

    So ``got`` is ``expected`` split into runs, each run starting at or before where
    the previous one ended, with no gaps.
    """
    index = {m: i for i, m in enumerate(expected)}
    high = -1
    for m in got:
        i = index[m]
        assert i <= high + 1, f"gap before {m!r}"
        high = max(high, i)
    assert high == len(expected) - 1
    dups = len(got) - len(expected)
    assert dups < 60_000, f"{dups} duplicates: more than what can be in flight"


def test_sigkill_mid_stream_resumes_from_acked_position(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """pylog's process SIGKILLed while shipping: after restart every stored line ships;
    repeats only of what was in flight."""
    topic = new_topic("kill")
    state, fifo_root = tmp_path / "state", tmp_path / "logging"
    fifo_root.mkdir()
    container = cid(40)
    fifo = Fifo(fifo_root / "f")
    start_args = [str(fifo.path), json.dumps(info(container, Config={"kafka-topic": topic}))]

    procs: list[subprocess.Popen[str]] = []

    def spawn(*extra: str) -> subprocess.Popen[str]:
        with open(tmp_path / "service.log", "a") as log:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "service_main.py"), str(state), str(fifo_root),
                 kafka_broker.bootstrap, *extra],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    writer = Writer(fifo, "kill", per_tick=50)
    proc = spawn(*start_args)
    try:
        writer.start()
        directory = state / "containers" / container

        def shipped() -> int:
            pos = load_position(directory)
            return pos.offset if pos is not None else 0

        wait_for(lambda: shipped() > 200_000, what="some lines acknowledged")
        proc.kill()
        proc.wait()
        killed_at = writer.count
        acked_at_kill = load_position(directory)
        assert acked_at_kill is not None
        time.sleep(1)
        # Restarted: pylog reattaches the FIFO it was reading (as after a crash of the
        # plugin, when dockerd does not call StartLogging again) and resumes shipping
        # from the stored position.
        proc = spawn()
        wait_for(lambda: writer.count > killed_at + 2000, what="writing again")
        writer.stop.set()
        writer.join()
        fifo.close()
        proc.terminate()
        assert proc.wait(30) == 0
        proc = spawn()  # nothing to log: ships any leftover backlog
        stored = read_store(state, container)
        got = messages(consume(kafka_broker.bootstrap, topic, len(stored), timeout=120))
    finally:
        writer.stop.set()
        fifo.close()
        for p in procs:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
    written = writer.expected()
    # What pylog stored is what the writer wrote, but for what the killed process had
    # read from the pipe and not yet stored (one read, at most 64 KiB).
    assert len(written) - len(stored) < 2000
    kept = set(stored)
    assert stored == [m for m in written if m in kept]
    assert dedupe_in_order(got) == stored
    assert_resends_only_in_flight(got, stored)
    # Lines acknowledged before the kill were not sent again: the restart resumed from
    # the stored position, not from the start of the log.
    acked_lines = count_before(state, container, acked_at_kill.offset)
    assert acked_lines > 1000
    assert len(got) - len(set(got)) <= len(stored) - acked_lines
    counts = Counter(got)
    assert all(counts[m] == 1 for m in stored[:acked_lines])


def count_before(state: Path, container: str, offset: int) -> int:
    """How many records of generation 0 end at or before ``offset``."""
    data = (state / "containers" / container / "json.log").read_bytes()[:offset]
    return data.count(b"\n")


def read_store(state: Path, container: str) -> list[str]:
    """Every line the store holds for the container (rotation is off in these tests)."""
    lf = LogFile(state / "containers" / container, RotationPolicy(-1, 1, False), writable=False)
    return [decode_record(r).log.decode().rstrip("\n") for r in read_records(lf, ReadOptions())]


def test_one_producer_per_cluster_configuration(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic("shared")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    other = f"localhost:{kafka_broker.port}"  # same broker, another cluster configuration
    configs = [{}, {}, {"kafka-brokers": other}]
    fifos = []
    try:
        for n, extra in enumerate(configs):
            fifo = Fifo(svc.settings.fifo_root / f"f{n}")
            fifos.append(fifo)
            svc.start_logging(
                str(fifo.path), info(cid(60 + n), Config={"kafka-topic": topic, **extra})
            )
            fifo.entries([Entry("stdout", T0 + i, f"c{n} {i}".encode()) for i in range(50)])
        got = messages(consume(kafka_broker.bootstrap, topic, 150))
        wait_for(lambda: len(svc.snapshot().producers) == 2, what="both producers reported")
        assert sorted(p.brokers for p in svc.snapshot().producers) == sorted(
            [kafka_broker.bootstrap, other]
        )
    finally:
        for f in fifos:
            f.close()
        svc.shutdown()
    for n in range(3):
        assert [m for m in got if m.startswith(f"c{n} ")] == [f"c{n} {i}" for i in range(50)]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_and_idempotence_reach_the_broker(
    kafka_broker: KafkaBroker, tmp_path: Path, codec: str
) -> None:
    """The batches on the broker's disk carry the codec and an idempotent producer ID."""
    topic = new_topic(f"codec-{codec}")
    svc = LoggingService(
        make_settings(tmp_path, brokers=(kafka_broker.bootstrap,), compression=codec)
    )
    svc.startup()
    fifo = Fifo(svc.settings.fifo_root / "f")
    try:
        svc.start_logging(str(fifo.path), info(cid(70), Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", T0 + i, f"{codec} {i} ".encode() * 20) for i in range(300)])
        got = consume(kafka_broker.bootstrap, topic, 300)
    finally:
        fifo.close()
        svc.shutdown()
    assert [v["message"] for v in values(got)] == [f"{codec} {i} " * 20 for i in range(300)]
    (partition,) = {r.partition for r in got}
    batches = list(record_batches(kafka_broker, topic, partition))
    assert batches and sum(b["count"] for b in batches) == 300
    assert {b["codec"] for b in batches} == {CODECS[codec]}
    assert all(b["producer_id"] >= 0 and b["base_sequence"] >= 0 for b in batches)


def test_backlog_of_a_stopped_container_ships_after_restart(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The broker is down while a container logs and exits and pylog stops; the next
    pylog ships that backlog at startup, though nothing logs to the container any more."""
    topic = new_topic("backlog")
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,))
    container = cid(80)
    first = LoggingService(settings)
    first.startup()
    fifo = Fifo(settings.fifo_root / "f")
    try:
        first.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        fifo.entries([Entry("stdout", T0 + i, f"before {i}".encode()) for i in range(100)])
        wait_for(lambda: acked(first) == 100)
        kafka_broker.stop()
        try:
            fifo.entries([Entry("stdout", T0 + i, f"during {i}".encode()) for i in range(500)])
            fifo.close()
            wait_for(lambda: not first.drivers())
            first.shutdown(timeout=2)
        finally:
            kafka_broker.start()
        next_pylog_ships_the_rest(settings, kafka_broker, topic, container)
    finally:
        fifo.close()


#: What the backlog tests log: 100 lines while the broker is up, 500 while it is down.
BACKLOG = [f"before {i}" for i in range(100)] + [f"during {i}" for i in range(500)]


def next_pylog_ships_the_rest(
    settings: Settings, broker: KafkaBroker, topic: str, container: str
) -> None:
    """A new pylog on the same state dir ships the container's backlog at startup:
    every line of BACKLOG reaches the topic, in order, repeats only of what was in
    flight, and the stored position ends at the end of the log."""
    second = LoggingService(settings)
    second.startup()
    try:
        assert second.shipping.shipped() == [container]
        got = messages(consume(broker.bootstrap, topic, len(BACKLOG), timeout=120))
        wait_for(lambda: not second.shipping.shipped(), what="backlog shipper done")
    finally:
        second.shutdown()
    assert dedupe_in_order(got) == BACKLOG
    assert_resends_only_in_flight(got, BACKLOG)
    directory = settings.state_dir / "containers" / container
    assert load_position(directory) == Position(0, (directory / "json.log").stat().st_size)


def test_reading_a_stopped_container_never_resends(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """``docker logs`` right after exit, while the container's lines are still being
    shipped: dockerd calls StartLogging again (a new FIFO) to read the logs. That must not
    touch the shipping under way: every line reaches Kafka exactly once."""
    topic = new_topic("reread")
    svc = LoggingService(make_settings(tmp_path, brokers=(kafka_broker.bootstrap,)))
    svc.startup()
    container = cid(90)
    n = 100_000
    fifo = Fifo(svc.settings.fifo_root / "run")
    reader_fifo = Fifo(svc.settings.fifo_root / "logs")
    try:
        svc.start_logging(str(fifo.path), info(container, Config={"kafka-topic": topic}))
        for start in range(0, n, 10_000):
            fifo.entries(
                [
                    Entry("stdout", T0 + i, f"line {i}".encode())
                    for i in range(start, start + 10_000)
                ]
            )
        fifo.close()
        svc.stop_logging(str(fifo.path))
        wait_for(lambda: not svc.drivers(), what="FIFO drained")
        assert svc.shipping.shipped() == [container], (
            "the shipping finished too early for this test to mean anything"
        )
        # What dockerd does for `docker logs` of a stopped container.
        svc.start_logging(str(reader_fifo.path), info(container, Config={"kafka-topic": topic}))
        read = b"".join(svc.read_logs(info(container), {"Tail": 10}))
        assert read.count(b"line ") == 10
        svc.stop_logging(str(reader_fifo.path))
        reader_fifo.close()
        got = messages(consume(kafka_broker.bootstrap, topic, n, timeout=120, settle=3))
        wait_for(lambda: not svc.shipping.shipped(), what="shipping done")
    finally:
        fifo.close()
        reader_fifo.close()
        svc.shutdown()
    counts = Counter(got)
    doubled = sum(c - 1 for c in counts.values())
    assert doubled == 0, f"{doubled} lines shipped twice"
    assert got == [f"line {i}" for i in range(n)]
