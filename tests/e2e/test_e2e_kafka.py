"""pylog shipping to a real Kafka broker from real containers, through the Docker engine.

The plugin is reconfigured for this module (``docker plugin disable``, ``set
KAFKA_BROKERS=...``, ``enable``) and put back to local-only afterwards. The
broker is the test broker of scripts/kafka, on 127.0.0.1 (the plugin uses the
host's network; the containers themselves run with ``--network none``).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka.broker import KafkaBroker

from ..kafka.shipping_helpers import consume, dedupe_in_order
from .e2e_helpers import (
    IMAGE,
    LABEL,
    PLUGIN,
    Docker,
    docker_cli,
    plugin_processes,
    shipping_processes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

OUTAGE = float(os.environ.get("PYLOG_KAFKA_OUTAGE_SECONDS", "60"))


def set_plugin(*env: str) -> None:
    docker_cli(["plugin", "disable", "-f", PLUGIN], check=False, timeout=120)
    docker_cli(["plugin", "set", PLUGIN, *env])
    docker_cli(["plugin", "enable", "--timeout", "0", PLUGIN], timeout=120)


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with KafkaBroker() as b:
        yield b


@pytest.fixture(scope="module")
def kafka_plugin(docker: Docker, broker: KafkaBroker) -> Iterator[KafkaBroker]:
    set_plugin(f"KAFKA_BROKERS={broker.bootstrap}", "KAFKA_LINGER_MS=5")
    try:
        yield broker
    finally:
        set_plugin("KAFKA_BROKERS=", "KAFKA_LINGER_MS=20")


def topic(prefix: str) -> str:
    return f"e2e-{prefix}-{uuid.uuid4().hex[:8]}"


def run(cmd: str, *args: str) -> str:
    proc = docker_cli(
        ["run", "-d", "--network", "none", "--label", f"{LABEL}=1", "--log-driver", PLUGIN,
         *args, IMAGE, "sh", "-c", cmd]
    )  # fmt: skip
    return proc.stdout.decode().strip()


def wait(cid: str, timeout: float = 300) -> int:
    return int(docker_cli(["wait", cid], timeout=timeout).stdout.decode().strip())


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def test_every_line_in_order_with_fields(kafka_plugin: KafkaBroker) -> None:
    t = topic("lines")
    n = 5000
    name = f"pylog-e2e-{uuid.uuid4().hex[:8]}"
    cmd = (
        f"seq 1 {n}; head -c 40000 /dev/zero | tr '\\0' 'x'; echo; "
        "echo 'to stderr' >&2; printf 'no newline'"
    )
    cid = run(
        cmd,
        "--name", name,
        "--label", "app=shop",
        "--env", "REGION=eu",
        "--env", "SECRET=hunter2",
        "--log-opt", f"kafka-topic={t}",
        "--log-opt", "labels=app",
        "--log-opt", "env=REGION",
    )  # fmt: skip
    assert wait(cid) == 0
    got = values(consume(kafka_plugin.bootstrap, t, n + 3, timeout=120))
    stdout = [v["message"] for v in got if v["stream"] == "stdout"]
    assert stdout == [str(i) for i in range(1, n + 1)] + ["x" * 40000, "no newline"]
    assert [v["message"] for v in got if v["stream"] == "stderr"] == ["to stderr"]
    image_id = docker_cli(["inspect", "--format", "{{.Image}}", cid]).stdout.decode().strip()
    for v in got:
        assert v["v"] == 1
        assert v["container"] == {"id": cid, "name": name, "image": IMAGE, "image_id": image_id}
        assert v["labels"] == {"app": "shop"} and v["env"] == {"REGION": "eu"}
        assert v["tag"] == cid[:12] and v["host"]
    times = [v["time"] for v in got if v["stream"] == "stdout"]
    assert times == sorted(times)
    assert "hunter2" not in json.dumps(got)
    # docker logs still serves the same lines from the local log
    logs = docker_cli(["logs", cid]).stdout
    assert logs.splitlines()[:n] == [str(i).encode() for i in range(1, n + 1)]


def test_label_and_template_routing(kafka_plugin: KafkaBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    a = run(
        "seq 1 100",
        "--label", f"pylog.topic=lbl-{{{{index .ContainerLabels \"team\"}}}}-{suffix}",
        "--label", "team=red",
        "--log-opt", f"kafka-topic=ignored-{suffix}",
    )  # fmt: skip
    name = f"tpl-{suffix}"
    b = run("seq 101 200", "--name", name, "--log-opt", "kafka-topic=app-{{.Name}}")
    assert wait(a) == 0 and wait(b) == 0
    got_a = values(consume(kafka_plugin.bootstrap, f"lbl-red-{suffix}", 100))
    got_b = values(consume(kafka_plugin.bootstrap, f"app-{name}", 100))
    assert [v["message"] for v in got_a] == [str(i) for i in range(1, 101)]
    assert [v["message"] for v in got_b] == [str(i) for i in range(101, 201)]
    assert {v["container"]["id"] for v in got_a} == {a}


def test_broker_outage_never_stalls_containers(kafka_plugin: KafkaBroker) -> None:
    """The broker is stopped for a minute while a container logs: the container runs at
    its own pace, docker logs works, and every line reaches Kafka once it is back."""
    t = topic("outage")
    ticks = int((OUTAGE + 20) / 0.1)
    per_tick = 20
    cmd = (
        f"i=0; while [ $i -lt {ticks} ]; do "
        f'j=0; while [ $j -lt {per_tick} ]; do echo "$i.$j"; j=$((j+1)); done; '
        "i=$((i+1)); usleep 100000; done"
    )
    started = time.monotonic()
    cid = run(cmd, "--log-opt", f"kafka-topic={t}")
    time.sleep(5)
    kafka_plugin.stop()
    try:
        time.sleep(OUTAGE)
        logs = docker_cli(["logs", "--tail", "1", cid]).stdout
        assert logs.strip(), "docker logs served nothing during the outage"
    finally:
        kafka_plugin.start()
    assert wait(cid) == 0
    wall = time.monotonic() - started
    expected = [f"{i}.{j}" for i in range(ticks) for j in range(per_tick)]
    got = [
        v["message"] for v in values(consume(kafka_plugin.bootstrap, t, len(expected), timeout=240))
    ]
    assert dedupe_in_order(got) == expected
    # usleep alone takes ticks * 0.1 s; a container blocked on logging would take far longer.
    assert wall < ticks * 0.1 * 1.5 + 15, f"container took {wall:.0f} s"


def test_docker_logs_right_after_exit_doubles_nothing(kafka_plugin: KafkaBroker) -> None:
    """`docker logs` of a container that has just exited, while its lines are still on
    their way to Kafka: dockerd starts a fresh logger (StartLogging on a new FIFO) to read
    them. Every line still reaches the topic exactly once."""
    t = topic("reread")
    n = 50_000
    cids = [run(f"seq 1 {n} | sed 's/^/{k}./'", "--log-opt", f"kafka-topic={t}") for k in range(3)]
    for k, cid in enumerate(cids):
        assert wait(cid) == 0
        logs = docker_cli(["logs", "--tail", "5", cid]).stdout
        assert logs.splitlines()[-1] == f"{k}.{n}".encode()
    got = [
        v["message"]
        for v in values(consume(kafka_plugin.bootstrap, t, 3 * n, timeout=240, settle=5))
    ]
    doubled = len(got) - len(set(got))
    assert doubled == 0, f"{doubled} lines reached Kafka twice"
    for k in range(3):
        assert [m for m in got if m.startswith(f"{k}.")] == [f"{k}.{i}" for i in range(1, n + 1)]


@pytest.mark.parametrize("victim", ["shipping process", "worker"])
def test_a_killed_process_loses_no_line_and_never_holds_the_container(
    kafka_plugin: KafkaBroker, victim: str
) -> None:
    """SIGKILL the shipping process (or the worker, which takes its shipping process
    down with it) while a container logs: the container runs at its own pace, the
    process comes back, and every line reaches Kafka, in order (repeats only of what
    was in flight)."""
    t = topic("kill")
    ticks, per_tick = 100, 500  # 50,000 lines over about 10 s
    cmd = (
        f"i=0; while [ $i -lt {ticks} ]; do "
        f"seq $((i*{per_tick}+1)) $((i*{per_tick}+{per_tick})); "
        "i=$((i+1)); usleep 100000; done"
    )
    started = time.monotonic()
    cid = run(cmd, "--log-opt", f"kafka-topic={t}")
    time.sleep(3)
    (shipping,) = shipping_processes()
    _, worker = plugin_processes()
    os.kill(shipping if victim == "shipping process" else worker, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            now = shipping_processes()
        except AssertionError:  # the worker is being restarted
            now = []
        if now and now[0] != shipping:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no new shipping process within 60 s")
    assert wait(cid) == 0
    wall = time.monotonic() - started
    expected = [str(i) for i in range(1, ticks * per_tick + 1)]
    got = [
        v["message"]
        for v in values(consume(kafka_plugin.bootstrap, t, len(expected), timeout=240, settle=3))
    ]
    assert dedupe_in_order(got) == expected
    assert wall < ticks * 0.1 * 1.5 + 20, f"container took {wall:.0f} s"


def test_declared_file_logs_each_to_its_own_topic(kafka_plugin: KafkaBroker) -> None:
    """Two declared files (pylog's label with a target, log-pilot's ``aliyun.`` label
    with its default target, the name) and stdout: three topics, every line in order
    per file, each record naming its log and the file inside the container."""
    suffix = uuid.uuid4().hex[:8]
    t_out, t_a, name_b = topic("out"), topic("file-a"), f"b{suffix}"
    n = 2000
    cmd = (
        "sleep 0.5; mkdir -p /var/log/b; "
        f'for i in $(seq 1 {n}); do echo "a $i" >> /var/log/a.log; '
        'echo "b1 $i" >> /var/log/b/1.log; echo "b2 $i" >> /var/log/b/2.log; '
        'echo "out $i"; done'
    )
    cid = run(
        cmd,
        "--label", "pylog.logs.a=/var/log/a.log",
        "--label", f"pylog.logs.a.target={t_a}",
        "--label", f"aliyun.logs.{name_b}=/var/log/b/*.log",
        "--label", f"aliyun.logs.{name_b}.tags=env=e2e",
        "--log-opt", f"kafka-topic={t_out}",
    )  # fmt: skip
    assert wait(cid) == 0
    out = values(consume(kafka_plugin.bootstrap, t_out, n, timeout=120))
    a = values(consume(kafka_plugin.bootstrap, t_a, n, timeout=120))
    b = values(consume(kafka_plugin.bootstrap, name_b, 2 * n, timeout=120))
    assert dedupe_in_order([v["message"] for v in out]) == [f"out {i}" for i in range(1, n + 1)]
    assert {v["stream"] for v in out} == {"stdout"} and not any("log" in v for v in out)
    assert dedupe_in_order([v["message"] for v in a]) == [f"a {i}" for i in range(1, n + 1)]
    assert {json.dumps(v["log"]) for v in a} == {
        json.dumps({"name": "a", "path": "/var/log/a.log"})
    }
    for path, prefix in (("/var/log/b/1.log", "b1"), ("/var/log/b/2.log", "b2")):
        of_file = [v for v in b if v["log"]["path"] == path]
        assert dedupe_in_order([v["message"] for v in of_file]) == [
            f"{prefix} {i}" for i in range(1, n + 1)
        ]
    for v in a + b:
        assert v["stream"] == "file" and v["container"]["id"] == cid
    assert {v["log"]["name"] for v in b} == {name_b}
    assert {json.dumps(v["tags"]) for v in b} == {json.dumps({"env": "e2e"})}
    docker_cli(["rm", cid])
