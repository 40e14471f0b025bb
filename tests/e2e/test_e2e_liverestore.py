"""dockerd restarted with live-restore while containers log.

With ``--live-restore`` a dockerd that stops leaves its containers and managed plugins
running. Its log copiers die with it; the plugin's reader of each logging FIFO sees EOF
(dockerd held the only write end), and no StopLogging is sent. The next dockerd
restores each running container and calls StartLogging again for it, with a new FIFO
(moby daemon/daemon.go restore -> containerd Restore -> Container.InitializeStdio ->
StartLogger). Meanwhile the container's output waits in the containerd shim's stdio
pipe, so a busy container blocks until the new dockerd reads it.

Containers under pylog and, side by side, under json-file print numbered lines; dockerd
is restarted in the middle; then every container's `docker logs` must hold its numbers
in order, each at most once. dockerd itself can lose what its copier had read from the
container but not yet handed to the driver when it stopped; json-file, which has no
plugin in between, shows what dockerd loses. pylog must lose nothing more than that
and double nothing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from .e2e_helpers import PLUGIN, Docker, docker_cli, stamped_lines
from .engine_control import dockerd_args, engine, reconfigured_engine, wait_plugin_enabled
from .fault_report import record_fault

pytestmark = pytest.mark.e2e

PAD = "x" * 40
# About 4,000 lines/s: bursts of 100 numbered lines, 20 ms apart, 50,000 lines in all.
FAST_LINES = 50_000
FAST = (
    "i=1; while [ $i -le 49901 ]; do "
    f"seq $i $((i+99)) | sed 's/$/ {PAD}/'; i=$((i+100)); usleep 20000; done"
)
# Ten lines a second for 15 s.
SLOW_LINES = 150
SLOW = f'i=1; while [ $i -le {SLOW_LINES} ]; do echo "$i slow"; i=$((i+1)); usleep 100000; done'


# What dockerd's copier (daemon/logger/copier.go) can hold that it has read from the
# container and not yet given to the driver: its buffer, 16 KiB.
COPIER_BUFFER = 16 * 1024


def numbers(data: bytes) -> list[int]:
    return [int(line.split()[0]) for line in data.splitlines()]


def stamped_numbers(data: bytes) -> list[tuple[float, int]]:
    """(dockerd's timestamp as epoch seconds, number) of each `docker logs -t` line."""
    return [
        (datetime.fromisoformat(ts[:26] + "+00:00").timestamp(), int(text.split()[0]))
        for ts, text in stamped_lines(data)
    ]


def line_bytes(number: int, fast: bool) -> int:
    return len(f"{number} {PAD}\n" if fast else f"{number} slow\n")


def check(got: list[int], n: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(lost, doubled, gaps): gaps as (last number before, first number after)."""
    doubled = len(got) - len(set(got))
    lost = n - len(set(got) & set(range(1, n + 1)))
    gaps = [(a, b) for a, b in zip([0, *got], [*got, n + 1], strict=True) if b != a + 1]
    return lost, doubled, gaps


def test_dockerd_restart_with_live_restore_keeps_every_line(docker: Docker) -> None:
    with reconfigured_engine("--live-restore"):
        assert "--live-restore" in dockerd_args()
        runs = [(d, True) for d in (PLUGIN, PLUGIN, "json-file", "json-file")]
        runs += [(PLUGIN, False), ("json-file", False)]
        cids = [docker.run(d, FAST if fast else SLOW) for d, fast in runs]
        try:
            # Restart while all of them log: once every container has some lines stored.
            deadline = time.monotonic() + 60
            while not all(docker.logs(c, "--tail", "1").stdout for c in cids):
                assert time.monotonic() < deadline, "containers did not start logging"
                time.sleep(0.2)
            before = [numbers(docker.logs(c, "--tail", "1").stdout)[-1] for c in cids]
            t0 = time.monotonic()
            sigterm_at = time.time()
            engine("stop")
            engine("start", "--live-restore")
            wait_plugin_enabled()
            restart_s = time.monotonic() - t0
            assert "--live-restore" in dockerd_args()
            running = [docker.inspect(c, "{{.State.Running}}") for c in cids]
            with ThreadPoolExecutor(len(cids)) as ex:
                codes = list(ex.map(lambda c: docker.wait(c, timeout=180), cids))
            assert codes == [0] * len(cids)
            logs = [stamped_numbers(docker.logs(c, "--timestamps").stdout) for c in cids]
        finally:
            docker_cli(["rm", "-f", *cids], check=False, timeout=120)

    report: list[str] = []
    figures: dict[str, list[int]] = {PLUGIN: [0, 0, 0, 0], "json-file": [0, 0, 0, 0]}
    problems: list[str] = []
    for (driver, fast), at_stop, got in zip(runs, before, logs, strict=True):
        n = FAST_LINES if fast else SLOW_LINES
        nums = [x for _, x in got]
        stamp = dict((x, t) for t, x in got)
        lost, dup, gaps = check(nums, n)
        gap_text = [
            f"{a + 1}..{b - 1} (line {a} read {stamp.get(a, 0) - sigterm_at:+.3f} s from "
            f"SIGTERM, line {b} {stamp.get(b, 0) - sigterm_at:+.3f} s)"
            for a, b in gaps
        ]
        line = (
            f"{driver} {'fast' if fast else 'slow'} (at {at_stop} when stopped): "
            f"lost {lost}, doubled {dup}, gaps {gap_text}"
        )
        report.append(line)
        figures[driver] = [
            f + v for f, v in zip(figures[driver], (n, len(nums), lost, dup), strict=True)
        ]
        if driver != PLUGIN:
            continue
        # pylog: never a line twice, never out of order.
        if dup or any(b <= a for a, b in gaps):
            problems.append(line)
        # At most what dockerd's copier held when it stopped: one gap, after the lines
        # already stored before the stop, no bigger than the copier's buffer.
        if len(gaps) > 1 or any(
            a < at_stop or sum(line_bytes(k, fast) for k in range(a + 1, b)) > COPIER_BUFFER
            for a, b in gaps
        ):
            problems.append(line)
    print("\n" + "\n".join(report))
    assert running == ["true"] * len(cids), f"not running after the restart: {running}"
    written, stored, lost, dup = figures[PLUGIN]
    ref = figures["json-file"]
    record_fault(
        "dockerd restarted with live-restore while containers log",
        written=written,
        stored=stored,
        lost=lost,
        duplicated=dup,
        note=(
            "2 containers at ~4000 lines/s and one at 10 lines/s per driver; dockerd "
            f"stopped and back in {restart_s:.1f} s; json-file beside it: {ref[0]} written, "
            f"lost {ref[2]}, doubled {ref[3]}"
        ),
    )
    assert not problems, "\n".join(report)
