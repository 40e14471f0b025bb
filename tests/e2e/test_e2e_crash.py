"""pylog's own process killed while containers log: containers keep going, no line is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .e2e_helpers import Docker, plugin_processes

pytestmark = pytest.mark.e2e

# ~40,000 numbered lines in bursts over several seconds.
CMD = "for i in $(seq 0 39); do seq $((i*1000+1)) $((i*1000+1000)); sleep 0.15; done"
EXPECTED = b"".join(b"%d\n" % i for i in range(1, 40001))


def wait_plugin_back(old: tuple[int, int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            now = plugin_processes()
        except AssertionError:
            now = None
        if now is not None and now[1] != old[1]:
            return
        time.sleep(0.2)
    raise AssertionError("the plugin did not come back")


@pytest.mark.parametrize("victim", ["worker", "whole plugin"])
def test_sigkill_loses_no_line_and_never_blocks_the_container(docker: Docker, victim: str) -> None:
    before = plugin_processes()
    cid = docker.run("pylog", CMD)
    time.sleep(2.0)
    master, worker = before
    os.kill(worker if victim == "worker" else master, signal.SIGKILL)
    if victim == "whole plugin":
        os.kill(worker, signal.SIGKILL)
    wait_plugin_back(before)
    start = time.monotonic()
    assert docker.wait(cid, timeout=120) == 0
    assert time.monotonic() - start < 60, "the container was held up"
    logs = docker.logs(cid)
    assert logs.stderr == b""
    got = logs.stdout
    lines = got.splitlines()
    missing = sorted(set(range(1, 40001)) - {int(x) for x in lines})
    assert not missing, f"{len(missing)} lines lost, first {missing[:5]}"
    assert got == EXPECTED, "lines doubled or out of order"


def test_plugin_processes_are_told_from_other_pylog_processes(docker: Docker) -> None:
    """Another process whose command line names pylog.server (a second install, a test
    server) is never taken for the plugin's."""
    before = plugin_processes()
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "pylog.server"]
    )
    try:
        assert plugin_processes() == before
    finally:
        decoy.kill()
        decoy.wait()
