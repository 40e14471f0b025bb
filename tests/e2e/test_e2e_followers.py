"""Many `docker logs -f` at once never hold up `docker run` or `docker stop`.

Each follow stream holds one of pylog's HTTP threads for as long as it streams.
When followers could take every thread, StartLogging and StopLogging queued
behind them: `docker run` of a new container hung, and `docker stop` of the
followed container deadlocked, since its followers end only after StopLogging.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from .e2e_helpers import PLUGIN, Docker, Follower, docker_cli

pytestmark = pytest.mark.e2e

#: More than the 64 HTTP threads pylog had in all.
FOLLOWERS = 80


def timed(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[bytes], float]:
    start = time.monotonic()
    try:
        proc = docker_cli(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"docker {' '.join(args[:2])} did not return in {timeout} s") from None
    return proc, time.monotonic() - start


@pytest.mark.timeout(600)
def test_many_followers_hold_up_neither_run_nor_stop(docker: Docker) -> None:
    cid = docker.run(PLUGIN, "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done")
    followers: list[Follower] = []
    others: list[str] = []
    try:
        for _ in range(FOLLOWERS):
            followers.append(docker.follow(cid, "--tail", "1"))
        # Every follower is streaming, so each holds a thread.
        deadline = time.monotonic() + 120
        while not all(f.data("stdout") for f in followers):
            assert time.monotonic() < deadline, (
                f"{sum(not f.data('stdout') for f in followers)} of {FOLLOWERS} followers "
                "got nothing in 120 s"
            )
            assert all(f.proc.poll() is None for f in followers), "a follower ended early"
            time.sleep(0.2)

        # A new container starts at once (StartLogging finds a thread).
        proc, took = timed(docker.run_args(PLUGIN, "echo hello"), timeout=30)
        others.append(proc.stdout.decode().strip())
        assert took < 20, f"docker run took {took:.1f} s"
        assert docker.wait(others[0], timeout=30) == 0
        assert docker.logs(others[0], timeout=30).stdout == b"hello\n"

        # Stopping the followed container returns, and ends its followers.
        _, took = timed(["stop", "-t", "1", cid], timeout=60)
        assert took < 30, f"docker stop took {took:.1f} s"
        for f in followers:
            logs = f.wait(timeout=30)
            assert logs.stdout.startswith(b"tick ")
        timed(["rm", "-f", cid], timeout=60)
    finally:
        for f in followers:
            if f.proc.poll() is None:
                f.proc.kill()
                f.proc.wait()
        docker_cli(["rm", "-f", cid, *others], check=False, timeout=120)
