"""Rotation with max-size/max-file (and compress) keeps what json-file keeps."""

from __future__ import annotations

import pytest

from .e2e_helpers import Docker, assert_same_logs

pytestmark = pytest.mark.e2e

# ~1 KB per record, so a 10k file holds 11 records whatever the timestamp lengths are
# (json-file's record size varies by a few bytes with the time's trailing zeros).
# stdout only: dockerd copies stdout and stderr in two goroutines, so the order of
# records of the two streams -- and with it which ones rotation drops -- may vary.
N = 120
CMD = (
    "pad=$(head -c 900 /dev/zero | tr '\\0' x); i=1; "
    f"while [ $i -le {N} ]; do printf '%05d %s\\n' $i \"$pad\"; i=$((i+1)); done"
)


@pytest.mark.parametrize(
    "opts",
    [
        {"max-size": "10k", "max-file": "3"},
        {"max-size": "10k", "max-file": "3", "compress": "true"},
        {"max-size": "10k", "max-file": "1"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_rotation_matches_json_file(docker: Docker, opts: dict[str, str]) -> None:
    pair = docker.run_pair(CMD, log_opts=opts)
    ref, got = (docker.logs(c) for c in pair)
    # The reference really rotated: the first lines are gone, the last ones are there.
    assert not ref.stdout.startswith(b"00001 ")
    assert ref.stdout.endswith(b"%05d " % N + b"x" * 900 + b"\n")
    assert_same_logs(ref, got, f"docker logs with {opts}")
    for tail in ("1", "5", "25", "1000"):
        ref, got = (docker.logs(c, "--tail", tail) for c in pair)
        assert_same_logs(ref, got, f"docker logs --tail {tail} with {opts}")


# Records of 1,002 to 1,012 bytes (a 939-byte line plus the record's JSON; the time's
# length varies): a "10k" file holds 10 of them when "10k" is 10,000 bytes, as
# json-file reads it, and 11 when it is 10,240. So which lines are kept shows how
# max-size was read.
DECIMAL_CMD = (
    "pad=$(head -c 933 /dev/zero | tr '\\0' x); i=1; "
    "while [ $i -le 60 ]; do printf '%05d %s\\n' $i \"$pad\"; i=$((i+1)); done"
)


def test_max_size_units_are_decimal_like_json_file(docker: Docker) -> None:
    opts = {"max-size": "10k", "max-file": "2"}
    pair = docker.run_pair(DECIMAL_CMD, log_opts=opts)
    ref, got = (docker.logs(c) for c in pair)
    # json-file kept whole files of 10 lines: the current one and one rotated.
    assert ref.stdout.count(b"\n") == 20, ref.stdout[:80]
    assert_same_logs(ref, got, f"docker logs with {opts}")
