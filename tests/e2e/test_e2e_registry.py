"""`make push` to a local registry, then `docker plugin install` from it, with settings."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from .e2e_helpers import PLUGIN, REPO, Docker, docker_cli

pytestmark = pytest.mark.e2e

ALIAS = "pylog-reg"
DOCKERD_LOG = Path("/var/log/pylog-dockerd.log")


def plugin_inspect(name: str, fmt: str) -> str:
    return docker_cli(["plugin", "inspect", "--format", fmt, name]).stdout.decode().strip()


def _remove_alias() -> None:
    if docker_cli(["plugin", "inspect", ALIAS], check=False).returncode == 0:
        docker_cli(["plugin", "disable", "-f", ALIAS], check=False)
        docker_cli(["plugin", "rm", "-f", ALIAS])


def test_push_then_install_from_the_registry_with_settings(docker: Docker, registry: str) -> None:
    ref = f"{registry}/pylog:latest"
    t0 = time.monotonic()
    push = subprocess.run(
        ["make", "push", f"REGISTRY={registry}"],
        cwd=REPO,
        capture_output=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    out = (push.stdout + push.stderr).decode(errors="replace")
    assert push.returncode == 0, out[-3000:]
    pushed = time.monotonic() - t0
    tags = requests.get(f"http://{registry}/v2/pylog/tags/list", timeout=10).json()
    assert tags["tags"] == ["latest"]
    # The pushed name is not left installed.
    assert docker_cli(["plugin", "inspect", ref], check=False).returncode != 0

    # Its own state dir: two plugins must never share one (each would reattach the
    # other's FIFOs at startup). dockerd does not create a missing mount source.
    state = Path(tempfile.mkdtemp(prefix="pylog-reg-state-"))
    log_from = DOCKERD_LOG.stat().st_size if DOCKERD_LOG.exists() else 0
    _remove_alias()
    cid = ""
    try:
        docker_cli(
            [
                "plugin",
                "install",
                "--grant-all-permissions",
                "--alias",
                ALIAS,
                ref,
                "PYLOG_LOG_LEVEL=debug",
                f"state.source={state}",
            ],
            timeout=600,
        )
        assert plugin_inspect(ALIAS, "{{.Enabled}}") == "true"
        assert '"PYLOG_LOG_LEVEL=debug"' in plugin_inspect(ALIAS, "{{json .Settings.Env}}")

        cid = docker.run_and_wait(f"{ALIAS}:latest", "seq 1 300; echo bye >&2")
        got = docker.logs(cid)
        assert got.stdout == b"".join(f"{i}\n".encode() for i in range(1, 301))
        assert got.stderr == b"bye\n"
        # Stored by this plugin, in its own state dir, at the level set at install.
        assert (state / "containers" / cid / "json.log").stat().st_size > 0
        if DOCKERD_LOG.exists():
            with open(DOCKERD_LOG, "rb") as f:
                f.seek(log_from)
                new = f.read()
            debug = f"pylog DEBUG pylog.service: container {cid[:12]}: reading "
            assert debug.encode() in new, "no debug message"
    finally:
        if cid:
            docker_cli(["rm", "-f", cid], check=False)
        _remove_alias()
        subprocess.run(["rm", "-rf", str(state)], check=False)
    assert docker_cli(["plugin", "inspect", ALIAS], check=False).returncode != 0
    enabled = docker_cli(["plugin", "inspect", "--format", "{{.Enabled}}", PLUGIN])
    assert enabled.stdout.strip() == b"true", f"{PLUGIN} is no longer enabled"
    print(f"make push took {pushed:.1f} s")
