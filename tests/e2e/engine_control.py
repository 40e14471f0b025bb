"""Restarting the shared Docker engine with other dockerd flags, and always back.

The e2e tests that need dockerd itself restarted or reconfigured (live-restore, a
daemon.json) use :func:`reconfigured_engine`: it stops dockerd, starts it with extra
flags through ``scripts/engine.sh`` (PYLOG_DOCKERD_ARGS), and whatever happens in the
test, starts it again in its normal configuration with ``pylog`` enabled before the
next test runs. Callers hold /tmp/pylog-e2e.lock like every e2e run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .e2e_helpers import PLUGIN, REPO, docker_cli

PIDFILE = Path(os.environ.get("PYLOG_DOCKERD_PIDFILE", "/var/run/docker.pid"))


def engine(action: str, extra_args: str = "", timeout: float = 180) -> None:
    """``scripts/engine.sh start|stop`` with PYLOG_DOCKERD_ARGS=extra_args."""
    env = {**os.environ, "PYLOG_DOCKERD_ARGS": extra_args}
    proc = subprocess.run(
        ["scripts/engine.sh", action],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        raise AssertionError(f"engine.sh {action} {extra_args!r} failed:\n{out[-3000:]}")


def dockerd_args() -> list[str]:
    """The running dockerd's command line."""
    pid = int(PIDFILE.read_text().strip())
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def wait_plugin_enabled(name: str = PLUGIN, timeout: float = 60) -> None:
    """dockerd answers `docker info` before it has (re)started its plugins."""
    deadline = time.monotonic() + timeout
    while True:
        got = docker_cli(["plugin", "inspect", "--format", "{{.Enabled}}", name], check=False)
        if got.stdout.strip() == b"true":
            # Enabled is the saved state: also wait until the plugin answers.
            probe = docker_cli(["plugin", "inspect", "--format", "{{.ID}}", name], check=False)
            sock = Path(f"/run/docker/plugins/{probe.stdout.decode().strip()}/pylog.sock")
            if sock.is_socket():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"plugin {name} not enabled {timeout} s after dockerd started")
        time.sleep(0.2)


def restart_engine(extra_args: str = "") -> None:
    """SIGTERM dockerd, wait for it to exit, start it with ``extra_args``."""
    engine("stop")
    engine("start", extra_args)
    wait_plugin_enabled()


def restore_normal_engine() -> None:
    """dockerd as ``scripts/engine.sh start`` runs it, with pylog enabled (again, if a
    test disabled it)."""
    engine("stop")
    engine("start")
    enabled = docker_cli(["plugin", "inspect", "--format", "{{.Enabled}}", PLUGIN], check=False)
    if enabled.stdout.strip() == b"false":
        docker_cli(["plugin", "enable", "--timeout", "0", PLUGIN], timeout=120)
    wait_plugin_enabled()
    assert docker_cli(["info", "--format", "{{.LiveRestoreEnabled}}"]).stdout.strip() == b"false"


@contextmanager
def reconfigured_engine(extra_args: str) -> Iterator[None]:
    """dockerd running with ``extra_args`` inside the block, back to normal after it."""
    try:
        restart_engine(extra_args)
        yield
    finally:
        restore_normal_engine()
