"""Shipping declared file logs: routing, the values of their records, the log id and
directory of their tasks, and what the main process keeps to resume them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pylog.config import (
    KafkaSettings,
    RotationPolicy,
    Settings,
    parse_declarations,
    parse_log_opts,
)
from pylog.kept_info import kept_info
from pylog.metrics import status_report
from pylog.models import ContainerInfo, EntryBatch
from pylog.shipper import ipc
from pylog.shipper.assemble import LineAssembler
from pylog.shipper.routing import file_route, resolve
from pylog.shipper.schema import Declared, Line, ValueBuilder
from pylog.shipper.worker import Worker
from pylog.snapshot import ShipperCounters, Snapshot
from pylog.store import LogFile, Store
from pylog.store.reader import Position
from pylog.store.records import RecordEncoder
from pylog.tag import TagTemplate

CID = "f" * 64
PLUGIN = KafkaSettings(brokers=("k1:9092",), topic=TagTemplate("plugin-topic"))


def ci(labels: dict[str, str], /, **config: str) -> ContainerInfo:
    return ContainerInfo.from_json(
        {
            "ContainerID": CID,
            "ContainerName": "/api",
            "ContainerImageName": "api:1",
            "ContainerLabels": labels,
            "ContainerEnv": [],
            "Config": dict(config),
        }
    )


def topic_of(info: ContainerInfo, settings: KafkaSettings = PLUGIN) -> str:
    declarations = parse_declarations(info.container_labels, info.env)
    route = resolve(info, parse_log_opts(info.config), settings, declarations)
    assert route is not None
    return route.topic


# -- routing -----------------------------------------------------------------------


def test_stdout_topic_precedence_label_then_declaration_then_log_opt_then_plugin() -> None:
    opt = {"kafka-topic": "opt-topic"}
    declared = {"pylog.logs.out": "stdout", "pylog.logs.out.target": "declared-topic"}
    assert topic_of(ci({})) == "plugin-topic"
    assert topic_of(ci({}, **opt)) == "opt-topic"
    assert topic_of(ci(declared, **opt)) == "declared-topic"
    assert topic_of(ci({**declared, "pylog.topic": "label-{{.Name}}"}, **opt)) == "label-api"
    # Without .target, a stdout declaration's topic is its name.
    assert topic_of(ci({"aliyun.logs.catalina": "stdout"}, **opt)) == "catalina"
    # A file declaration does not route stdout.
    assert topic_of(ci({"pylog.logs.access": "/var/log/a.log"}, **opt)) == "opt-topic"


def test_a_file_log_goes_to_its_target_with_the_containers_brokers_and_key() -> None:
    info = ci(
        {"pylog.logs.a": "/var/log/a.log", "pylog.logs.a.target": "topic-a", "pylog.topic": "t"},
        **{"kafka-brokers": "b1:1", "kafka-key": "{{.Name}}"},
    )
    declarations = parse_declarations(info.container_labels, info.env)
    route = resolve(info, parse_log_opts(info.config), PLUGIN, declarations)
    assert route is not None
    fr = file_route(route, declarations[0])
    assert (fr.brokers, fr.topic, fr.key) == (("b1:1",), "topic-a", b"api")
    b = parse_declarations({"aliyun.logs.b": "/var/log/b/*.log"}, {})[0]
    default = file_route(route, b)
    assert default.topic == "b"  # the name by default


def test_no_route_means_no_file_log_shipped_either() -> None:
    info = ci({"pylog.logs.a": "/var/log/a.log"}, **{"kafka": "false"})
    declarations = parse_declarations(info.container_labels, info.env)
    assert resolve(info, parse_log_opts(info.config), PLUGIN, declarations) is None


# -- values ------------------------------------------------------------------------


def builder(declared: Declared | None, **kw: bool) -> ValueBuilder:
    return ValueBuilder(ci({}), tag="t", labels={}, env={}, host="h", declared=declared, **kw)


def test_a_file_records_value_and_headers() -> None:
    d = parse_declarations(
        {"pylog.logs.a": "/var/log/*.log", "pylog.logs.a.tags": "env=prod, team=shop"}, {}
    )[0]
    b = builder(Declared(d.name, file=True, tags=d.tags))
    line = Line("stdout", 5, "hello", path="/var/log/x.log")
    v = json.loads(b.value(line))
    assert v["v"] == 1 and v["message"] == "hello"
    assert v["stream"] == "file"
    assert v["log"] == {"name": "a", "path": "/var/log/x.log"}
    assert v["tags"] == {"env": "prod", "team": "shop"}
    assert v["container"]["id"] == CID and "fields" not in v
    assert b.headers(line) == [
        ("container_name", b"api"),
        ("stream", b"file"),
        ("log", b"a"),
    ]


def test_format_json_parses_objects_only_and_regexp_takes_the_named_groups() -> None:
    as_json = builder(Declared("a", file=True, format="json"))
    v = json.loads(as_json.value(Line("stdout", 1, '{"level": "warn", "n": 1}', path="/p")))
    assert v["fields"] == {"level": "warn", "n": 1}
    assert "fields" not in json.loads(as_json.value(Line("stdout", 1, "[1]", path="/p")))
    assert "fields" not in json.loads(as_json.value(Line("stdout", 1, "{x", path="/p")))

    d = parse_declarations(
        {
            "pylog.logs.a": "/a.log",
            "pylog.logs.a.format": "regexp",
            "pylog.logs.a.format.pattern": r"(?P<level>[A-Z]+) (?P<msg>.*)|(?P<other>^-$)",
        },
        {},
    )[0]
    as_re = builder(Declared(d.name, file=True, format=d.format, pattern=d.pattern))
    v = json.loads(as_re.value(Line("stdout", 1, "at 12: WARN disk full", path="/a.log")))
    assert v["fields"] == {"level": "WARN", "msg": "disk full"}  # unmatched group left out
    assert "fields" not in json.loads(as_re.value(Line("stdout", 1, "quiet", path="/a.log")))
    # Only the first piece of an over-long line is parsed.
    assert "fields" not in json.loads(as_re.value(Line("stdout", 1, "W x", part=2, path="/a")))


def test_a_stdout_declaration_adds_tags_and_fields_but_keeps_stdout_records_as_they_were() -> None:
    plain = json.loads(builder(None).value(Line("stderr", 1, '{"a": 1}')))
    declared = builder(Declared("out", file=False, tags=(("k", "v"),), format="json"))
    v = json.loads(declared.value(Line("stderr", 1, '{"a": 1}')))
    assert v["stream"] == "stderr" and "log" not in v
    assert v["tags"] == {"k": "v"} and v["fields"] == {"a": 1}
    assert {k: x for k, x in v.items() if k not in ("tags", "fields")} == plain
    assert declared.headers(Line("stderr", 1, "x")) == [
        ("container_name", b"api"),
        ("stream", b"stderr"),
    ]


# -- lines of several files in one log -----------------------------------------------


def test_the_assembler_keeps_the_files_of_a_log_apart_and_gives_each_line_its_path() -> None:
    a, b = RecordEncoder({"path": "/var/log/a.log"}), RecordEncoder({"path": "/var/log/b.log"})

    def rec(enc: RecordEncoder, data: bytes, partial: bool = False) -> bytes:
        batch = EntryBatch(
            lines=[data], times=[1], sources="stdout", incomplete=frozenset({0} if partial else ())
        )
        return enc.encode_batch(batch)

    # A long line of a.log in two pieces, with a line of b.log read in between.
    records = [rec(a, b"first half ", partial=True), rec(b, b"b line"), rec(a, b"second half")]
    asm = LineAssembler(Position(0, 0), max_line=1 << 20, by_path=True)
    out = asm.feed(records, Position(0, sum(map(len, records))), 0.0)
    lines = [item for item, _ in out]
    assert all(isinstance(line, Line) for line in lines)
    got = [(line.message, line.path) for line in lines if isinstance(line, Line)]
    assert got == [("b line", "/var/log/b.log"), ("first half second half", "/var/log/a.log")]
    # The commit position covers everything only once a.log's line is whole.
    assert out[0][1] == Position(0, 0) and out[-1][1] == Position(0, sum(map(len, records)))


# -- the shipping process: a task per log id, the view in the log's directory ---------


def test_a_file_logs_task_has_its_log_id_and_reads_and_keeps_its_position_in_its_directory(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path / "state", kafka=KafkaSettings(brokers=("127.0.0.1:1",)))
    store = Store(settings.state_dir)
    labels = {"pylog.logs.a": "/var/log/a.log", "pylog.logs.a.target": "topic-a"}
    info = {"ContainerID": CID, "ContainerName": "/api", "ContainerLabels": labels, "Config": {}}
    policy = RotationPolicy(-1, 1, False)
    own = LogFile(store.directory(CID), policy)
    file_log = LogFile(store.file_log_directory(CID, "a"), policy)

    async def run() -> Worker:
        worker = Worker(ipc.Hello(settings, 0, 1), lambda _: None)
        worker.ship(ipc.Ship(CID, info, own.state(), Position(0, 0)))
        worker.ship(ipc.Ship(CID, info, file_log.state(), Position(0, 0), "a"))
        tasks = dict(worker.tasks)
        assert set(tasks) == {CID, f"{CID}/a"}  # one task per log id
        await asyncio.sleep(0.05)
        for task in tasks.values():
            task.halt()
            assert await task.join(5)
        return worker

    worker = asyncio.run(run())
    assert not worker.tasks  # halted: ended, and gone from the registry
    # Each task stored its position in its own log's directory.
    assert (store.directory(CID) / "kafka.position").exists()
    assert (store.file_log_directory(CID, "a") / "kafka.position").exists()


def test_a_file_log_task_is_routed_to_its_target(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", kafka=KafkaSettings(brokers=("127.0.0.1:1",)))
    store = Store(settings.state_dir)
    labels = {"pylog.logs.a": "/var/log/a.log", "pylog.logs.a.target": "topic-a"}
    info = {"ContainerID": CID, "ContainerName": "/api", "ContainerLabels": labels, "Config": {}}
    file_log = LogFile(store.file_log_directory(CID, "a"), RotationPolicy(-1, 1, False))

    async def run() -> tuple[str, str, Path]:
        worker = Worker(ipc.Hello(settings, 0, 1), lambda _: None)
        worker.ship(ipc.Ship(CID, info, file_log.state(), Position(0, 0), "a"))
        task = worker.tasks[ipc.log_id(CID, "a")]
        task.halt()
        await task.join(5)
        return task.route.topic, task.log_name, task.view.directory

    topic, name, directory = asyncio.run(run())
    assert (topic, name, directory) == ("topic-a", "a", store.file_log_directory(CID, "a"))


def test_log_ids() -> None:
    assert ipc.log_id(CID) == CID  # the container's own log: nothing changed
    assert ipc.log_id(CID, "access") == f"{CID}/access"
    assert ipc.split_log_id(f"{CID}/access") == (CID, "access")
    assert ipc.split_log_id(CID) == (CID, "")
    assert ipc.Finished(CID, "a").log_id == f"{CID}/a"
    assert ipc.Progress(CID, Position(0, 0), 0).log_id == CID


# -- the main process: what it keeps and shows ----------------------------------------


def test_kept_info_keeps_the_env_that_declares_logs_and_drops_the_rest() -> None:
    env = ["SECRET=x", "aliyun_logs_b=/var/log/b/*.log", "pylog_logs_a_target=t", "REGION=eu"]
    kept = kept_info({"ContainerID": CID, "Config": {}, "ContainerEnv": env})
    assert sorted(kept["ContainerEnv"]) == [
        "aliyun_logs_b=/var/log/b/*.log",
        "pylog_logs_a_target=t",
    ]


def test_status_shows_a_live_containers_file_logs_apart_and_names_a_backlogs_log() -> None:
    def counters(cid: str, name: str) -> ShipperCounters:
        return ShipperCounters(cid, "old", "t-" + (name or "out"), (), 1, 0, 0, 0, 7, 0, 0, name)

    snap = Snapshot(shippers=[counters("a" * 64, ""), counters("b" * 64, "access")])
    report = status_report(snap)
    assert [(b["id"][:1], b["log"], b["topic"]) for b in report["backlogs"]] == [
        ("a", "stdout", "t-out"),
        ("b", "access", "t-access"),
    ]
