#!/usr/bin/env python3
"""Throughput benchmark (not a test): 1,000,000 lines of ~100 bytes through the
`none`, `json-file`, `local` and `pylog` logging drivers.

Each round runs one container per driver, in turn (interleaved, so drift in machine
load hits every driver alike). The time is from `docker run -d` until `docker wait`
returns: dockerd reports the exit only after its log copier has handed every line to
the driver (the file for json-file/local, the FIFO for a plugin). Nothing is attached,
so the client's own copy of the output costs nothing.
Prints the median per driver, its ratio to json-file, and the pylog plugin's CPU
seconds per million lines (its processes' utime + stime from /proc).

    scripts/bench.py [--rounds 3] [--lines 1000000] [--drivers none,json-file,local,pylog]

Needs the engine, the busybox image and the installed plugin (`make bench` does it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

DOCKER = os.environ.get("DOCKER", "docker")
IMAGE = os.environ.get("PYLOG_BUSYBOX_IMAGE", "pylog-test/busybox:latest")
LINE = "pylog-bench " + "x" * 87  # 99 characters + newline = 100 bytes a line


def docker(*args: str) -> str:
    proc = subprocess.run([DOCKER, *args], capture_output=True, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"docker {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def pylog_cpu_seconds() -> float | None:
    """CPU time (user + system) used so far by the pylog plugin's processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    found = False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pylog.server" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found = True
        total += (int(fields[11]) + int(fields[12])) / tick
    return total if found else None


def run_container(driver: str, lines: int, *opts: str, cmd: str | None = None) -> float:
    """Wall time of one container writing ``lines`` lines (or running ``cmd``) under ``driver``."""
    t0 = time.monotonic()
    cid = docker(
        "run", "-d", "--network", "none", "--label", "pylog-bench=1", "--log-driver", driver,
        *opts, IMAGE, "sh", "-c", cmd or f"yes '{LINE}' | head -n {lines}",
    )  # fmt: skip
    code = docker("wait", cid)
    dt = time.monotonic() - t0
    docker("rm", cid)
    if code != "0":
        sys.exit(f"{driver}: container exited {code}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--drivers", default="none,json-file,local,pylog")
    args = ap.parse_args()
    drivers = args.drivers.split(",")

    print(f"{args.lines:,} lines of {len(LINE) + 1} bytes, {args.rounds} rounds", flush=True)
    # A short warm-up run per driver first.
    for d in drivers:
        run_container(d, 1000)
    times: dict[str, list[float]] = {d: [] for d in drivers}
    cpu: list[float] = []
    for r in range(1, args.rounds + 1):
        for d in drivers:
            before = pylog_cpu_seconds() if d == "pylog" else None
            times[d].append(run_container(d, args.lines))
            after = pylog_cpu_seconds() if d == "pylog" else None
            if before is not None and after is not None:
                cpu.append((after - before) * 1_000_000 / args.lines)
        print(f"round {r}: " + "  ".join(f"{d} {times[d][-1]:.2f}s" for d in drivers), flush=True)

    ref = statistics.median(times["json-file"]) if "json-file" in times else None
    print(f"\n{'driver':<10} {'median':>8} {'min':>8} {'max':>8} {'vs json-file':>13}")
    for d in drivers:
        med = statistics.median(times[d])
        ratio = f"{med / ref:.2f}x" if ref else "-"
        print(f"{d:<10} {med:>7.2f}s {min(times[d]):>7.2f}s {max(times[d]):>7.2f}s {ratio:>13}")
    if cpu:
        print(f"\npylog CPU per million lines (median): {statistics.median(cpu):.2f}s")


if __name__ == "__main__":
    main()
