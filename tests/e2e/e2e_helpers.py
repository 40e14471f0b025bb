"""Helpers for the end-to-end tests: run containers, read `docker logs`, compare.

Environment: DOCKER (client, default `docker`), PYLOG_BUSYBOX_IMAGE.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "docker")
IMAGE = os.environ.get("PYLOG_BUSYBOX_IMAGE", "pylog-test/busybox:latest")
PLUGIN = "pylog"
LABEL = "pylog-e2e"

# `docker logs --timestamps` prefix: RFC3339NanoFixed in UTC, then one space.
TS_RE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@dataclass(frozen=True)
class Logs:
    """What `docker logs` wrote: stdout and stderr kept apart, as bytes."""

    stdout: bytes
    stderr: bytes


@dataclass
class Follower:
    """A running `docker logs -f`; every chunk read is kept with its arrival time."""

    proc: subprocess.Popen[bytes]
    started: float
    chunks: list[tuple[float, str, bytes]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def wait(self, timeout: float) -> Logs:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"`docker logs -f` did not end within {timeout} s") from None
        finally:
            for t in self.threads:
                t.join(timeout=10)
        return Logs(self.data("stdout"), self.data("stderr"))

    def data(self, stream: str) -> bytes:
        return b"".join(c for _, s, c in list(self.chunks) if s == stream)

    def stdout_lines_with_times(self) -> list[tuple[float, bytes]]:
        """(arrival time relative to start, line) for each complete stdout line."""
        out: list[tuple[float, bytes]] = []
        buf = b""
        for t, s, c in list(self.chunks):
            if s != "stdout":
                continue
            buf += c
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.append((t - self.started, line))
        return out


def docker_cli(
    args: Sequence[str], timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc


class Docker:
    """Thin wrapper over the docker CLI for the tests."""

    image = IMAGE

    def run_args(self, driver: str, cmd: str, log_opts: dict[str, str] | None = None) -> list[str]:
        args = ["run", "-d", "--network", "none", "--label", f"{LABEL}=1"]
        args += ["--log-driver", driver]
        for k, v in (log_opts or {}).items():
            args += ["--log-opt", f"{k}={v}"]
        return [*args, IMAGE, "sh", "-c", cmd]

    def run(self, driver: str, cmd: str, log_opts: dict[str, str] | None = None) -> str:
        """Start a detached container running `sh -c cmd`; returns its id."""
        return docker_cli(self.run_args(driver, cmd, log_opts)).stdout.decode().strip()

    def run_fails(
        self, driver: str, cmd: str, log_opts: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return docker_cli(self.run_args(driver, cmd, log_opts), check=False)

    def wait(self, cid: str, timeout: float = 180) -> int:
        return int(docker_cli(["wait", cid], timeout=timeout).stdout.decode().strip())

    def run_and_wait(
        self, driver: str, cmd: str, log_opts: dict[str, str] | None = None, timeout: float = 180
    ) -> str:
        cid = self.run(driver, cmd, log_opts)
        code = self.wait(cid, timeout)
        assert code == 0, f"container {cid[:12]} ({driver}) exited {code}"
        return cid

    def run_pair(
        self,
        cmd: str,
        log_opts: dict[str, str] | None = None,
        drivers: tuple[str, str] = ("json-file", PLUGIN),
        timeout: float = 180,
    ) -> tuple[str, str]:
        """Run the same command under two drivers at once; returns (ref id, pylog id)."""
        with ThreadPoolExecutor(2) as ex:
            futs = [ex.submit(self.run_and_wait, d, cmd, log_opts, timeout) for d in drivers]
            a, b = (f.result() for f in futs)
        return a, b

    def logs(self, cid: str, *flags: str, timeout: float = 120) -> Logs:
        proc = docker_cli(["logs", *flags, cid], timeout=timeout)
        return Logs(proc.stdout, proc.stderr)

    def follow(self, cid: str, *flags: str) -> Follower:
        proc = subprocess.Popen(
            [DOCKER, "logs", "-f", *flags, cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        f = Follower(proc, time.monotonic())

        def pump(stream: str) -> None:
            pipe = proc.stdout if stream == "stdout" else proc.stderr
            assert pipe is not None
            while chunk := os.read(pipe.fileno(), 65536):
                f.chunks.append((time.monotonic(), stream, chunk))

        for s in ("stdout", "stderr"):
            t = threading.Thread(target=pump, args=(s,), daemon=True)
            t.start()
            f.threads.append(t)
        return f

    def restart(self, cid: str) -> None:
        docker_cli(["restart", cid])

    def inspect(self, cid: str, fmt: str) -> str:
        return docker_cli(["inspect", "--format", fmt, cid]).stdout.decode().strip()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return docker_cli(args, timeout=timeout)


def _describe_diff(a: bytes, b: bytes) -> str:
    if a == b:
        return "equal"
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    lo = max(0, i - 80)
    nl = b"\n"
    return (
        f"lengths {len(a)} vs {len(b)}, {a.count(nl)} vs {b.count(nl)} newlines; "
        f"first difference at byte {i} (line {a[:i].count(nl) + 1}):\n"
        f"  json-file: {a[lo : i + 80]!r}\n  pylog:     {b[lo : i + 80]!r}"
    )


def assert_same_logs(ref: Logs, got: Logs, what: str) -> None:
    """Byte-for-byte equality of stdout and of stderr, with a readable message."""
    __tracebackhide__ = True
    problems = []
    for stream in ("stdout", "stderr"):
        a, b = getattr(ref, stream), getattr(got, stream)
        if a != b:
            problems.append(f"{stream}: {_describe_diff(a, b)}")
    assert not problems, f"{what}: pylog differs from json-file\n" + "\n".join(problems)


def split_timestamps(data: bytes) -> tuple[list[bytes], bytes]:
    """All `--timestamps` prefixes in data, and data with each replaced by b'<TS> '."""
    stamps = TS_RE.findall(data)
    return stamps, TS_RE.sub(b"<TS> ", data)


def stamped_lines(data: bytes) -> list[tuple[str, bytes]]:
    """Lines of `docker logs -t` output as (timestamp, text) for short lines."""
    out = []
    for line in data.splitlines():
        m = TS_RE.match(line)
        assert m, f"line without timestamp: {line[:100]!r}"
        out.append((m.group(0)[:-1].decode(), line[m.end() :]))
    return out


def _plugin_tree(plugin: str = PLUGIN) -> dict[int, int]:
    """pid -> parent pid of every process in the plugin's cgroup (dockerd runs a plugin
    in a cgroup named after its ID), so another pylog process on the host (a second
    install, a test server) is never taken for one of them."""
    plugin_id = docker_cli(["plugin", "inspect", "--format", "{{.Id}}", plugin]).stdout
    suffix = "/" + plugin_id.decode().strip()
    ours: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text().splitlines()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if any(line.endswith(suffix) for line in cgroups):
            ours[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return ours


def plugin_processes(plugin: str = PLUGIN) -> tuple[int, int]:
    """(gunicorn master, worker) pids of the running plugin (its shipping processes,
    children of the worker, are :func:`shipping_processes`)."""
    ours = _plugin_tree(plugin)
    masters = [p for p, pp in ours.items() if pp not in ours]
    assert len(masters) == 1, f"plugin processes: {ours}"
    workers = [p for p, pp in ours.items() if pp == masters[0]]
    assert len(workers) == 1, f"plugin processes: {ours}"
    return masters[0], workers[0]


def shipping_processes(plugin: str = PLUGIN) -> list[int]:
    """pids of the plugin's shipping processes (children of its gunicorn worker)."""
    ours = _plugin_tree(plugin)
    _, worker = plugin_processes(plugin)
    return sorted(p for p, pp in ours.items() if pp == worker)
