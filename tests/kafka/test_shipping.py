"""pylog shipping to a real Kafka broker, in process: a LoggingService fed through FIFOs."""

from __future__ import annotations

import json
from pathlib import Path

from broker import KafkaBroker
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.shipper.position import load_position
from pylog.tag import TagTemplate
from shipping_helpers import (
    Fifo,
    cid,
    consume,
    info,
    make_settings,
    messages,
    new_topic,
    values,
    wait_for,
)

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
    assert {r.partition for r in got} == {0}


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
        assert svc.shipping._runtime is None  # no loop thread, no producer
        assert not svc.shipping.shippers()
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
