"""The README's docker compose example, run with Debian's docker-compose (v1).

The compose file is taken from README.md's code block (the one after "With docker
compose"), so the README cannot drift from what is tested. It is written as is; a
second compose file, merged over it by ``docker-compose -f README -f OVERRIDE``, only
adapts it to the test machines, which have no registry and no bridge network: the
image becomes the busybox test image, ``command`` prints known lines, ``network_mode``
is ``none``, and the e2e label is added for cleanup. The ``logging:`` block, driver and
options, is the README's own.

The test checks that dockerd hands the container to pylog with the README's options,
that ``docker logs`` prints the lines through pylog, and that the ``tag`` template
reached pylog (``attrs.tag`` of the stored records). The project is taken down in the
end, whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from .e2e_helpers import IMAGE, LABEL, PLUGIN, REPO, Docker, docker_cli

pytestmark = pytest.mark.e2e

STATE_DIR = Path("/var/lib/pylog")
LINES = [f"compose line {i}" for i in range(1, 6)]


def readme_compose() -> str:
    """The YAML code block that follows "With docker compose" in README.md."""
    readme = (REPO / "README.md").read_text()
    at = readme.index("With docker compose")
    m = re.compile(r"```yaml\n(.*?)```", re.S).search(readme, at)
    assert m, "README.md: no ```yaml block after 'With docker compose'"
    return m.group(1)


def test_the_readme_compose_example_is_a_service_logging_to_pylog() -> None:
    """Without an engine: the block is the example the README describes."""
    spec = yaml.safe_load(readme_compose())
    ((name, service),) = spec["services"].items()
    assert service["logging"]["driver"] == PLUGIN, name


def compose(project: str, files: list[Path], *args: str, timeout: float = 180) -> str:
    cmd = ["docker-compose", "--ansi", "never", "-p", project]
    for f in files:
        cmd += ["-f", str(f)]
    proc = subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COMPOSE_INTERACTIVE_NO_CLI": "1"},
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(cmd[1:])} {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def stored_records(cid: str) -> list[dict[str, Any]]:
    path = STATE_DIR / "containers" / cid / "json.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(300)
def test_docker_compose_up_logs_through_pylog(docker: Docker, tmp_path: Path) -> None:
    assert shutil.which("docker-compose"), (
        "docker-compose is not installed: `make packages` (scripts/engine.sh) installs it"
    )
    readme = tmp_path / "docker-compose.yml"
    readme.write_text(readme_compose())
    (service,) = yaml.safe_load(readme.read_text())["services"]
    readme_opts = yaml.safe_load(readme.read_text())["services"][service]["logging"]["options"]
    script = "; ".join(f"echo '{line}'" for line in LINES)
    override = tmp_path / "test-machine.yml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    service: {
                        "image": IMAGE,
                        "command": ["sh", "-c", script],
                        "network_mode": "none",
                        "labels": {LABEL: "1"},
                    }
                }
            }
        )
    )
    project = f"pylogcompose{uuid.uuid4().hex[:10]}"
    files = [readme, override]
    try:
        compose(project, files, "up", "-d", "--no-build")
        cid = compose(project, files, "ps", "-q", service).strip()
        assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
        assert docker.wait(cid) == 0

        log_config = json.loads(docker.inspect(cid, "{{json .HostConfig.LogConfig}}"))
        assert log_config == {"Type": PLUGIN, "Config": readme_opts}

        logs = docker.logs(cid)
        assert logs.stdout.decode().splitlines() == LINES
        assert logs.stderr == b""

        # The README's tag template, {{.Name}}, reached pylog: compose names the
        # container <project>_<service>_1.
        name = docker.inspect(cid, "{{.Name}}").lstrip("/")
        assert name == f"{project}_{service}_1"
        records = stored_records(cid)
        assert [r["log"] for r in records] == [f"{line}\n" for line in LINES]
        assert {r["attrs"]["tag"] for r in records} == {name}
    finally:
        compose(project, files, "down", "--remove-orphans", "--timeout", "5")
    left = docker_cli(["ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"])
    assert left.stdout.strip() == b""
