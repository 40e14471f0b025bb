#!/usr/bin/env python3
"""Kafka shipping benchmark (not a test): containers -> pylog -> Kafka.

Starts the test broker (tests/kafka/broker.py), sets the installed plugin's
KAFKA_BROKERS to it (disable, set, enable; put back to local-only at the end),
then for each round runs the same container under json-file, under pylog with
``kafka=false`` (local-only) and under pylog shipping to Kafka:

    yes '<100-byte line>' | head -n LINES

and reports

* container wall time (``docker run -d`` .. ``docker wait``) for json-file and pylog;
* lines/s into Kafka: LINES / (last record's broker append time - first line's log time);
* end-to-end latency p50/p99/max: broker append time - the line's log time (dockerd's
  timestamp, the record's ``time``). The topic is created with
  ``message.timestamp.type=LogAppendTime``, so every record carries the time the
  broker wrote it (with acks=all on one broker, the time it was acknowledged).

A burst that outruns the shipper measures its throughput, and its latency is
mostly queueing. So a paced run follows (``--paced-rate`` lines/s for
``--paced-seconds``), whose latency is the one to quote for steady load.

    scripts/bench_kafka.py [--rounds 3] [--lines 200000] [--paced-rate 5000]

Needs the engine, the busybox image, the installed plugin and Java (for the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kafka"))
sys.path.insert(0, str(REPO / "plugin"))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from bench import LINE, run_container  # noqa: E402 - scripts/bench.py, the same workload
from broker import KafkaBroker  # noqa: E402
from pylog.timefmt import parse_rfc3339  # noqa: E402

DOCKER = os.environ.get("DOCKER", "docker")
PLUGIN = "pylog"


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run([DOCKER, *args], capture_output=True, timeout=900)
    if check and proc.returncode != 0:
        sys.exit(f"docker {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def set_plugin(*env: str) -> None:
    docker("plugin", "disable", "-f", PLUGIN, check=False)
    docker("plugin", "set", PLUGIN, *env)
    docker("plugin", "enable", "--timeout", "0", PLUGIN)


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})]
        )
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, n: int, timeout: float) -> list[tuple[int, int]]:
    """(log time ns, broker append time ms) of the first n records."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20,
    )  # fmt: skip
    await consumer.start()
    out: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                for r in records:
                    out.append((parse_rfc3339(json.loads(r.value)["time"]), r.timestamp))
    finally:
        await consumer.stop()
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--paced-rate", type=int, default=5000, help="lines/s; 0 skips")
    ap.add_argument("--paced-seconds", type=int, default=20)
    args = ap.parse_args()
    paced = None

    with KafkaBroker(heap="1g") as broker:
        set_plugin(f"KAFKA_BROKERS={broker.bootstrap}")
        try:
            run_container(PLUGIN, 1000, "--log-opt", f"kafka-topic=bench-warmup-{uuid.uuid4().hex}")
            rows = []
            for r in range(1, args.rounds + 1):
                json_wall = run_container("json-file", args.lines)
                local_wall = run_container(PLUGIN, args.lines, "--log-opt", "kafka=false")
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                asyncio.run(create_topic(broker.bootstrap, topic))
                pylog_wall = run_container(PLUGIN, args.lines, "--log-opt", f"kafka-topic={topic}")
                got = asyncio.run(read_topic(broker.bootstrap, topic, args.lines, 600))
                if len(got) < args.lines:
                    sys.exit(f"round {r}: only {len(got)} of {args.lines} lines reached Kafka")
                lat = [ack_ms - log_ns / 1e6 for log_ns, ack_ms in got]
                span = (max(a for _, a in got) - min(t for t, _ in got) / 1e6) / 1000
                rows.append((json_wall, pylog_wall, args.lines / span, lat, local_wall))
                print(
                    f"round {r}: json-file {json_wall:.2f}s  pylog local-only {local_wall:.2f}s  "
                    f"pylog+kafka {pylog_wall:.2f}s  "
                    f"kafka {args.lines / span:,.0f} lines/s  latency p50 {pct(lat, 50):.0f} ms "
                    f"p99 {pct(lat, 99):.0f} ms",
                    flush=True,
                )
            if args.paced_rate:
                paced = run_paced(broker, args.paced_rate, args.paced_seconds)
        finally:
            set_plugin("KAFKA_BROKERS=")

    lat_all = [x for row in rows for x in row[3]]
    med = statistics.median
    print(f"\n{args.lines:,} lines of {len(LINE) + 1} bytes, {args.rounds} rounds (medians)")
    print(f"container wall time  json-file {med(r[0] for r in rows):.2f}s   "
          f"pylog local-only {med(r[4] for r in rows):.2f}s   "
          f"pylog+kafka {med(r[1] for r in rows):.2f}s")  # fmt: skip
    print(f"into Kafka           {med(r[2] for r in rows):,.0f} lines/s")
    print(f"latency log->ack     p50 {pct(lat_all, 50):.0f} ms   p99 {pct(lat_all, 99):.0f} ms   "
          f"max {max(lat_all):.0f} ms  (burst: mostly queueing)")  # fmt: skip
    if paced is not None:
        n, rate, lat = paced
        print(f"paced {n:,} lines at {rate:,.0f} lines/s: latency log->ack "
              f"p50 {pct(lat, 50):.0f} ms   p99 {pct(lat, 99):.0f} ms   "
              f"max {max(lat):.0f} ms")  # fmt: skip


def run_paced(broker: KafkaBroker, rate: int, seconds: int) -> tuple[int, float, list[float]]:
    """A container writing ``rate`` lines/s in 20 ms ticks; latency of every line."""
    per_tick = max(1, rate // 50)
    ticks = seconds * 50
    topic = f"bench-paced-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(broker.bootstrap, topic))
    cmd = (
        f"i=0; while [ $i -lt {ticks} ]; do yes '{LINE}' | head -n {per_tick}; "
        "i=$((i+1)); usleep 20000; done"
    )
    wall = run_container(PLUGIN, 0, "--log-opt", f"kafka-topic={topic}", cmd=cmd)
    n = per_tick * ticks
    got = asyncio.run(read_topic(broker.bootstrap, topic, n, 300))
    if len(got) < n:
        sys.exit(f"paced: only {len(got)} of {n} lines reached Kafka")
    return n, n / wall, [ack_ms - log_ns / 1e6 for log_ns, ack_ms in got]


if __name__ == "__main__":
    main()
