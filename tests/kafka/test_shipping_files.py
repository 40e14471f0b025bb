"""Declared file logs shipped to a real broker, each to its own topic: the main process's
ShipperManager with real shipping processes, logs written the way the collector writes
them (json-file records whose ``attrs`` hold the path inside the container)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kafka.broker import KafkaBroker
from pylog.config import RotationPolicy, Settings, parse_declarations, parse_log_opts
from pylog.models import ContainerInfo, EntryBatch
from pylog.shipper import ipc
from pylog.shipper.manager import ShipperManager
from pylog.shipper.position import load_position, save_position
from pylog.store import LogFile, Store
from pylog.store.reader import Position
from pylog.store.records import RecordEncoder

from ..helpers import make_settings, wait_for
from .shipping_helpers import cid, consume, dedupe_in_order, info, new_topic, values

POLICY = RotationPolicy(-1, 1, False)


class Container:
    """A container with stdout and two declared file logs (one of two files), attached
    to a ShipperManager as the service and the collector attach them."""

    def __init__(self, settings: Settings, container_id: str, topics: dict[str, str]) -> None:
        labels = {
            "pylog.logs.a": "/var/log/a.log",
            "pylog.logs.a.target": topics["a"],
            "aliyun.logs.b": "/var/log/b/*.log",
            "aliyun.logs.b.target": topics["b"],
            "aliyun.logs.b.tags": "env=prod",
            "aliyun.logs.b.format": "json",
        }
        self.info = ContainerInfo.from_json(
            info(container_id, ContainerLabels=labels, Config={"kafka-topic": topics["out"]})
        )
        self.store = Store(settings.state_dir)
        self.declarations = {
            d.name: d for d in parse_declarations(self.info.container_labels, self.info.env)
        }
        self.logs = {
            "": self.store.acquire(container_id, POLICY),
            "a": self.store.acquire_file_log(container_id, "a", POLICY),
            "b": self.store.acquire_file_log(container_id, "b", POLICY),
        }
        self.encoders = {
            "out": RecordEncoder(),
            "/var/log/a.log": RecordEncoder({"path": "/var/log/a.log"}),
            "/var/log/b/1.log": RecordEncoder({"path": "/var/log/b/1.log"}),
            "/var/log/b/2.log": RecordEncoder({"path": "/var/log/b/2.log"}),
        }
        self.store.write_info(container_id, self.info.to_json())

    def attach(self, manager: ShipperManager) -> None:
        route = manager.route(
            self.info, parse_log_opts(self.info.config), tuple(self.declarations.values())
        )
        assert route is not None
        manager.attach(self.info, self.logs[""], route)
        for name in ("a", "b"):
            manager.attach_file(self.info, self.declarations[name], self.logs[name], route)

    def write(self, log: str, source: str, lines: list[str]) -> None:
        batch = EntryBatch(
            lines=[line.encode() for line in lines], times=[time.time_ns()] * len(lines)
        )
        self.logs[log].append(self.encoders[source].encode_batch(batch))

    def close(self) -> None:
        self.store.release(self.info.container_id)
        for name in ("a", "b"):
            self.store.release_file_log(self.info.container_id, name)


def write_all(c: Container, n: int) -> dict[str, list[str]]:
    """n lines per file, interleaved across the logs; returns them by source."""
    expected: dict[str, list[str]] = {src: [] for src in c.encoders}
    for i in range(0, n, 100):
        chunk = range(i, min(i + 100, n))
        for log, src in (
            ("", "out"),
            ("a", "/var/log/a.log"),
            ("b", "/var/log/b/1.log"),
            ("b", "/var/log/b/2.log"),
        ):
            if src.startswith("/var/log/b"):
                lines = [json.dumps({"src": src, "i": j}) for j in chunk]
            else:
                lines = [f"{src} line {j}" for j in chunk]
            c.write(log, src, lines)
            expected[src] += lines
    return expected


def by_source(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in records:
        source = v["log"]["path"] if "log" in v else "out"
        out.setdefault(source, []).append(v["message"])
    return out


def topics() -> dict[str, str]:
    return {"out": new_topic("out"), "a": new_topic("file-a"), "b": new_topic("file-b")}


def test_stdout_and_two_declared_file_logs_go_to_three_topics_in_order_per_file(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,))
    names = topics()
    c = Container(settings, cid(1), names)
    manager = ShipperManager(settings, c.store)
    try:
        c.attach(manager)
        cid_ = c.info.container_id
        assert sorted(manager.shipped()) == [cid_, f"{cid_}/a", f"{cid_}/b"]
        expected = write_all(c, 1000)
        c.close()
        wait_for(lambda: not manager.shipped(), timeout=60, what="every log finished")
        out = consume(kafka_broker.bootstrap, names["out"], 1000)
        a = consume(kafka_broker.bootstrap, names["a"], 1000)
        b = consume(kafka_broker.bootstrap, names["b"], 2000)
    finally:
        manager.shutdown(time.monotonic() + 5)

    got = by_source(values(out) + values(a) + values(b))
    assert got == expected  # every line once, in order per file
    assert {v["stream"] for v in values(out)} == {"stdout"}
    assert not any("log" in v or "tags" in v for v in values(out))
    for v in values(a):
        assert v["stream"] == "file" and v["log"] == {"name": "a", "path": "/var/log/a.log"}
        assert "tags" not in v and "fields" not in v
    for v in values(b):
        assert v["stream"] == "file" and v["log"]["name"] == "b"
        assert v["tags"] == {"env": "prod"}
        assert v["fields"] == json.loads(v["message"])  # format json
        assert v["container"]["id"] == c.info.container_id
    headers = dict(b[0].headers)
    assert headers["log"] == b"b" and headers["stream"] == b"file"
    # One key per container: each file's lines stay in one partition, in order.
    assert {r.key for r in out + a + b} == {c.info.container_id.encode()}


def test_a_restart_of_shipping_mid_way_resumes_each_log_from_its_own_position(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, brokers=(kafka_broker.bootstrap,))
    names = topics()
    c = Container(settings, cid(2), names)
    n = 30_000
    expected = write_all(c, n)
    c.close()
    cid_ = c.info.container_id
    dirs = {
        "": c.store.directory(cid_),
        "a": c.store.file_log_directory(cid_, "a"),
        "b": c.store.file_log_directory(cid_, "b"),
    }
    # The first pylog: shipping starts from the logs' beginnings (as for a log that
    # was routed from its first line), and is stopped once some lines are acknowledged.
    for d in dirs.values():
        save_position(d, Position(0, 0))
    first = ShipperManager(settings, Store(settings.state_dir))
    resumed = first.resume_backlogs()
    assert sorted(resumed) == [cid_, f"{cid_}/a", f"{cid_}/b"]
    wait_for(
        lambda: all((load_position(d) or Position(0, 0)) > Position(0, 0) for d in dirs.values()),
        timeout=60,
        what="every log shipped some lines",
    )
    first.shutdown(time.monotonic() + 1.6)
    time.sleep(2.0)
    stopped_at = {name: load_position(d) for name, d in dirs.items()}

    # The second: each log's backlog resumes from its own position.
    second = ShipperManager(settings, Store(settings.state_dir))
    try:
        again = second.resume_backlogs()
        unfinished = [
            ipc.log_id(cid_, name) for name, pos in stopped_at.items() if pos != end_of(c, name)
        ]
        assert sorted(again) == sorted(unfinished)
        assert again, "the first pylog shipped everything before it was stopped: raise n"
        wait_for(lambda: not second.shipped(), timeout=120, what="every backlog shipped")
        out = consume(kafka_broker.bootstrap, names["out"], n)
        a = consume(kafka_broker.bootstrap, names["a"], n)
        b = consume(kafka_broker.bootstrap, names["b"], 2 * n)
    finally:
        second.shutdown(time.monotonic() + 5)
    got = by_source(values(out) + values(a) + values(b))
    # At least once: repeats dropped, every line is there in order per file.
    assert {src: dedupe_in_order(lines) for src, lines in got.items()} == expected


def end_of(c: Container, name: str) -> Position:
    directory = (
        c.store.directory(c.info.container_id)
        if not name
        else c.store.file_log_directory(c.info.container_id, name)
    )
    state = LogFile(directory, POLICY, writable=False).state()
    return Position(state.generation, state.size)
