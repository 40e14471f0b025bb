"""`docker logs -f` on a running container streams new lines as they are written and
ends when the container exits -- also past the 30 s default plugin HTTP timeout."""

from __future__ import annotations

import time

import pytest

from .e2e_helpers import PLUGIN, Docker

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("driver", ["json-file", PLUGIN])
def test_follow_streams_and_ends(docker: Docker, driver: str) -> None:
    n = 20
    cmd = f'for i in $(seq 1 {n}); do echo "tick $i"; sleep 0.2; done; echo bye >&2'
    cid = docker.run(driver, cmd)
    follower = docker.follow(cid)
    code = docker.wait(cid, timeout=60)
    exited = time.monotonic()
    assert code == 0
    logs = follower.wait(timeout=30)
    ended = time.monotonic()

    assert logs.stdout == b"".join(b"tick %d\n" % i for i in range(1, n + 1))
    assert logs.stderr == b"bye\n"
    lines = follower.stdout_lines_with_times()
    # Streamed while the container ran (~4 s), not delivered at the end in one go.
    spread = lines[-1][0] - lines[0][0]
    assert spread >= 2.0, f"lines arrived within {spread:.2f} s: not streamed"
    assert ended - exited < 15, f"follower ended {ended - exited:.1f} s after the exit"


def test_follow_past_60_seconds(docker: Docker) -> None:
    """The plugin was enabled with --timeout 0: the stream is not cut after 30 s."""
    n = 70
    cmd = f'for i in $(seq 1 {n}); do echo "tick $i"; sleep 1; done'
    cid = docker.run(PLUGIN, cmd)
    follower = docker.follow(cid)
    assert docker.wait(cid, timeout=180) == 0
    exited = time.monotonic()
    logs = follower.wait(timeout=60)
    ended = time.monotonic()

    lines = follower.stdout_lines_with_times()
    late = [line for t, line in lines if t > 60]
    assert len(late) >= 5, (
        f"only {len(late)} lines after the 60 s mark; last line at "
        f"{lines[-1][0] if lines else None} s: {lines[-1:]!r}"
    )
    assert logs.stdout == b"".join(b"tick %d\n" % i for i in range(1, n + 1))
    assert ended - exited < 15, f"follower ended {ended - exited:.1f} s after the exit"
