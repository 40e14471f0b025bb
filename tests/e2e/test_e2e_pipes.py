"""pylog with no pipe quota left: the FIFO and the peek pipe cannot grow.

The kernel caps the pipe buffers of a user (``fs.pipe-user-pages-soft``), and a
managed plugin lacks CAP_SYS_RESOURCE, so on a busy host pylog cannot enlarge its
pipes and the peek pipe it creates gets two pages (8 KiB). Lines of 20,000 bytes
reach pylog as 16 KiB frames, larger than that peek pipe: every one of them must
still be stored, and the container must exit.

The test lowers the sysctl to one page for the host's whole uid 0, which
processes with CAP_SYS_RESOURCE (dockerd, runc, this test) ignore, and always
restores it.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .e2e_helpers import PLUGIN, Docker, docker_cli

pytestmark = pytest.mark.e2e

SOFT_LIMIT = Path("/proc/sys/fs/pipe-user-pages-soft")
LINES = 200
WIDTH = 20_000
# Each line is distinct: its number, padded, then filler up to WIDTH bytes.
CMD = (
    f"i=1; while [ $i -le {LINES} ]; do "
    f"printf '%06d' $i; head -c {WIDTH - 6} /dev/zero | tr '\\0' x; echo; "
    "i=$((i+1)); done"
)
EXPECTED = b"".join(b"%06d" % i + b"x" * (WIDTH - 6) + b"\n" for i in range(1, LINES + 1))


SAVED_LIMIT = SOFT_LIMIT.read_text()


@pytest.fixture
def no_pipe_quota() -> Iterator[None]:
    SOFT_LIMIT.write_text("1\n")
    try:
        yield
    finally:
        SOFT_LIMIT.write_text(SAVED_LIMIT)


@pytest.mark.timeout(300)
def test_long_lines_are_stored_when_pipes_cannot_grow(docker: Docker, no_pipe_quota: None) -> None:
    cid = docker.run(PLUGIN, CMD)
    try:
        try:
            code = docker.wait(cid, timeout=60)
        except subprocess.TimeoutExpired:
            _restart_plugin()
            pytest.fail("the container did not exit within 60 s: its log writes block")
        assert code == 0
        got = docker.logs(cid, timeout=60).stdout
        assert got.count(b"\n") == LINES
        assert got == EXPECTED
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            docker_cli(["rm", "-f", cid], check=False, timeout=60)


def _restart_plugin() -> None:
    """A pylog stuck on a FIFO keeps its container (and `docker rm -f`) blocked:
    restarted with the quota restored, it reattaches the FIFO and drains it."""
    SOFT_LIMIT.write_text(SAVED_LIMIT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        docker_cli(["plugin", "disable", "-f", PLUGIN], check=False, timeout=60)
        docker_cli(["plugin", "enable", "--timeout", "0", PLUGIN], check=False, timeout=60)
