"""Prometheus metrics and the status report, rendered from a :class:`~.snapshot.Snapshot`.

Nothing here runs on the ingest or shipping path: the drivers and shippers keep
plain integer counters, the service copies them into a snapshot when ``/metrics``
is scraped or ``/status`` asked, and :class:`PylogCollector` turns that into
metric families. This module imports nothing of the service, the drivers or the
shippers: the snapshot is all it sees. Labels are the short container ID and
the container's name, and for Kafka producers their broker list; no other
setting, option or env value is exported, so no secret can leak. Producers
count per batch.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from . import __version__
from .snapshot import ProducerCounters, Snapshot

#: The classic text format, what generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ["container_id", "container_name"]
#: The shipping families' labels: ``log`` is ``stdout`` for a container's own log
#: (stdout/stderr) and the declared name for a declared file log. Queries that
#: sum by container (the dashboards, the alerts) read on unchanged.
SHIP_LABELS = [*LABELS, "log"]
STDOUT_LOG = "stdout"


@dataclass
class _Ingest:
    name: str
    lines_received: int = 0
    bytes_received: int = 0
    lines_stored: int = 0
    bytes_stored: int = 0
    dropped_store: int = 0
    frame_errors: dict[str, int] = field(
        default_factory=lambda: {"corrupt": 0, "oversize": 0, "truncated": 0}
    )
    frame_skipped_bytes: int = 0


def _name(raw: str) -> str:
    return raw.lstrip("/")


class PylogCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot()
        yield from self._ingest(snap)
        yield from _file_logs(snap)
        yield from self._shipping(snap)

    def _ingest(self, snap: Snapshot) -> Iterator[Metric]:
        per: dict[str, _Ingest] = {}
        for d in snap.fifos:
            c = per.setdefault(d.container_id, _Ingest(_name(d.container_name)))
            c.lines_received += d.lines_received
            c.bytes_received += d.bytes_received
            c.lines_stored += d.lines_stored
            c.bytes_stored += d.bytes_stored
            c.dropped_store += d.lines_dropped_store
            for kind in c.frame_errors:
                c.frame_errors[kind] += d.frame_errors[kind]
            c.frame_skipped_bytes += d.frame_skipped_bytes

        families = {
            "lines_received": CounterMetricFamily(
                "pylog_lines_received", "Lines read from the container's FIFO.", labels=LABELS
            ),
            "bytes_received": CounterMetricFamily(
                "pylog_bytes_received", "Bytes of log lines read from the FIFO.", labels=LABELS
            ),
            "lines_stored": CounterMetricFamily(
                "pylog_lines_stored", "Lines written to the local log.", labels=LABELS
            ),
            "bytes_stored": CounterMetricFamily(
                "pylog_bytes_stored", "Bytes written to the local log.", labels=LABELS
            ),
        }
        dropped = CounterMetricFamily(
            "pylog_lines_dropped",
            "Lines read but not stored, by reason.",
            labels=[*LABELS, "reason"],
        )
        frame_errors = CounterMetricFamily(
            "pylog_frame_errors",
            "Frames from dockerd that could not be decoded, by kind.",
            labels=[*LABELS, "kind"],
        )
        skipped = CounterMetricFamily(
            "pylog_frame_skipped_bytes",
            "Bytes from dockerd thrown away: bodies of corrupt frames, the rest of a "
            "stream cut mid-frame, and bytes skipped to find the next frame.",
            labels=LABELS,
        )
        for cid, c in sorted(per.items()):
            labels = [cid[:12], c.name]
            families["lines_received"].add_metric(labels, c.lines_received)
            families["bytes_received"].add_metric(labels, c.bytes_received)
            families["lines_stored"].add_metric(labels, c.lines_stored)
            families["bytes_stored"].add_metric(labels, c.bytes_stored)
            dropped.add_metric([*labels, "store_refused"], c.dropped_store)
            for kind, n in c.frame_errors.items():
                frame_errors.add_metric([*labels, kind], n)
            skipped.add_metric(labels, c.frame_skipped_bytes)
        yield from families.values()
        yield dropped
        yield frame_errors
        yield skipped
        yield GaugeMetricFamily(
            "pylog_containers_active", "Containers being logged now.", value=len(per)
        )
        yield GaugeMetricFamily(
            "pylog_fifos_active", "FIFOs being read now.", value=len(snap.fifos)
        )
        yield CounterMetricFamily(
            "pylog_fifos_reattached",
            "FIFOs of a previous pylog process read again at startup.",
            value=snap.fifos_reattached,
        )
        yield CounterMetricFamily(
            "pylog_store_damaged_files",
            "Compressed log files found cut short or corrupt (read up to the damage).",
            value=snap.damaged_files,
        )
        yield GaugeMetricFamily(
            "pylog_shipping_processes",
            "Shipping processes running now (0 until a container is shipped).",
            value=snap.shipping_processes,
        )
        yield CounterMetricFamily(
            "pylog_shipping_process_restarts",
            "Shipping processes restarted after they died.",
            value=snap.shipping_restarts,
        )
        memory = GaugeMetricFamily(
            "pylog_shipping_process_resident_memory_bytes",
            "Resident memory of each shipping process.",
            labels=["process"],
        )
        cpu = CounterMetricFamily(
            "pylog_shipping_process_cpu_seconds",
            "User and system CPU time of each shipping process (since it started).",
            labels=["process"],
        )
        for index, st in sorted(snap.shipping_stats.items()):
            memory.add_metric([str(index)], st.resident_bytes)
            cpu.add_metric([str(index)], st.cpu_seconds)
        yield memory
        yield cpu

    def _shipping(self, snap: Snapshot) -> Iterator[Metric]:
        names = {d.container_id: _name(d.container_name) for d in snap.fifos}
        shipped = CounterMetricFamily(
            "pylog_ship_lines_acked",
            "Lines Kafka acknowledged (since this shipper started).",
            labels=SHIP_LABELS,
        )
        rejected = CounterMetricFamily(
            "pylog_ship_lines_rejected",
            "Lines the broker can never accept (too large), dropped.",
            labels=SHIP_LABELS,
        )
        lost = CounterMetricFamily(
            "pylog_ship_lines_lost_rotation",
            "Lines rotation deleted before they were shipped.",
            labels=SHIP_LABELS,
        )
        abandoned = CounterMetricFamily(
            "pylog_ship_lines_abandoned",
            "Lines of a stopped container given up unshipped after KAFKA_BACKLOG_MAX_AGE.",
            labels=SHIP_LABELS,
        )
        for ab in snap.abandoned:
            abandoned.add_metric(
                [
                    ab.container_id[:12],
                    names.get(ab.container_id) or ab.stored_name,
                    ab.log_name or STDOUT_LOG,
                ],
                ab.lines,
            )
        retries = CounterMetricFamily(
            "pylog_ship_retries",
            "Delivery failures retried from the acked position.",
            labels=SHIP_LABELS,
        )
        backlog = GaugeMetricFamily(
            "pylog_ship_backlog_bytes",
            "Bytes of the current log file not yet acknowledged by Kafka "
            "(the whole file while rotated files are left, see pylog_ship_backlog_files).",
            labels=SHIP_LABELS,
        )
        backlog_f = GaugeMetricFamily(
            "pylog_ship_backlog_files",
            "Rotated log files not yet fully acknowledged by Kafka.",
            labels=SHIP_LABELS,
        )
        shippers = snap.shippers
        for sh in sorted(shippers, key=lambda s: (s.container_id, s.log_name)):
            name = names.get(sh.container_id)
            if name is None:
                name = sh.stored_name
            labels = [sh.container_id[:12], name, sh.log_name or STDOUT_LOG]
            shipped.add_metric(labels, sh.lines_acked)
            rejected.add_metric(labels, sh.lines_rejected)
            lost.add_metric(labels, sh.lines_lost_rotation)
            retries.add_metric(labels, sh.retries)
            backlog.add_metric(labels, sh.backlog_bytes)
            backlog_f.add_metric(labels, sh.backlog_files)
        yield from (shipped, rejected, lost, abandoned, retries, backlog, backlog_f)
        yield from _producers(snap.producers)
        yield GaugeMetricFamily(
            "pylog_ship_shippers_active",
            "Logs being shipped to Kafka now (a container's own, and each declared file log).",
            value=len(shippers),
        )


def _file_logs(snap: Snapshot) -> Iterator[Metric]:
    """Per declared file log (``pylog.logs.<name>=/path``) of each container collected."""
    labels = [*LABELS, "log"]
    lines = CounterMetricFamily(
        "pylog_file_lines",
        "Lines of a declared log file stored (a piece of a line over 16 KiB counts as one).",
        labels=labels,
    )
    size = CounterMetricFamily(
        "pylog_file_bytes", "Bytes of those lines, as read from the files.", labels=labels
    )
    dropped = CounterMetricFamily(
        "pylog_file_lines_dropped",
        "Lines read from a declared log file but refused by the store (disk full).",
        labels=labels,
    )
    files_open = GaugeMetricFamily(
        "pylog_file_files_open", "Files followed now for the declared log.", labels=labels
    )
    skipped = GaugeMetricFamily(
        "pylog_file_files_skipped",
        "Matches of the declared glob's last evaluation not followed, by reason: "
        "not_regular (FIFO, device, socket, directory, unopenable), cap (past 1024 files).",
        labels=[*labels, "reason"],
    )
    truncations = CounterMetricFamily(
        "pylog_file_truncations",
        "Files found shorter than what was read of them (copytruncate): read again from 0.",
        labels=labels,
    )
    rotations = CounterMetricFamily(
        "pylog_file_rotations",
        "Paths found naming a new file (rename and create): the old one read to its end first.",
        labels=labels,
    )
    for f in sorted(snap.file_logs, key=lambda f: (f.container_id, f.log_name)):
        label = [f.container_id[:12], _name(f.container_name), f.log_name]
        lines.add_metric(label, f.lines)
        size.add_metric(label, f.bytes)
        dropped.add_metric(label, f.lines_dropped_store)
        files_open.add_metric(label, f.files_open)
        for reason, n in sorted(f.files_skipped.items()):
            skipped.add_metric([*label, reason], n)
        truncations.add_metric(label, f.truncations)
        rotations.add_metric(label, f.rotations)
    yield from (lines, size, dropped, files_open, skipped, truncations, rotations)


def _producers(producers: list[ProducerCounters]) -> Iterator[Metric]:
    """Per Kafka producer, labelled by its brokers (what names a producer; no credentials)."""
    labels = ["brokers"]
    starts = CounterMetricFamily(
        "pylog_kafka_producer_starts",
        "Kafka producers started (connected) per cluster; more than one means reconnects.",
        labels=labels,
    )
    batches = CounterMetricFamily(
        "pylog_kafka_batches_sent", "Batches handed to the Kafka producer.", labels=labels
    )
    records = CounterMetricFamily(
        "pylog_kafka_records_sent", "Records in the batches handed to the producer.", labels=labels
    )
    acked = CounterMetricFamily(
        "pylog_kafka_records_acked", "Records the broker acknowledged.", labels=labels
    )
    errors = CounterMetricFamily(
        "pylog_kafka_send_errors",
        "Failed producer starts, sends and batch deliveries, by kind "
        "(unavailable, timeout, connection, rejected, broker, cancelled, other).",
        labels=[*labels, "kind"],
    )
    retries = CounterMetricFamily(
        "pylog_kafka_retries",
        "Deliveries retried after a failure (a shipper rewinding to its acknowledged line).",
        labels=labels,
    )
    latency = HistogramMetricFamily(
        "pylog_kafka_delivery_latency_seconds",
        "Per record: from its hand-over to the producer to the broker's acknowledgement.",
        labels=labels,
    )
    in_flight = GaugeMetricFamily(
        "pylog_kafka_batches_in_flight",
        "Batches handed to the producer and not yet acknowledged or failed.",
        labels=labels,
    )
    oldest = GaugeMetricFamily(
        "pylog_kafka_oldest_in_flight_seconds",
        "Age of the oldest batch in flight (0: none). The idempotent producer retries "
        "until the broker takes a batch: a broker outage shows here, not as errors.",
        labels=labels,
    )
    for p in sorted(producers, key=lambda p: p.brokers):
        label = [p.brokers]
        starts.add_metric(label, p.starts)
        batches.add_metric(label, p.batches_sent)
        records.add_metric(label, p.records_sent)
        acked.add_metric(label, p.records_acked)
        for kind, n in p.errors.items():
            errors.add_metric([*label, kind], n)
        retries.add_metric(label, p.retries)
        latency.add_metric(label, p.latency_buckets, p.latency_sum)
        in_flight.add_metric(label, p.batches_in_flight)
        oldest.add_metric(label, p.oldest_in_flight)
    yield from (starts, batches, records, acked, errors, retries, latency, in_flight, oldest)


def make_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own (not the client's global one): pylog's metrics, from a
    snapshot taken at each scrape, and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PylogCollector(snapshot))
    ProcessCollector(namespace="pylog", registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


# -- GET /status ---------------------------------------------------------------------

#: How long the status report waits for a broker's TCP handshake.
PROBE_TIMEOUT = 2.0


def probe_broker(address: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to ``host:port`` succeeds, else why it did not."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def status_report(snap: Snapshot) -> dict[str, Any]:
    """What ``pylog status`` prints: containers being logged and shipped, broker reachability.

    A live container's own log's shipping is its ``shipping``; its declared file logs'
    are in ``file_logs_shipping`` by name (present once one ships). A backlog names its
    ``log`` (``stdout`` for a container's own).

        Like the metrics, it holds no setting that could be a secret: broker addresses and
        topics only.
    """
    per: dict[str, dict[str, Any]] = {}
    for d in snap.fifos:
        c = per.setdefault(
            d.container_id,
            {
                "id": d.container_id,
                "name": _name(d.container_name),
                "fifos": 0,
                "lines_received": 0,
                "lines_stored": 0,
                "bytes_stored": 0,
                "lines_dropped": 0,
                "frame_errors": 0,
                "shipping": None,
            },
        )
        c["fifos"] += 1
        c["lines_received"] += d.lines_received
        c["lines_stored"] += d.lines_stored
        c["bytes_stored"] += d.bytes_stored
        c["lines_dropped"] += d.lines_dropped_store
        c["frame_errors"] += sum(d.frame_errors.values())
    shipping: list[dict[str, Any]] = []
    brokers: set[str] = set(snap.brokers)
    for sh in snap.shippers:
        brokers.update(sh.brokers)
        entry = {
            "topic": sh.topic,
            "brokers": list(sh.brokers),
            "lines_acked": sh.lines_acked,
            "retries": sh.retries,
            "lines_lost_rotation": sh.lines_lost_rotation,
            "backlog_bytes": sh.backlog_bytes,
            "backlog_files": sh.backlog_files,
        }
        live = per.get(sh.container_id)
        if live is None:
            log_name = sh.log_name or STDOUT_LOG
            shipping.append(
                {"id": sh.container_id, "name": sh.stored_name, "log": log_name, **entry}
            )
        elif sh.log_name:
            live.setdefault("file_logs_shipping", {})[sh.log_name] = entry
        else:
            live["shipping"] = entry
    ordered = sorted(brokers)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(ordered)))) as pool:
        errors = list(pool.map(probe_broker, ordered))
    return {
        "status": "ok",
        "version": __version__,
        "containers": sorted(per.values(), key=lambda c: str(c["name"])),
        "backlogs": shipping,
        "kafka": {
            "configured": bool(ordered),
            "brokers": [
                {"address": b, "reachable": err is None, "error": err}
                for b, err in zip(ordered, errors, strict=True)
            ],
        },
        "fifos_reattached": snap.fifos_reattached,
    }
