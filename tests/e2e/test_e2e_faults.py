"""Faults around pylog, on the real engine: the state disk fills up, pylog's worker is
stopped (SIGSTOP) while a container logs and is stopped or removed, the Kafka broker
is down.

The disk-full and Kafka tests change the plugin's settings (`state` mount on a small
tmpfs; KAFKA_BROKERS) and put the defaults back afterwards, whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .e2e_helpers import PLUGIN, Docker, docker_cli, plugin_processes
from .fault_report import record_fault

pytestmark = pytest.mark.e2e

DOCKERD_LOG = Path(os.environ.get("PYLOG_DOCKERD_LOG", "/var/log/pylog-dockerd.log"))
STATE_DIR = "/var/lib/pylog"


class DaemonLog:
    """dockerd's log (pylog's own log goes there) from the moment this was created."""

    def __init__(self) -> None:
        self.start = DOCKERD_LOG.stat().st_size

    def text(self) -> str:
        with DOCKERD_LOG.open("rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in {DOCKERD_LOG} within {timeout} s")
            time.sleep(0.2)


def numbers(data: bytes) -> list[int]:
    return [int(line.split()[0]) for line in data.splitlines()]


def describe_sequence(got: list[int]) -> str:
    """Where numbered lines 1..n stop being consecutive."""
    i = next(k for k in range(len(got)) if got[k] != k + 1)
    dup = len(got) - len(set(got))
    missing = max(got) - len(set(got))
    return (
        f"{len(got)} lines, {dup} doubled, {missing} missing; first break at index {i}: "
        f"{got[max(0, i - 3) : i + 3]}"
    )


def timed(*args: str, timeout: float = 120) -> float:
    t0 = time.monotonic()
    docker_cli(list(args), timeout=timeout)
    return time.monotonic() - t0


def set_plugin(*settings: str) -> None:
    docker_cli(["plugin", "disable", "-f", PLUGIN], check=False, timeout=120)
    docker_cli(["plugin", "set", PLUGIN, *settings])
    docker_cli(["plugin", "enable", "--timeout", "0", PLUGIN], timeout=120)


@pytest.fixture
def small_state_disk(docker: Docker) -> Iterator[Path]:
    """The plugin's state on a 2 MiB tmpfs; yields the mount point."""
    mnt = Path(tempfile.mkdtemp(prefix="pylog-e2e-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        set_plugin(f"state.source={mnt}")
        yield mnt
    finally:
        try:
            set_plugin(f"state.source={STATE_DIR}")
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
            os.rmdir(mnt)


PAD = "x" * 100
# Lines numbered from 1: 40,000 at once (about 7 MB of records, more than the disk
# holds), then one every 20 ms until stopped. The count is also kept in /tmp/n, which
# `docker exec` reads without any logging involved.
FILLER = (
    f"seq 1 40000 | sed 's/$/ {PAD}/'; i=40001; "
    f'while true; do echo "$i {PAD}"; echo $i > /tmp/n; i=$((i+1)); usleep 20000; done'
)


def test_disk_full_never_blocks_counts_and_recovers(docker: Docker, small_state_disk: Path) -> None:
    dlog = DaemonLog()
    cid = docker.run(PLUGIN, FILLER)
    short = cid[:12]
    # The container is not held up: it gets through 40,000 lines and keeps ticking.
    deadline = time.monotonic() + 30
    progress = 0
    while time.monotonic() < deadline and progress < 40100:
        out = docker_cli(["exec", cid, "cat", "/tmp/n"], check=False).stdout.strip()
        progress = int(out or 0)
        time.sleep(0.3)
    assert progress >= 40100, f"the container is held up while the disk is full: at {progress}"
    dlog.wait_for(rf"container {short}: cannot store logs", 10)
    # StartLogging is answered at once while the disk is full. pylog refuses it today:
    # it cannot write the container's info.json and FIFO record, so `docker run` fails
    # with ENOSPC (json-file needs only an empty file, which a full tmpfs still takes).
    t0 = time.monotonic()
    run = docker.run_fails(PLUGIN, "echo started while full")
    run_while_full = time.monotonic() - t0
    assert run_while_full < 10, f"docker run took {run_while_full:.1f} s while the disk is full"
    if run.returncode == 0:
        other = run.stdout.decode().strip()
        assert docker.wait(other, timeout=30) == 0
        run_note = f"`docker run` while full: started ({run_while_full:.1f} s)"
        docker_cli(["rm", "-f", other])
    else:
        assert b"No space left on device" in run.stderr, run.stderr
        run_note = f"`docker run` while full: refused with ENOSPC in {run_while_full:.1f} s"

    # Space returns: pylog stores again by itself. (While full it may already store a
    # batch now and then: a smaller batch fits where a 1 MiB one did not.)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_state_disk)], check=True)
    at_remount = int(docker_cli(["exec", cid, "cat", "/tmp/n"]).stdout.strip())
    deadline = time.monotonic() + 15
    while True:
        tail = docker.logs(cid, "--tail", "1").stdout
        if tail and numbers(tail)[-1] > at_remount + 20:
            break
        assert time.monotonic() < deadline, "no new line stored after the disk had room"
        time.sleep(0.3)
    stop_s = timed("stop", "-t", "1", cid, timeout=60)
    ended = rf"container {short}: logging ended with .* (\d+) lines the store refused"
    m = dlog.wait_for(ended, 15)
    dropped = int(m.group(1))
    logs = docker.logs(cid)
    got = numbers(logs.stdout)
    assert logs.stderr == b""
    assert got == sorted(set(got)), "lines doubled or out of order"
    last = got[-1]
    missing = last - len(got)
    # Every line pylog did not store is one it counted and reported.
    assert missing == dropped, f"{missing} lines missing, pylog reported {dropped} dropped"
    # After recovery every line is there: the tail of the log is consecutive.
    recovered = [n for n in got if n > at_remount]
    assert recovered == list(range(at_remount + 1, last + 1)), "lines lost after recovery"
    assert stop_s < 5, f"docker stop -t 1 took {stop_s:.1f} s"
    record_fault(
        "disk full (2 MiB tmpfs, then remounted 64 MiB)",
        written=last,
        stored=len(got),
        lost=missing,
        duplicated=len(got) - len(set(got)),
        note=(
            f"all {missing} lost lines counted by pylog ({dropped} reported); container "
            f"never held up; {run_note}; `docker stop -t 1` {stop_s:.1f} s"
        ),
    )
    docker_cli(["rm", "-f", cid])


PAUSE = 15.0


@pytest.mark.parametrize("how", ["stop -t 1", "rm -f"])
def test_stop_and_rm_while_pylog_is_frozen(docker: Docker, how: str) -> None:
    """The worker is SIGSTOPped while a container writes flat out; `docker stop -t 1`
    (or `rm -f`) is issued 1 s later.

    Measured on Docker 20.10: the command returns only after SIGCONT. dockerd waits up
    to 10 s for its log copier, then calls StopLogging, and the plugin was enabled with
    `--timeout 0` (so that `docker logs -f` is not cut), so that call waits for the
    frozen process. What pylog owes: the command returns promptly once pylog runs again,
    and no line dockerd read is lost or doubled.
    """
    _, worker = plugin_processes()
    cid = docker.run(PLUGIN, "seq 1 3000000")
    time.sleep(0.5)
    os.kill(worker, signal.SIGSTOP)
    frozen_at = time.monotonic()
    done: dict[str, float] = {}
    try:
        time.sleep(1.0)

        def issue() -> None:
            t0 = time.monotonic()
            docker_cli([*how.split(), cid], timeout=120)
            done["at"] = time.monotonic()
            done["took"] = done["at"] - t0

        th = threading.Thread(target=issue, daemon=True)
        th.start()
        time.sleep(max(0.0, PAUSE - (time.monotonic() - frozen_at)))
        returned_while_frozen = "at" in done
    finally:
        os.kill(worker, signal.SIGCONT)
    resumed = time.monotonic()
    th.join(60)
    assert "at" in done, f"docker {how} did not return within 60 s of SIGCONT"
    after_cont = done["at"] - resumed
    assert after_cont < 5, f"docker {how} returned {after_cont:.1f} s after SIGCONT"
    if how == "rm -f":
        # dockerd refuses `docker logs` on a removed container: only the timing counts.
        record_fault(
            f"pylog frozen {PAUSE:.0f} s, docker {how}",
            written=None,
            stored=None,
            lost=None,
            duplicated=None,
            note=(
                f"`docker {how}` took {done['took']:.1f} s, returned "
                f"{after_cont:.1f} s after SIGCONT"
                + (" (before SIGCONT)" if returned_while_frozen else "")
            ),
        )
        return
    out = docker.logs(cid).stdout
    got = numbers(out)
    assert got, "nothing stored"
    if not out.endswith(b"\n"):
        # Killed mid-write: seq's last buffer ends inside a line, stored as it came (as
        # json-file does): a prefix of the next number.
        cut = got.pop()
        assert str(len(got) + 1).startswith(str(cut)), f"last line {cut} after {len(got)}"
    assert got == list(range(1, len(got) + 1)), describe_sequence(got)
    record_fault(
        f"pylog frozen {PAUSE:.0f} s, docker {how}",
        written=len(got),
        stored=len(got),
        lost=0,
        duplicated=0,
        note=(
            f"`docker {how}` took {done['took']:.1f} s, returned {after_cont:.1f} s after "
            "SIGCONT"
            + (" (before SIGCONT)" if returned_while_frozen else "")
            + "; written = the lines dockerd read before the container was killed"
        ),
    )
    docker_cli(["rm", "-f", cid])


@pytest.fixture
def kafka_down(docker: Docker) -> Iterator[list[str]]:
    """The plugin ships to a broker address where nothing listens (connection refused).

    Yields a list for the test's container ids: their logs are deleted afterwards, or
    pylog would resume shipping their unshipped backlog whenever Kafka is configured.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cids: list[str] = []
    set_plugin(f"KAFKA_BROKERS=127.0.0.1:{port}")
    try:
        yield cids
    finally:
        docker_cli(["plugin", "disable", "-f", PLUGIN], check=False, timeout=120)
        for cid in cids:
            shutil.rmtree(Path(STATE_DIR, "containers", cid), ignore_errors=True)
        set_plugin("KAFKA_BROKERS=")


def test_stop_and_rm_with_kafka_down(docker: Docker, kafka_down: list[str]) -> None:
    """Containers shipping to a broker that is down are never held up: they log, stop
    and are removed as fast as with no Kafka, and `docker logs` has every line."""
    n = 200000
    t0 = time.monotonic()
    cid = docker.run_and_wait(PLUGIN, f"seq 1 {n}", timeout=60)
    kafka_down.append(cid)
    ran_s = time.monotonic() - t0
    got = docker.logs(cid).stdout
    assert got == b"".join(b"%d\n" % i for i in range(1, n + 1))
    busy = docker.run(PLUGIN, "while true; do seq 1 1000; usleep 10000; done")
    kafka_down.append(busy)
    time.sleep(2.0)
    stop_s = timed("stop", "-t", "1", busy, timeout=60)
    lines = numbers(docker.logs(busy).stdout)
    assert lines and lines[0] == 1
    busy2 = docker.run(PLUGIN, "while true; do seq 1 1000; usleep 10000; done")
    kafka_down.append(busy2)
    time.sleep(2.0)
    rm_s = timed("rm", "-f", busy2, timeout=60)
    docker_cli(["rm", "-f", cid, busy])
    assert ran_s < 30, f"{n} lines took {ran_s:.1f} s with the broker down"
    assert stop_s < 5, f"docker stop -t 1 took {stop_s:.1f} s with the broker down"
    assert rm_s < 5, f"docker rm -f took {rm_s:.1f} s with the broker down"
    record_fault(
        "Kafka broker down (connection refused)",
        written=n,
        stored=got.count(b"\n"),
        lost=0,
        duplicated=0,
        note=(
            f"{n} lines logged in {ran_s:.1f} s; `docker stop -t 1` of a busy container "
            f"{stop_s:.1f} s; `docker rm -f` of a busy one {rm_s:.1f} s"
        ),
    )
