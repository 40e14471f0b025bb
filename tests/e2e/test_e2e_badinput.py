"""Bad input through the real engine: huge lines, invalid UTF-8, NUL bytes, a container
that exits mid-line. Each is compared byte for byte with Docker's json-file driver
running the same command."""

from __future__ import annotations

import pytest

from .e2e_helpers import Docker, assert_same_logs
from .fault_report import record_fault

pytestmark = pytest.mark.e2e


def fill(n: int, ch: str, newline: bool = True) -> str:
    return f"head -c {n} /dev/zero | tr '\\0' '{ch}'" + ("; echo" if newline else "")


CASES = {
    "1 MiB line": ("echo before; " + fill(1 << 20, "a") + "; echo after", 1 << 20),
    "10 MiB line": ("echo before; " + fill(10 << 20, "b") + "; echo after", 10 << 20),
    "invalid UTF-8 and NUL": (
        # lone continuation byte, truncated 2- and 3-byte sequences, overlong NUL,
        # 0xff, a surrogate, NUL bytes, and valid text around them; on both streams.
        r"printf 'a\200b\n\303\n\342\202\n\300\200\n\377\376x\n\355\240\200\n';"
        r"printf 'nul\000in\000the\000middle\n\000\n';"
        r"printf 'err \377\000 \303\251\n' >&2;"
        # dockerd copies stdout and stderr in two goroutines: a pause keeps the order of
        # the last two records, which --tail 1 depends on, deterministic.
        r"sleep 0.3; printf 'ok h\303\251llo\n'",
        None,
    ),
    "exits mid-line": ("echo whole; printf 'unfinished'", None),
    "exits mid long line": ("echo whole; " + fill(50000, "u", newline=False), 50000),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_like_json_file(docker: Docker, case: str) -> None:
    cmd, long_line = CASES[case]
    pair = docker.run_pair(cmd, timeout=300)
    ref, got = (docker.logs(c, timeout=300) for c in pair)
    # The reference shows what the case is about.
    if long_line:
        assert ref.stdout.count(b"\n") <= 3
        assert len(ref.stdout) >= long_line
    if case == "invalid UTF-8 and NUL":
        assert b"\x00" in ref.stdout and "\ufffd".encode() in ref.stdout
        assert ref.stderr
    if case.startswith("exits mid"):
        assert not ref.stdout.endswith(b"\n")
    lines_ref = ref.stdout.count(b"\n") + ref.stderr.count(b"\n")
    lines_got = got.stdout.count(b"\n") + got.stderr.count(b"\n")
    record_fault(
        f"bad input: {case}",
        written=lines_ref,
        stored=lines_got,
        lost=max(0, lines_ref - lines_got),
        duplicated=max(0, lines_got - lines_ref),
        note="byte-identical to json-file" if ref == got else "DIFFERS from json-file",
    )
    assert_same_logs(ref, got, f"docker logs, {case}")
    # --tail 1 too: the last record of a chunked or unfinished line.
    ref1, got1 = (docker.logs(c, "--tail", "1", timeout=300) for c in pair)
    assert_same_logs(ref1, got1, f"docker logs --tail 1, {case}")
