"""Fixtures for the end-to-end tests: a real Docker engine, the busybox test image and
the installed `pylog` managed plugin.

Session setup (once): `scripts/engine.sh start`, `scripts/busybox-image.sh` and
`make install` (skipped with PYLOG_E2E_SKIP_INSTALL=1, as `make test-e2e` does after
installing). Every container is labelled and removed at the end of the session.
Also a local registry fixture (`registry`) for the tests that push and install.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .e2e_helpers import LABEL, PLUGIN, REPO, Docker, docker_cli


def _sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 1200) -> None:
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}", False)


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """Engine up, busybox image present, plugin installed and enabled."""
    _sh("scripts/engine.sh", "start")
    _sh("scripts/busybox-image.sh")
    if os.environ.get("PYLOG_E2E_SKIP_INSTALL") != "1":
        _sh("make", "install")
    enabled = docker_cli(["plugin", "inspect", "--format", "{{.Enabled}}", PLUGIN], check=False)
    assert enabled.stdout.strip() == b"true", (
        f"plugin {PLUGIN} is not installed and enabled: {enabled.stderr.decode().strip()}"
    )
    d = Docker()
    yield d
    ids = docker_cli(["ps", "-aq", "--filter", f"label={LABEL}"], check=False).stdout.split()
    if ids:
        docker_cli(["rm", "-f", *(i.decode() for i in ids)], check=False, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A `docker-registry` (Debian's distribution registry) on 127.0.0.1, storing in tmp."""
    addr = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: {addr}\n"
    )
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"http://{addr}/v2/", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, (tmp_path / "registry.log").read_text()
        assert time.monotonic() < deadline, "the registry did not answer"
        time.sleep(0.1)
    yield addr
    proc.terminate()
    proc.wait(20)
    log.close()
