"""Many containers at once: every StartLogging answered, every line stored, and the
plugin worker's memory measured.

All containers are started first and wait for a file on a shared bind mount; then
they all write at once, so N FIFOs are open and being read together.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .e2e_helpers import IMAGE, LABEL, PLUGIN, Docker, docker_cli, plugin_processes
from .fault_report import record_fault

pytestmark = pytest.mark.e2e

N = int(os.environ.get("PYLOG_E2E_MANY", "200"))
LINES = 200
EXPECTED = b"".join(b"%d line of a container among many\n" % i for i in range(1, LINES + 1))
CMD = (
    "until [ -e /go/now ]; do usleep 50000; done; "
    f"seq 1 {LINES} | sed 's/$/ line of a container among many/'"
)


def status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
        elif key == "Threads":
            out[key] = int(value)
    return out


def test_many_containers_at_once(docker: Docker) -> None:
    _, worker = plugin_processes()
    before = status_kib(worker)
    go = Path(tempfile.mkdtemp(prefix="pylog-e2e-go-"))
    peak = dict(before)
    sampling = True

    def sample() -> None:
        while sampling:
            try:
                s = status_kib(worker)
            except OSError:
                return
            for k, v in s.items():
                peak[k] = max(peak[k], v)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cids: list[str] = []
    try:

        def run(_: int) -> str:
            args = ["run", "-d", "--network", "none", "--label", f"{LABEL}=1"]
            args += ["--log-driver", PLUGIN, "-v", f"{go}:/go:ro", IMAGE, "sh", "-c", CMD]
            return docker_cli(args, timeout=300).stdout.decode().strip()

        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(run, range(N)))
        started_s = time.monotonic() - t0
        cids = results
        assert len(set(cids)) == N
        (go / "now").touch()
        t1 = time.monotonic()
        with ThreadPoolExecutor(16) as ex:
            codes = list(ex.map(lambda c: docker.wait(c, timeout=300), cids))
        ran_s = time.monotonic() - t1
        assert codes == [0] * N
        with ThreadPoolExecutor(16) as ex:
            logs = list(ex.map(docker.logs, cids))
        wrong = [c[:12] for c, lg in zip(cids, logs, strict=True) if lg.stdout != EXPECTED]
        stored = sum(lg.stdout.count(b"\n") for lg in logs)
    finally:
        sampling = False
        sampler.join(5)
        if cids:
            docker_cli(["rm", "-f", *cids], check=False, timeout=300)
        shutil.rmtree(go, ignore_errors=True)
    after = status_kib(worker)
    record_fault(
        f"{N} containers at once, {LINES} lines each",
        written=N * LINES,
        stored=stored,
        lost=max(0, N * LINES - stored),
        duplicated=max(0, stored - N * LINES),
        note=(
            f"all {N} `docker run -d` in {started_s:.0f} s (16 at a time), all wrote and "
            f"exited in {ran_s:.1f} s; worker RSS {before['VmRSS'] // 1024} MiB before, "
            f"peak sampled {peak['VmRSS'] // 1024} MiB, {after['VmRSS'] // 1024} MiB after "
            f"(VmHWM {after['VmHWM'] // 1024} MiB); threads {before['Threads']} -> peak "
            f"{peak['Threads']}"
        ),
    )
    print(f"\nworker status before {before}, peak {peak}, after {after}")
    assert not wrong, f"{len(wrong)} containers' logs differ, e.g. {wrong[:5]}"
