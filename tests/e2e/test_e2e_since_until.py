"""`docker logs --since/--until`: cut points are taken from each container's own
`--timestamps` output, so pylog and json-file are asked for the same lines."""

from __future__ import annotations

import pytest

from .e2e_helpers import Docker, assert_same_logs, stamped_lines

pytestmark = pytest.mark.e2e

N = 10
# Line i on stdout, "err i" on stderr 0.1 s later, then a pause: every line has its own
# time, and "err i" lies strictly between line i and line i+1. (Without the pause the
# two streams' times race: dockerd stamps each stream in its own goroutine.)
CMD = f'for i in $(seq 1 {N}); do echo "line $i"; sleep 0.1; echo "err $i" >&2; sleep 0.2; done'


@pytest.fixture(scope="module")
def pair(docker: Docker) -> tuple[str, str]:
    return docker.run_pair(CMD)


def stdout_times(docker: Docker, cid: str) -> list[str]:
    lines = stamped_lines(docker.logs(cid, "--timestamps").stdout)
    assert [text for _, text in lines] == [b"line %d" % i for i in range(1, N + 1)]
    times = [ts for ts, _ in lines]
    assert len(set(times)) == N, "stdout lines must have distinct times"
    return times


def expected(since: int | None, until: int | None) -> tuple[bytes, bytes]:
    """Lines k..j of stdout, and the stderr lines that fall between those times."""
    lo = since or 1
    hi = until or N
    out = b"".join(b"line %d\n" % i for i in range(lo, hi + 1))
    # "err i" comes after "line i": it is in when line i is in, except past --until.
    err_hi = hi - 1 if until else hi
    err = b"".join(b"err %d\n" % i for i in range(lo, err_hi + 1))
    return out, err


@pytest.mark.parametrize(
    ("since", "until"),
    [(3, None), (None, 7), (3, 7), (5, 5), (1, N), (N, None)],
    ids=lambda v: "-" if v is None else str(v),
)
def test_since_until(
    docker: Docker, pair: tuple[str, str], since: int | None, until: int | None
) -> None:
    results = []
    for cid in pair:
        times = stdout_times(docker, cid)
        flags = []
        if since is not None:
            flags += ["--since", times[since - 1]]
        if until is not None:
            flags += ["--until", times[until - 1]]
        results.append(docker.logs(cid, *flags))
    ref, got = results
    out, err = expected(since, until)
    assert (ref.stdout, ref.stderr) == (out, err), "json-file itself: unexpected cut"
    assert_same_logs(ref, got, f"docker logs --since line {since} --until line {until}")


def test_since_with_tail_and_timestamps(docker: Docker, pair: tuple[str, str]) -> None:
    """--tail picks the last records first, --since then filters them (json-file)."""
    results = []
    for cid in pair:
        times = stdout_times(docker, cid)
        logs = docker.logs(cid, "--since", times[3], "--tail", "4", "--timestamps")
        results.append([[t for _, t in stamped_lines(s)] for s in (logs.stdout, logs.stderr)])
    assert results[0] == results[1]
    assert results[0] == [[b"line 9", b"line 10"], [b"err 9", b"err 10"]]
