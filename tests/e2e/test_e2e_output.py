"""`docker logs` through pylog returns exactly what json-file returns for the same output:
long (split) lines, a last line without newline, stdout/stderr interleaved, unicode,
blank lines, many lines; plain, --tail and --timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from .e2e_helpers import Docker, Logs, assert_same_logs, split_timestamps

pytestmark = pytest.mark.e2e


def fill(n: int, ch: str, err: bool = False) -> str:
    """A line of n times ch (busybox: head + tr), then a newline, on stdout or stderr."""
    redir = " >&2" if err else ""
    return f"head -c {n} /dev/zero | tr '\\0' '{ch}'{redir}; echo{redir}"


# dockerd copies stdout and stderr in two goroutines: writes to the two streams close
# in time may reach the driver in either order, and --tail counts records of both
# streams together. So the last 63 records (from "leading and trailing" on) are written
# 20 ms apart, after a pause, and --tail up to 63 is deterministic and independent of
# how lines above 16 KiB, which sit above them, are split into records.
VARIED = "\n".join(
    [
        "echo first line",
        "echo first err >&2",
        "echo; echo",
        r"printf 'tab\there, carriage\rreturn, backslash \\ quote \" end\n'",
        "printf 'unicode: h\\303\\251llo w\\303\\266rld \\342\\234\\223 "
        "\\346\\227\\245\\346\\234\\254 \\360\\237\\216\\211\\n'",
        "echo 'stderr ünïcödé ✓ 日本語 🎉' >&2",
        fill(40960, "a"),
        fill(16384, "b"),
        fill(16383, "c"),
        fill(16385, "d"),
        fill(32768, "e"),
        fill(20000, "f", err=True),
        fill(16384, "g", err=True),
        "echo",
        "sleep 0.2",
        "echo '   leading and trailing spaces   '; usleep 20000",
        "echo >&2; usleep 20000",
        'for i in $(seq 1 30); do echo "out $i"; usleep 20000;',
        '  echo "err $i" >&2; usleep 20000; done',
        "printf 'last line without newline'",
    ]
)


@pytest.fixture(scope="module")
def varied(docker: Docker) -> tuple[str, str]:
    return docker.run_pair(VARIED)


def test_varied_plain(docker: Docker, varied: tuple[str, str]) -> None:
    ref, got = (docker.logs(c) for c in varied)
    # The reference itself must show what the test is about.
    assert b"a" * 40960 + b"\n" in ref.stdout
    assert b"\n" + b"b" * 16384 + b"\n" in ref.stdout
    assert ref.stdout.endswith(b"out 30\nlast line without newline")
    assert b"\n\n\n" in ref.stdout
    assert ref.stderr.startswith(b"first err\n")
    assert_same_logs(ref, got, "docker logs")


@pytest.mark.parametrize("tail", ["0", "1", "2", "7", "63", "100000", "all"])
def test_varied_tail(docker: Docker, varied: tuple[str, str], tail: str) -> None:
    ref, got = (docker.logs(c, "--tail", tail) for c in varied)
    if tail == "0":
        assert ref == Logs(b"", b"")
    assert_same_logs(ref, got, f"docker logs --tail {tail}")


@pytest.mark.parametrize("flags", [["--timestamps"], ["--timestamps", "--tail", "5"]])
def test_varied_timestamps(docker: Docker, varied: tuple[str, str], flags: list[str]) -> None:
    """Timestamps differ between the two containers: the text around them must match,
    and every timestamp must have the same format (RFC 3339, 9 fraction digits, Z)."""
    ref, got = (docker.logs(c, *flags) for c in varied)
    started = docker.inspect(varied[1], "{{.State.StartedAt}}")
    finished = docker.inspect(varied[1], "{{.State.FinishedAt}}")
    for stream in ("stdout", "stderr"):
        ref_ts, ref_text = split_timestamps(getattr(ref, stream))
        got_ts, got_text = split_timestamps(getattr(got, stream))
        assert len(ref_ts) > 0
        assert ref_text == got_text, f"{stream}: text after the timestamps differs"
        assert len(ref_ts) == len(got_ts)
        # pylog's own times: ordered, and within the container's run (+- 1 s).
        raw = [t.decode() for t in got_ts]  # fixed width: text order is time order
        assert raw == sorted(raw), f"{stream}: timestamps out of order"
        times = [_second(t) for t in raw]
        one = timedelta(seconds=1)
        assert _second(started) - one <= times[0], (times[0], started)
        assert times[-1] <= _second(finished) + one, (times[-1], finished)


def _second(ts: str) -> datetime:
    """An RFC 3339 UTC time from docker, to the second."""
    return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")


def test_tail_counts_records_of_long_lines_like_json_file(docker: Docker) -> None:
    """json-file stores a line above 16 KiB as several records (16 KiB chunks), and
    --tail counts records: --tail 2 after a 40 KiB line gives its last chunk."""
    cmd = "echo before; " + fill(40960, "x") + "; echo after"
    pair = docker.run_pair(cmd)
    for tail in ("1", "2", "3", "4", "5"):
        ref, got = (docker.logs(c, "--tail", tail) for c in pair)
        assert_same_logs(ref, got, f"docker logs --tail {tail} after a 40 KiB line")
    ref = docker.logs(pair[0], "--tail", "2")
    assert ref.stdout == b"x" * (40960 - 2 * 16384) + b"\nafter\n"


def test_many_lines(docker: Docker) -> None:
    cmd = "seq 1 100000; sleep 1; seq 1 2000 >&2"
    pair = docker.run_pair(cmd)
    ref, got = (docker.logs(c) for c in pair)
    assert ref.stdout == b"".join(b"%d\n" % i for i in range(1, 100001))
    assert_same_logs(ref, got, "docker logs of 100,000 lines")
    for tail in ("1", "1000", "99999"):
        ref, got = (docker.logs(c, "--tail", tail) for c in pair)
        assert_same_logs(ref, got, f"docker logs --tail {tail} of 100,000 lines")
