"""``make bench``: run the workloads through every driver, print the table, and
write it as markdown, JSON and a PNG chart.

    PYTHONPATH=scripts python -m bench [--quick] [--workloads 1m,10c,...|soak] [--rounds N]
                                       [--drivers none,json-file,...] [--out DIR]

Needs the engine, the busybox image and the installed plugin (``make bench`` does
it) and, for ``pylog+kafka`` and ``ceiling``, Java (the broker, and Kafka's
ProducerPerformance). Hold the engine lock while it runs:
``flock /tmp/pylog-e2e.lock make bench``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import engine, report
from .kafka import KafkaBroker, Topics
from .stats import aggregate
from .workloads import ALL_DRIVERS, DEFAULT_WORKLOADS, QUICK_TITLES, WORKLOADS, Config, warm_up

REPO = Path(__file__).resolve().parents[2]


def _git_commit() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return proc.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, 1 round: a smoke run")
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                    help=f"comma-separated, from: {', '.join(WORKLOADS)} (default: all "
                    "but soak, which takes 10+ minutes)")  # fmt: skip
    ap.add_argument("--rounds", type=int, help="rounds for every workload (default: 3 each; "
                    "sweep 2, many 1; --quick 1)")  # fmt: skip
    ap.add_argument("--drivers", default=",".join(ALL_DRIVERS))
    ap.add_argument("--out", type=Path, default=Path("/tmp/pylog-bench"))
    args = ap.parse_args(argv)

    workloads = [w for w in args.workloads.split(",") if w]
    drivers = [d for d in args.drivers.split(",") if d]
    bad = [w for w in workloads if w not in WORKLOADS] + [
        d for d in drivers if d not in ALL_DRIVERS
    ]
    if bad:
        ap.error(f"unknown: {', '.join(bad)}")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    # The plugin under test is built from the tree as it is now (make install ran
    # just before): the commit is read now, not when the report is written.
    commit, start_time = _git_commit(), datetime.now(UTC)
    load = os.getloadavg()[0]
    cfg = Config(quick=args.quick, rounds=args.rounds, drivers=drivers,
                 log=lambda s: print(s, flush=True))  # fmt: skip
    stale = engine.docker("ps", "-aq", "--filter", f"label={engine.LABEL}").split()
    engine.remove(stale)
    # The ceiling needs the broker even when pylog+kafka is not among the drivers.
    need_broker = "pylog+kafka" in drivers or "ceiling" in workloads
    broker = KafkaBroker(heap="1g") if need_broker else None
    try:
        if broker is not None:
            broker.start()
            cfg.topics = Topics(broker.bootstrap)
            print(f"broker at {broker.bootstrap}", flush=True)
        warm_up(cfg)
        for w in workloads:
            print(f"{w}: {WORKLOADS[w][0]}", flush=True)
            WORKLOADS[w][1](cfg)
    finally:
        if broker is not None:
            broker.stop()
        engine.remove(engine.docker("ps", "-aq", "--filter", f"label={engine.LABEL}").split())
        engine.forget_logs()

    rows = aggregate(cfg.samples)
    minutes = (time.monotonic() - started) / 60
    kind = "quick smoke run (--quick)" if args.quick else "full run"
    header = (f"pylog {commit}, {kind}, {start_time:%Y-%m-%d %H:%M} UTC, "
              f"{os.cpu_count()} cores, load average {load:.1f} at start, "
              f"{minutes:.0f} min")  # fmt: skip
    titles = {w: t for w, (t, _) in WORKLOADS.items()}
    if args.quick:
        titles.update(QUICK_TITLES)
    md = report.markdown(rows, titles, header)
    print("\n" + md)
    (args.out / "results.md").write_text(md)
    meta = {"header": header, "quick": args.quick, "workloads": workloads, "drivers": drivers,
            "python": platform.python_version(), "minutes": minutes}  # fmt: skip
    (args.out / "results.json").write_text(report.to_json(cfg.samples, rows, meta))
    try:
        report.chart(rows, args.out / "results.png", header, cfg.samples)
    except ImportError:
        print("matplotlib is missing: no chart (pip install -e '.[bench]')", file=sys.stderr)
    print(f"written: {args.out}/results.md, results.json, results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
