"""The `pylog` command on the host against the installed plugin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from .e2e_helpers import PLUGIN, Docker, docker_cli

pytestmark = pytest.mark.e2e


#: The console script `pip install` made ([project.scripts]).
PYLOG = Path(sys.executable).parent / "pylog"


def pylog(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(PYLOG), *args],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_status_metrics_and_logs_of_a_running_container(docker: Docker) -> None:
    # dockerd copies stdout and stderr in separate goroutines: a pause keeps the
    # stderr line after the last stdout line in the log, so `--tail 2` is fixed.
    cmd = "seq 1 500; sleep 0.3; echo 'to stderr' >&2; sleep 60"
    cid = docker.run(PLUGIN, cmd)
    try:
        row: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res = pylog("status")
            assert res.returncode == 0, res.stderr.decode()
            rows = [r.split() for r in res.stdout.decode().splitlines() if cid[:12] in r]
            if rows and rows[0][2] == "501":
                row = rows[0]
                break
            time.sleep(0.2)
        name = docker.inspect(cid, "{{.Name}}").lstrip("/")
        assert row[:3] == [cid[:12], name[:24], "501"], res.stdout.decode()

        res = pylog("metrics")
        assert res.returncode == 0, res.stderr.decode()
        want = (
            f'pylog_lines_stored_total{{container_id="{cid[:12]}",container_name="{name}"}} 501.0'
        )
        assert want in res.stdout.decode().splitlines()

        # Read from the host's store, the way `docker logs` prints it.
        res = pylog("logs", cid[:10])
        assert res.returncode == 0, res.stderr.decode()
        ref = docker.logs(cid)
        assert (res.stdout, res.stderr) == (ref.stdout, ref.stderr)
        assert res.stderr == b"to stderr\n"
        res = pylog("logs", "--tail", "2", cid)
        assert (res.stdout, res.stderr) == (b"500\n", b"to stderr\n")
    finally:
        docker_cli(["rm", "-f", cid], check=False)


def test_a_plugin_that_is_not_installed_is_one_clear_line(docker: Docker) -> None:
    res = pylog("--plugin", "pylog-not-installed", "status")
    assert res.returncode == 1
    assert res.stderr.decode() == (
        "pylog: plugin 'pylog-not-installed' is not installed "
        "(docker plugin ls lists the installed ones)\n"
    )
