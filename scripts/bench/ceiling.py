"""The Kafka ceiling: Kafka's own producer benchmark (``ProducerPerformance``, the
class behind ``kafka-producer-perf-test.sh``) on the machine's Java, against the
bench's broker, with pylog's producer settings and records the size of pylog's.

It answers "how fast could any producer on this machine get pylog's records
acknowledged by this broker", so pylog+kafka's acknowledged lines/s can be read as
a fraction of what is possible here rather than as an absolute number.

The records are pylog's own values (``--payload-file``: ProducerPerformance picks
one of the file's payloads at random for every record), taken from a topic a
pylog+kafka container wrote: its random ``--record-size`` payloads barely compress
under lz4 where pylog's JSON does, so a ceiling of random records errs low. The
random-payload ceiling can still be run beside it (``--record-size``), to show that
difference.

The jars (``kafka-tools`` and its classpath) come from Maven Central through
``scripts/kafka/fetch.sh tools``, cached beside the broker's.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka.broker import java_binary
from pylog.config import KafkaSettings

from . import engine

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "scripts" / "kafka" / "fetch.sh"
MAIN = "org.apache.kafka.tools.ProducerPerformance"

# The final summary, e.g. "1000000 records sent, 412371.1 records/sec (45.21 MB/sec),
# 52.31 ms avg latency, 410.00 ms max latency, 48 ms 50th, 95 ms 95th, 120 ms 99th,
# 380 ms 99.9th." The progress lines every 5 s have no percentiles.
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


class CeilingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Summary:
    records: int
    records_per_s: float
    mb_per_s: float
    avg_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def parse_summary(output: str) -> Summary:
    """The final summary line of ProducerPerformance's stdout (the last one that
    carries percentiles: the periodic progress lines have none)."""
    found = list(_SUMMARY.finditer(output))
    if not found:
        raise CeilingError(f"no ProducerPerformance summary in: {output[-500:]!r}")
    m = found[-1]
    return Summary(
        records=int(m["records"]), records_per_s=float(m["rps"]), mb_per_s=float(m["mbps"]),
        avg_ms=float(m["avg"]), max_ms=float(m["max"]), p50_ms=float(m["p50"]),
        p95_ms=float(m["p95"]), p99_ms=float(m["p99"]),
    )  # fmt: skip


def plugin_env(inspect_json: str) -> dict[str, str]:
    """The plugin's env settings from ``docker plugin inspect -f '{{json .Settings.Env}}'``
    (a JSON list of ``NAME=value``)."""
    out: dict[str, str] = {}
    for item in json.loads(inspect_json) or []:
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


def producer_props(settings: KafkaSettings, bootstrap: str) -> list[str]:
    """ProducerPerformance's producer properties for pylog's Kafka settings: the same
    acks, compression, linger, batch size and idempotence as the plugin's producer."""
    return [
        f"bootstrap.servers={bootstrap}",
        f"acks={settings.acks}",
        f"compression.type={settings.compression}",
        f"linger.ms={settings.linger_ms}",
        f"batch.size={settings.batch_size}",
        f"enable.idempotence={str(settings.idempotence).lower()}",
    ]


def installed_settings() -> KafkaSettings:
    """The installed plugin's Kafka settings, read from its env as dockerd has it
    (config.json's defaults plus any ``docker plugin set``)."""
    raw = engine.docker("plugin", "inspect", "-f", "{{json .Settings.Env}}", engine.PLUGIN)
    return KafkaSettings.from_env(plugin_env(raw))


#: ProducerPerformance's default ``--payload-delimiter``: one payload per line.
PAYLOAD_DELIMITER = b"\n"


def payload_file(values: Sequence[bytes]) -> bytes:
    """The ``--payload-file`` holding ``values``, one per line. ProducerPerformance
    reads it as UTF-8 and splits it at the delimiter, so a value must be UTF-8,
    non-empty and without a raw newline (pylog's are one-line JSON)."""
    if not values:
        raise CeilingError("no payloads for the payload file")
    for v in values:
        if not v or PAYLOAD_DELIMITER in v:
            raise CeilingError(f"payload empty or with a raw newline: {v[:80]!r}")
        try:
            v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CeilingError(f"payload is not UTF-8: {v[:80]!r}") from e
    return PAYLOAD_DELIMITER.join(values) + PAYLOAD_DELIMITER


@dataclass(frozen=True)
class Payload:
    """What ProducerPerformance sends: records picked from a payload file, or (with
    ``file`` None) random letters of ``record_size`` bytes."""

    record_size: int
    file: Path | None = None

    def args(self) -> list[str]:
        if self.file is not None:
            return ["--payload-file", str(self.file)]
        return ["--record-size", str(self.record_size)]


def command(libs: Path, topic: str, records: int, payload: Payload,
            props: Sequence[str]) -> list[str]:  # fmt: skip
    return [
        java_binary(), "-Xmx512m", "-cp", f"{libs}/*", MAIN,
        "--topic", topic, "--num-records", str(records), *payload.args(),
        "--throughput", "-1", "--command-property", *props,
    ]  # fmt: skip


def fetch_tools() -> Path:
    proc = subprocess.run(["bash", str(FETCH), "tools"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise CeilingError(f"{FETCH} tools failed: {proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run(libs: Path, topic: str, records: int, payload: Payload,
        props: Sequence[str], env: Mapping[str, str] | None = None) -> Summary:  # fmt: skip
    proc = subprocess.run(command(libs, topic, records, payload, props),
                          capture_output=True, text=True, timeout=900, env=env,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise CeilingError(f"ProducerPerformance exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout)[-2000:]}")  # fmt: skip
    return parse_summary(proc.stdout)
