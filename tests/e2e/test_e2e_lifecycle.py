"""Bad log-opts fail `docker run`; logs of stopped and restarted containers."""

from __future__ import annotations

import time

import pytest

from .e2e_helpers import PLUGIN, Docker, Logs, assert_same_logs

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("opt", "value"), [("bogus", "1"), ("max-size", "abc"), ("max-file", "abc")]
)
def test_bad_log_opt_fails_run(docker: Docker, opt: str, value: str) -> None:
    ref = docker.run_fails("json-file", "echo never", {opt: value})
    assert ref.returncode != 0  # the harness: json-file rejects it too
    proc = docker.run_fails(PLUGIN, "echo never", {opt: value})
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, f"docker run --log-opt {opt}={value} succeeded"
    assert opt in err, f"error does not name the option {opt!r}: {err.strip()}"


@pytest.mark.parametrize(
    "opts",
    [{"mode": "non-blocking"}, {"mode": "non-blocking", "max-buffer-size": "4m"}],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_dockerd_log_opts_are_accepted(docker: Docker, opts: dict[str, str]) -> None:
    """mode and max-buffer-size are dockerd's own options, valid with every driver."""
    pair = docker.run_pair("seq 1 1000; echo done >&2", log_opts=opts)
    ref, got = (docker.logs(c) for c in pair)
    assert ref.stderr == b"done\n"
    assert_same_logs(ref, got, f"docker logs with {opts}")


def test_logs_of_stopped_and_restarted_container(docker: Docker) -> None:
    # Pauses: the order of records of the two streams is then fixed (for --tail).
    cmd = "echo 'hello out'; sleep 0.1; echo 'hello err' >&2; sleep 0.1; printf 'no newline'"
    pair = docker.run_pair(cmd)
    ref, got = (docker.logs(c) for c in pair)
    assert ref == Logs(b"hello out\nno newline", b"hello err\n")
    assert_same_logs(ref, got, "docker logs of a stopped container")

    for cid in pair:
        docker.restart(cid)
    for cid in pair:
        assert docker.wait(cid) == 0
    ref, got = (docker.logs(c) for c in pair)
    assert ref.stderr == b"hello err\nhello err\n"
    assert_same_logs(ref, got, "docker logs after docker restart")
    for tail in ("1", "2", "3"):
        ref, got = (docker.logs(c, "--tail", tail) for c in pair)
        assert_same_logs(ref, got, f"docker logs --tail {tail} after docker restart")


def test_follow_on_stopped_container_ends(docker: Docker) -> None:
    cid = docker.run_and_wait(PLUGIN, "echo one; echo two >&2")
    t0 = time.monotonic()
    logs = docker.follow(cid).wait(timeout=30)
    assert logs == Logs(b"one\n", b"two\n")
    assert time.monotonic() - t0 < 15
