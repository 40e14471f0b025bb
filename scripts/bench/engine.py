"""The Docker engine side: groups of containers started together, the pylog
plugin's processes (CPU, RSS), its store, and its start-up.

Every container of a group waits for a file in a bind-mounted directory before
it writes, so all start writing at the same moment (``go``) and the container
start-up (about a second each on this engine) is not part of the wall time.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DOCKER = os.environ.get("DOCKER", "docker")
IMAGE = os.environ.get("PYLOG_BUSYBOX_IMAGE", "pylog-test/busybox:latest")
PLUGIN = os.environ.get("PYLOG_PLUGIN", "pylog")
STATE_DIR = Path(os.environ.get("PYLOG_STATE_DIR_HOST", "/var/lib/pylog"))
DOCKERD_LOG = Path(os.environ.get("PYLOG_DOCKERD_LOG", "/var/log/pylog-dockerd.log"))
LABEL = "pylog-bench=1"


class BenchError(RuntimeError):
    pass


def docker(*args: str, check: bool = True, timeout: float = 900) -> str:
    proc = subprocess.run([DOCKER, *args], capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise BenchError(f"docker {' '.join(args[:3])} failed: {err}")
    return proc.stdout.decode().strip()


def line_of(size: int) -> str:
    """A line of ``size`` bytes with its newline."""
    return "pylog-bench " + "x" * (size - 13)


def write_cmd(lines: int, size: int) -> str:
    return f"yes '{line_of(size)}' | head -n {lines}"


@dataclass
class Run:
    cids: list[str]
    wall_s: float
    go_mono: float  # time.monotonic() at go
    go_epoch: float  # time.time() at go


def start_containers(driver: str, n: int, script: str, opts: Sequence[str],
                     flagdir: Path) -> list[str]:  # fmt: skip
    def one(_: int) -> str:
        return docker(
            "run", "-d", "--network", "none", "--label", LABEL, "-v", f"{flagdir}:/go:ro",
            "--log-driver", driver, *opts, IMAGE, "sh", "-c", script,
        )  # fmt: skip

    with ThreadPoolExecutor(min(n, 8)) as ex:
        return list(ex.map(one, range(n)))


def remove(cids: Sequence[str]) -> None:
    for i in range(0, len(cids), 50):
        docker("rm", "-f", *cids[i : i + 50], check=False)


def run_group(driver: str, n: int, cmd: str, opts: Sequence[str] = ()) -> Run:
    """Start ``n`` containers running ``cmd`` once go is given; wall time from go
    until dockerd reports the last exit. dockerd reports an exit only after its log
    copier has handed every line to the driver (the file for json-file and local,
    the FIFO for a plugin). The caller removes the containers."""
    flagdir = Path(tempfile.mkdtemp(prefix="pylog-bench-"))
    try:
        script = f"while [ ! -e /go/go ]; do usleep 20000; done; {cmd}"
        cids = start_containers(driver, n, script, opts, flagdir)
        waiter = subprocess.Popen([DOCKER, "wait", *cids], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(0.3)  # the client has asked dockerd to wait
        go_epoch, go_mono = time.time(), time.monotonic()
        (flagdir / "go").touch()
        out, err = waiter.communicate(timeout=1800)
        wall = time.monotonic() - go_mono
        codes = out.decode().split()
        if waiter.returncode != 0 or any(c != "0" for c in codes):
            remove(cids)
            raise BenchError(f"{driver}: containers exited {codes} {err.decode()[-300:]}")
        return Run(cids, wall, go_mono, go_epoch)
    finally:
        shutil.rmtree(flagdir, ignore_errors=True)


def time_tail(cid: str, tries: int = 3) -> float:
    """Median time of ``docker logs --tail 100``, output discarded."""
    times = []
    for _ in range(tries):
        t0 = time.monotonic()
        subprocess.run([DOCKER, "logs", "--tail", "100", cid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)  # fmt: skip
        times.append(time.monotonic() - t0)
    return sorted(times)[len(times) // 2]


# ------------------------------------------------------------------ pylog's store
def wait_stored(cids: Sequence[str], timeout: float = 600) -> float:
    """time.monotonic() when pylog has stored every line of these (exited)
    containers: it forgets a FIFO's attachment record (``fifos/*.json``) only after
    the FIFO reached EOF and everything read from it was written."""
    deadline = time.monotonic() + timeout
    fifos = STATE_DIR / "fifos"
    wanted = [c.encode() for c in cids]
    while time.monotonic() < deadline:
        busy = False
        for p in fifos.glob("*.json"):
            try:
                data = p.read_bytes()
            except OSError:
                continue
            if any(c in data for c in wanted):
                busy = True
                break
        if not busy:
            return time.monotonic()
        time.sleep(0.01)
    raise BenchError(f"pylog did not finish storing within {timeout} s")


# ------------------------------------------------------------------ pylog's processes
def pylog_pids() -> list[int]:
    """The plugin's processes (gunicorn's arbiter and its worker)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pylog.server" in cmdline:
            pids.append(int(name))
    return sorted(pids)


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes so far (their threads included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pids: Sequence[int]) -> None:
    """Reset VmHWM, the kernel's peak RSS of each process (clear_refs 5)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pids: Sequence[int]) -> float:
    """Sum of the processes' peak RSS since the last reset. Pages the worker shares
    with the arbiter (forked from it) count twice, so this errs high."""
    return sum(_status_kb(p, "VmHWM") for p in pids) / 1024


def rss_mb(pids: Sequence[int]) -> float:
    return sum(_status_kb(p, "VmRSS") for p in pids) / 1024


# ------------------------------------------------------------------ plugin start-up
@dataclass
class Startup:
    enable_s: float  # `docker plugin enable` wall time
    listen_s: float  # process start -> gunicorn bound the socket
    ready_s: float  # process start -> pylog's service started in the worker


_TIME = re.compile(r'^time="([^"]+)"')


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    head, _, frac = rfc3339.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def _process_start_epoch(pid: int) -> float:
    """A process's start time as epoch seconds (10 ms resolution): its start in
    clock ticks since boot, moved onto the wall clock."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    offset = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return offset + ticks / os.sysconf("SC_CLK_TCK")


def restart_plugin() -> Startup:
    """Disable and enable the plugin; read its start-up from dockerd's log, where
    dockerd timestamps every line of the plugin's stderr as it reads it."""
    docker("plugin", "disable", PLUGIN)
    offset = DOCKERD_LOG.stat().st_size if DOCKERD_LOG.exists() else 0
    t0 = time.monotonic()
    docker("plugin", "enable", "--timeout", "0", PLUGIN)
    enable = time.monotonic() - t0
    pids = pylog_pids()
    if not pids:
        raise BenchError("no pylog process after enable")
    started = min(_process_start_epoch(p) for p in pids)
    listen = ready = float("nan")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ready != ready:  # NaN != NaN
        with DOCKERD_LOG.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            m = _TIME.match(line)
            if not m:
                continue
            if listen != listen and "Listening at: unix:" in line:
                listen = _epoch(m.group(1)) - started
            if "pylog started" in line:
                ready = _epoch(m.group(1)) - started
        time.sleep(0.1)
    return Startup(enable, listen, ready)
