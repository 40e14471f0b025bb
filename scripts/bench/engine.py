"""The Docker engine side: groups of containers started together, the pylog
plugin's processes (CPU, RSS), its store, and its start-up.

Every container of a group waits for a file in a bind-mounted directory before
it writes, so all start writing at the same moment (``go``) and the container
start-up (about a second each on this engine) is not part of the wall time.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .stored import LineCounter

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


_removed: list[str] = []


def remove(cids: Sequence[str]) -> None:
    for i in range(0, len(cids), 50):
        docker("rm", "-f", *cids[i : i + 50], check=False)
    _removed.extend(cids)


def forget_logs() -> None:
    """Delete pylog's logs of the removed bench containers: dockerd never tells a
    plugin that a container is gone, and they would otherwise stay for
    PYLOG_RETENTION (and eat the disk). Done at the end of the run, when no
    shipper is still writing a position into them."""
    for cid in _removed:
        shutil.rmtree(STATE_DIR / "containers" / cid, ignore_errors=True)
    _removed.clear()


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


def time_logs(cid: str, *args: str) -> float:
    """Wall time of one ``docker logs [args] <cid>``, output discarded."""
    t0 = time.monotonic()
    subprocess.run([DOCKER, "logs", *args, cid], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=900)  # fmt: skip
    return time.monotonic() - t0


def line_time(cid: str, lines: int, index: int) -> str:
    """The timestamp (RFC 3339, as ``docker logs -t`` prints it) of line ``index``
    (0-based) of a container that logged ``lines`` lines: the first line of
    ``docker logs -t --tail <lines - index>``, the rest of the output not read."""
    proc = subprocess.Popen([DOCKER, "logs", "-t", "--tail", str(lines - index), cid],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
    finally:
        proc.kill()
        proc.wait()
    if not first:
        raise BenchError(f"docker logs -t --tail {lines - index} {cid[:12]}: no output")
    return first.split(" ", 1)[0]


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


def wait_file_stored(cid: str, log: str, lines: int, idle: float = 60.0) -> float:
    """time.monotonic() when pylog's store holds ``lines`` lines of the declared file
    log ``log`` of container ``cid`` (``containers/<id>/files/<log>/``), polled every
    20 ms; an error once the count has not grown for ``idle`` seconds."""
    counter = LineCounter(STATE_DIR / "containers" / cid / "files" / log)
    last, changed = -1, time.monotonic()
    while True:
        n = counter.count()
        now = time.monotonic()
        if n >= lines:
            return now
        if n != last:
            last, changed = n, now
        elif now - changed > idle:
            raise BenchError(f"file log {log!r} of {cid[:12]}: {n:,} of {lines:,} lines "
                             f"stored, none more for {idle:.0f} s")  # fmt: skip
        time.sleep(0.02)


# ------------------------------------------------------------------ pylog's processes
def _cgroup() -> Path | None:
    """The plugin's cpuacct cgroup (cgroup v1, as on this engine), if found."""
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", PLUGIN, check=False)
    for root in (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/cpu,cpuacct")):
        if plugin_id and (root / plugin_id / "cpuacct.usage").exists():
            return root / plugin_id
    return None


def pylog_pids() -> list[int]:
    """The plugin's processes (gunicorn's arbiter, its worker and the shipping
    processes): those of its cgroup, else any process running pylog's server or
    shipper."""
    cg = _cgroup()
    if cg is not None:
        return sorted(int(p) for p in (cg / "cgroup.procs").read_text().split())
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pylog.server" in cmdline or b"pylog.shipper.worker" in cmdline:
            pids.append(int(name))
    return sorted(pids)


def stat_cpu_ticks(stat: str) -> int:
    """CPU clock ticks of a process from its ``/proc/<pid>/stat`` line: its own utime
    and stime and its reaped children's (cutime, cstime). The children's count makes
    a process that exited (a respawned worker, a restarted shipping process) stay
    counted once its parent has waited for it."""
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])


def cpu_seconds(pids: Sequence[int] | None = None) -> float:
    """CPU time used so far by the plugin: its cgroup's cpuacct (every process that
    ever ran in it, those that exited included), else the sum of
    :func:`stat_cpu_ticks` over ``pids`` (default: :func:`pylog_pids` now, so a
    shipping process started since the last call counts). The fallback loses a
    process that exited unreaped by another of ``pids``; take ``pids`` afresh at
    each call, as the default does, or one started since is missed."""
    cg = _cgroup()
    if cg is not None:
        return int((cg / "cpuacct.usage").read_text()) / 1e9
    return processes_cpu_seconds(pylog_pids() if pids is None else pids)


def processes_cpu_seconds(pids: Sequence[int]) -> float:
    """:func:`stat_cpu_ticks` summed over ``pids``, in seconds; a process gone is 0."""
    total = 0
    for pid in pids:
        try:
            total += stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


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


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def process_stats(pids: Sequence[int]) -> dict[str, float]:
    """VmRSS (MB) of the arbiter (the process whose parent is not one of ``pids``)
    and of the workers (the others), and the threads and open fds of all of them."""
    arbiter = [p for p in pids if _ppid(p) not in pids]
    workers = [p for p in pids if p not in arbiter]
    return {
        "rss_arbiter_mb": rss_mb(arbiter),
        "rss_workers_mb": rss_mb(workers),
        "threads": float(sum(_status_kb(p, "Threads") for p in pids)),
        "fds": float(sum(_fds(p) for p in pids)),
    }


# ------------------------------------------------------------------ plugin start-up
@dataclass
class Startup:
    enable_s: float  # `docker plugin enable` wall time
    listen_s: float  # process start -> gunicorn bound the socket
    ready_s: float  # process start -> pylog's service started in the worker


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _process_start(pid: int) -> float:
    """A process's start on CLOCK_BOOTTIME, in seconds (10 ms resolution)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _plugin_socket() -> Path:
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", PLUGIN)
    return Path(f"/run/docker/plugins/{plugin_id}/pylog.sock")


def _answers(sock: Path) -> bool:
    """True once an HTTP request on the socket gets a response (the worker is up);
    connect() alone succeeds as soon as gunicorn's arbiter has bound the socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.1 200")


def restart_plugin() -> Startup:
    """Disable and enable the plugin, watching the socket from here: listening is
    when connect() first succeeds, ready when Plugin.Activate first answers, both
    from the plugin's first process's start. (dockerd's log of the plugin's lines
    has whole-second timestamps, too coarse for this.)"""
    sock = _plugin_socket()
    docker("plugin", "disable", PLUGIN)
    t0 = time.monotonic()
    enabling = subprocess.Popen([DOCKER, "plugin", "enable", "--timeout", "0", PLUGIN],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    listen_at = ready_at = math.nan
    deadline = time.monotonic() + 30
    while math.isnan(ready_at) and time.monotonic() < deadline:
        now = _boottime()
        try:
            if math.isnan(listen_at):
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
                listen_at = now
            if _answers(sock):
                ready_at = _boottime()
        except OSError:
            time.sleep(0.002)
    _, err = enabling.communicate(timeout=60)
    enable = time.monotonic() - t0
    if enabling.returncode != 0:
        raise BenchError(f"docker plugin enable failed: {err.decode(errors='replace')}")
    pids = pylog_pids()
    if not pids:
        raise BenchError("no pylog process after enable")
    started = min(_process_start(p) for p in pids)
    return Startup(enable, listen_at - started, ready_at - started)
