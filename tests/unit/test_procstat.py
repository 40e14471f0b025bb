"""procstat.py reads another process's memory and CPU time."""

from __future__ import annotations

import subprocess
import sys

from pylog.procstat import read_stat

#: Allocates 64 MiB, burns 0.3 s of CPU, names itself, says so, and waits.
_CHILD = """
import time
b = bytearray(64 << 20)
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
with open("/proc/self/comm", "w") as f:
    f.write(NAME)
print("ok", flush=True)
input()
"""


def _run(name: str) -> None:
    code = f"NAME = {name!r}\n" + _CHILD
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ok\n"
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                assert name.encode() in f.read()
            stat = read_stat(child.pid)
            assert stat is not None
            assert stat.pid == child.pid
            assert stat.cpu_seconds >= 0.25
            assert stat.resident_bytes >= 64 << 20
        finally:
            child.kill()
    assert read_stat(child.pid) is None  # reaped: gone


def test_a_busy_child_shows_its_cpu_time_and_memory() -> None:
    _run("worker")


def test_a_command_name_with_spaces_and_parentheses_is_skipped_correctly() -> None:
    _run("a) (b c 1 2")
