"""The `pylog` command: status and metrics from a real plugin process, logs from a real store."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pylog.config import RotationPolicy
from pylog.models import Entry
from pylog.store import Store
from pylog.store.records import RecordEncoder

from ..helpers import Fifo, encode_entries, wait_for
from .conftest import server_env
from .test_server import http

CID = "0123456789ab" + "c" * 52


def pylog(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pylog.cli", *args], capture_output=True, timeout=60
    )


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    """The real server process; yields its socket."""
    sock = tmp_path / "run" / "pylog.sock"
    env = server_env(tmp_path, sock, threads=4)
    proc = subprocess.Popen([sys.executable, "-m", "pylog.server"], env=env)
    deadline = time.monotonic() + 20
    while True:
        try:
            http(sock, "LogDriver.Capabilities")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.05)
    yield sock
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def start_container(sock: Path, fifo: Fifo, lines: int) -> None:
    body = {"File": str(fifo.path), "Info": {"ContainerID": CID, "ContainerName": "/shop-web"}}
    assert http(sock, "LogDriver.StartLogging", json.dumps(body).encode()) == (
        200,
        b'{"Err":""}\n',
    )
    fifo.write(encode_entries([Entry("stdout", i + 1, f"l{i}".encode()) for i in range(lines)]))


def test_status_and_metrics_of_a_running_plugin(plugin: Path, tmp_path: Path) -> None:
    fifo = Fifo(tmp_path / "fifo1")
    try:
        start_container(plugin, fifo, 250)

        def stored() -> float:
            res = pylog("--socket", str(plugin), "metrics")
            assert res.returncode == 0, res.stderr
            for fam in text_string_to_metric_families(res.stdout.decode()):
                for s in fam.samples:
                    if s.name == "pylog_lines_stored_total":
                        assert s.labels == {"container_id": CID[:12], "container_name": "shop-web"}
                        return s.value
            return 0

        wait_for(lambda: stored() == 250, timeout=20)

        res = pylog("--socket", str(plugin), "status")
        assert res.returncode == 0, res.stderr
        out = res.stdout.decode()
        assert "containers being logged: 1" in out
        (row,) = [line for line in out.splitlines() if CID[:12] in line]
        assert row.split()[:3] == [CID[:12], "shop-web", "250"]
        assert "kafka: not configured" in out
    finally:
        fifo.close()


def test_plugin_not_running_is_one_line_and_exit_1(tmp_path: Path) -> None:
    res = pylog("--socket", str(tmp_path / "nothing.sock"), "status")
    assert res.returncode == 1
    assert res.stdout == b""
    assert res.stderr.decode().count("\n") == 1
    assert "plugin is not running: nothing answers on" in res.stderr.decode()

    # No dockerd to ask and no plugin socket on the host.
    empty = tmp_path / "plugins"
    empty.mkdir()
    args = ["--docker", str(tmp_path / "no-docker"), "--plugins-dir", str(empty), "metrics"]
    res = pylog(*args)
    assert res.returncode == 1
    assert (
        res.stderr.decode()
        == f"pylog: plugin 'pylog' is not running: no pylog.sock under {empty}\n"
    )


def test_socket_is_found_under_the_plugins_dir_without_dockerd(
    plugin: Path, tmp_path: Path
) -> None:
    # As short as /run/docker/plugins: a unix socket's path holds at most 107 bytes.
    plugins = Path(tempfile.mkdtemp(prefix="pl"))
    (plugins / ("f" * 64)).mkdir()
    os.symlink(plugin, plugins / ("f" * 64) / "pylog.sock")
    args = ["--docker", str(tmp_path / "no-docker"), "--plugins-dir", str(plugins), "status"]
    res = pylog(*args)
    shutil.rmtree(plugins)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"pylog 0.1.0: ok\ncontainers being logged: 0\n")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A store as the plugin leaves it: rotated (gzipped) files, stdout and stderr."""
    root = tmp_path / "state"
    store = Store(root)
    store.setup()
    logfile = store.acquire(CID, RotationPolicy(max_size=2000, max_files=100, compress=True))
    enc = RecordEncoder()
    for i in range(300):
        stream = "stderr" if i % 3 == 0 else "stdout"
        logfile.append(enc.encode(Entry(stream, 1_000 + i, f"line {i}".encode())))
    logfile.close()
    assert any(p.suffix == ".gz" for p in store.directory(CID).iterdir())
    other = store.acquire(
        "0123" + "d" * 60, RotationPolicy(max_size=-1, max_files=1, compress=False)
    )
    other.close()
    return root


def test_logs_reads_the_store_like_docker_logs(state: Path) -> None:
    res = pylog("logs", "--state-dir", str(state), CID)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [f"line {i}" for i in range(300) if i % 3]
    assert res.stderr.decode().splitlines() == [f"line {i}" for i in range(300) if i % 3 == 0]

    res = pylog("logs", "--state-dir", str(state), "--tail", "4", CID[:8])
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"line 296\nline 298\nline 299\n"
    assert res.stderr == b"line 297\n"


def test_logs_of_a_declared_log_file(state: Path) -> None:
    store = Store(state)
    logfile = store.acquire_file_log(
        CID, "access", RotationPolicy(max_size=300, max_files=10, compress=False)
    )
    enc = RecordEncoder({"path": "/var/log/access.log"})
    for i in range(20):
        logfile.append(enc.encode(Entry("stdout", 5_000 + i, f"GET /{i}".encode())))
    store.release_file_log(CID, "access")
    res = pylog("logs", "--state-dir", str(state), "--log", "access", CID[:8])
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [f"GET /{i}" for i in range(20)]
    res = pylog("logs", "--state-dir", str(state), "--log", "access", "-n", "2", CID)
    assert res.stdout == b"GET /18\nGET /19\n"
    res = pylog("logs", "--state-dir", str(state), "--log", "error", CID)
    assert res.returncode == 1
    assert res.stderr.decode() == (
        f"pylog: container {CID[:12]} has no log file 'error' (stored: access)\n"
    )
    res = pylog("logs", "--state-dir", str(state), "--log", "../json.log", CID)
    assert res.returncode == 1 and res.stdout == b""


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("0123", "container ID prefix '0123' is ambiguous (2 containers)"),
        ("ffff", "no logs of container 'ffff' under {state}"),
        ("../../etc", "no logs of container '../../etc' under {state}"),
    ],
)
def test_logs_errors_are_one_line(state: Path, ref: str, message: str) -> None:
    res = pylog("logs", "--state-dir", str(state), ref)
    assert res.returncode == 1
    assert res.stdout == b""
    assert res.stderr.decode().startswith("pylog: " + message.format(state=state))
    assert res.stderr.decode().count("\n") == 1


def test_logs_without_a_store(tmp_path: Path) -> None:
    res = pylog("logs", "--state-dir", str(tmp_path / "none"), CID)
    assert res.returncode == 1
    assert "no pylog logs under" in res.stderr.decode()


def test_logs_of_a_truncated_gzip_prints_what_can_be_read(state: Path) -> None:
    """A rotated file cut short (a crash or a full disk while compressing): the lines
    before the cut and every later file are printed, the damage is named in one line."""
    directory = state / "containers" / CID
    oldest = min(
        (p for p in directory.iterdir() if p.name.endswith(".gz")),
        key=lambda p: int(p.name.split(".")[2]),
    )
    whole = gzip.decompress(oldest.read_bytes())
    data = oldest.read_bytes()
    oldest.write_bytes(data[: len(data) // 2])
    res = pylog("logs", "--state-dir", str(state), CID)
    assert res.returncode == 0, res.stderr
    assert b"Traceback" not in res.stderr
    note = res.stderr.decode().splitlines()[-1]
    assert note.startswith("pylog: 1 damaged log file(s)")
    printed = res.stdout.decode().splitlines()
    expected = [f"line {i}" for i in range(300) if i % 3]
    # The last line of the log is there; what was lost lies within the cut file.
    assert printed[-1] == expected[-1]
    lost = set(expected) - set(printed)
    assert lost and all(f'"log":"{m}\\n"'.encode() in whole for m in lost)
