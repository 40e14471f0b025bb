"""Log-opts and labels are chosen by whoever creates a container: none of them may
freeze pylog for the other containers.

A `tag` of "{{" and thousands of spaces took the old template regex minutes of CPU
with the GIL held; `labels-regex=(a+)+$` with a long label key backtracked for minutes
in Python's re. Each hostile `docker run` here goes on beside an ordinary one, and the
timeout guard catches a plugin that stalls.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .e2e_helpers import PLUGIN, Docker, docker_cli

pytestmark = pytest.mark.e2e

STATE_DIR = Path("/var/lib/pylog")


def run_with_labels(docker: Docker, cmd: str, opts: dict[str, str], labels: list[str]) -> str:
    args = docker.run_args(PLUGIN, cmd, opts)
    for label in labels:
        args[1:1] = ["--label", label]
    return docker_cli(args).stdout.decode().strip()


@pytest.mark.timeout(90)
def test_hostile_tag_fails_its_run_and_does_not_hold_up_another(docker: Docker) -> None:
    hostile = {"tag": "{{" + " " * 3000}
    with ThreadPoolExecutor(2) as ex:
        bad = ex.submit(docker.run_fails, PLUGIN, "echo never", hostile)
        good = ex.submit(docker.run_and_wait, PLUGIN, "echo fine", {"tag": "{{.Name}}"})
        proc, cid = bad.result(), good.result()
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, "a 3002-character tag was accepted"
    assert "invalid log opt 'tag'" in err and "the limit is 1024" in err, err
    assert docker.logs(cid).stdout == b"fine\n"


@pytest.mark.timeout(90)
def test_catastrophic_labels_regex_is_matched_in_linear_time(docker: Docker) -> None:
    key = "a" * 30 + "!"
    labels = [f"{key}=x", "aaa=y"]
    cid = run_with_labels(docker, "echo labelled", {"labels-regex": "(a+)+$"}, labels)
    assert docker.wait(cid) == 0
    assert docker.logs(cid).stdout == b"labelled\n"
    record = json.loads((STATE_DIR / "containers" / cid / "json.log").read_bytes())
    assert record["attrs"] == {"aaa": "y"}


def test_regex_re2_does_not_accept_fails_run_naming_the_opt(docker: Docker) -> None:
    proc = docker.run_fails(PLUGIN, "echo never", {"labels-regex": r"(a)\1"})
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0
    assert "invalid log opt 'labels-regex'" in err and "RE2 syntax is accepted" in err, err
