import json
import re
from pathlib import Path

from pylog.models import ContainerInfo, Entry
from pylog.shipper import schema
from pylog.shipper.schema import SCHEMA_VERSION, Line, PlainRun, ValueBuilder
from pylog.store.records import RecordEncoder, split_plain_run
from pylog.timefmt import format_rfc3339_fixed as format_time_ns

from ...helpers import plain_run_lines

INFO = ContainerInfo(
    container_id="c" * 64,
    container_name="/web",
    container_image_name="nginx:1",
    container_image_id="sha256:" + "1" * 64,
)


def test_time_is_rfc3339_with_nine_digits() -> None:
    assert format_time_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_time_ns(1_764_237_000_000_000_001) == "2025-11-27T09:50:00.000000001Z"


def test_value_v1() -> None:
    b = ValueBuilder(INFO, tag="t", labels={"b": "2", "a": "1"}, env={}, host="h")
    v = json.loads(b.value(Line("stderr", 5, 'say "hi" ✓')))
    assert v == {
        "v": 1,
        "message": 'say "hi" ✓',
        "stream": "stderr",
        "time": "1970-01-01T00:00:00.000000005Z",
        "container": {
            "id": "c" * 64,
            "name": "web",
            "image": "nginx:1",
            "image_id": "sha256:" + "1" * 64,
        },
        "host": "h",
        "tag": "t",
        "labels": {"a": "1", "b": "2"},
        "env": {},
    }
    assert b.headers(Line("stderr", 5, "x")) == [("container_name", b"web"), ("stream", b"stderr")]


def test_optional_fields() -> None:
    b = ValueBuilder(INFO, tag="t", labels={}, env={"E": "1"}, parse_json=True, host="h")
    v = json.loads(b.value(Line("stdout", 1, '{"level": "warn", "n": [1]}')))
    assert v["fields"] == {"level": "warn", "n": [1]} and v["env"] == {"E": "1"}
    v = json.loads(b.value(Line("stdout", 1, "[1, 2]")))
    assert "fields" not in v
    v = json.loads(b.value(Line("stdout", 1, "{not json}")))
    assert "fields" not in v
    v = json.loads(b.value(Line("stdout", 1, "a\nb", lines=2)))
    assert v["lines"] == 2 and v["message"] == "a\nb"
    v = json.loads(b.value(Line("stdout", 1, "{}", part=2, last=True)))
    assert (v["part"], v["last"]) == (2, True) and "fields" not in v


def test_every_value_carries_the_schema_version() -> None:
    b = ValueBuilder(INFO, tag="t", labels={}, env={}, parse_json=True, host="h")
    enc = RecordEncoder()
    raws = [enc.encode(Entry("stdout", 1_700_000_000_5, b"plain")) for _ in range(3)]
    run = split_plain_run(raws)
    assert run is not None
    values = [v for v, _, _ in b.plain_records(PlainRun(run))]
    values += [
        b.value(line) for line in plain_run_lines(PlainRun(run))
    ]  # a plain line with its stream
    odd = plain_run_lines(PlainRun(run))[0]
    odd.stream = "other"  # a plain line without a template of its own
    values.append(b.value(odd))
    values += [
        b.value(Line("stderr", 5, "text")),
        b.value(Line("stdout", 5, '{"a": 1}')),
        b.value(Line("stdout", 5, "a\nb", lines=2)),
        b.value(Line("stdout", 5, "x", part=2, last=False)),
    ]
    assert SCHEMA_VERSION == 1
    assert [json.loads(v)["v"] for v in values] == [SCHEMA_VERSION] * len(values)


def test_the_version_is_written_in_one_place() -> None:
    """No value template spells the version out: they all take SCHEMA_VERSION."""
    root = Path(schema.__file__).parent.parent
    found = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if re.search(r"""\{\s*\\?['"]v\\?['"]\s*:\s*\d""", p.read_text())
    ]
    assert found == []


def test_orchestrator_labels_become_fields_only_when_present() -> None:
    labels = {
        "io.kubernetes.pod.name": "web-7d9f",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.container.name": "nginx",
        "com.docker.compose.project": "demo",
        "com.docker.compose.service": "api",
        "com.docker.stack.namespace": "prod",
        "unrelated": "x",
    }
    info = ContainerInfo.from_json(
        {"ContainerID": "c" * 64, "ContainerName": "/web", "ContainerLabels": labels}
    )
    b = ValueBuilder(info, tag="t", labels={}, env={}, host="h")
    run = split_plain_run([RecordEncoder().encode(Entry("stdout", 1, b"fast"))[:-1]])
    assert run is not None
    ((fast, _, _),) = b.plain_records(PlainRun(run))  # the fast path's template
    assert json.loads(fast)["kubernetes"]["pod"] == "web-7d9f"
    v = json.loads(b.value(Line("stdout", 1, "hello")))
    assert v["kubernetes"] == {"pod": "web-7d9f", "namespace": "shop", "container": "nginx"}
    assert v["compose"] == {"project": "demo", "service": "api"}
    assert v["swarm"] == {"stack": "prod"}  # only the keys whose label is set
    assert v["labels"] == {}  # not selected: the labels field stays as the log-opts say
    bare = ValueBuilder(
        ContainerInfo.from_json({"ContainerID": "c" * 64, "ContainerName": "/web"}),
        tag="t",
        labels={},
        env={},
        host="h",
    )
    v = json.loads(bare.value(Line("stdout", 1, "hello")))
    assert not {"kubernetes", "compose", "swarm"} & set(v)
