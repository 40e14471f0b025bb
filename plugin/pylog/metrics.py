"""Prometheus metrics, read from the live counters at scrape time.

Nothing here runs on the ingest or shipping path: the drivers and shippers keep
plain integer counters (``DriverStats``, ``FrameErrors``, ``ShipperStats``) and
:class:`PylogCollector` turns them into metric families when ``/metrics`` is
scraped. Labels are the short container ID and the container's name, and for
Kafka producers their broker list; no other setting, option or env value is
exported, so no secret can leak. Producers count per batch (``ProducerStats``).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from .store.reader import DAMAGE

if TYPE_CHECKING:
    from .service import LoggingService
    from .shipper.producer import ClusterProducer
    from .shipper.shipper import ContainerShipper

#: The classic text format, what generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ["container_id", "container_name"]


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


def _name(raw: str) -> str:
    return raw.lstrip("/")


def backlog_bytes(shipper: ContainerShipper) -> int:
    """Bytes of the log's current file not yet acknowledged by Kafka (0 when caught up).

    When the shipper is still in an older, rotated file, the whole current file counts
    and :func:`backlog_files` says how many rotated files are left too.
    """
    state = shipper.logfile.state()
    acked = shipper.acked
    if acked.generation >= state.generation:
        return max(0, state.size - acked.offset)
    return state.size


def backlog_files(shipper: ContainerShipper) -> int:
    """Rotated files the shipper has not finished yet."""
    state = shipper.logfile.state()
    return max(0, state.generation - shipper.acked.generation)


class PylogCollector(Collector):
    def __init__(self, service: LoggingService) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        yield from self._ingest()
        yield from self._shipping()

    def _ingest(self) -> Iterator[Metric]:
        service = self.service
        drivers = service.drivers()
        per: dict[str, _Ingest] = {}
        for d in drivers:
            cid = d.info.container_id
            c = per.setdefault(cid, _Ingest(_name(d.info.container_name)))
            s = d.stats
            c.lines_received += s.lines_received
            c.bytes_received += s.bytes_received
            c.lines_stored += s.lines_stored
            c.bytes_stored += s.bytes_stored
            c.dropped_store += s.lines_dropped_store
            errors = d.frame_errors
            for kind in c.frame_errors:
                c.frame_errors[kind] += getattr(errors, kind)

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
        for cid, c in sorted(per.items()):
            labels = [cid[:12], c.name]
            families["lines_received"].add_metric(labels, c.lines_received)
            families["bytes_received"].add_metric(labels, c.bytes_received)
            families["lines_stored"].add_metric(labels, c.lines_stored)
            families["bytes_stored"].add_metric(labels, c.bytes_stored)
            dropped.add_metric([*labels, "store_refused"], c.dropped_store)
            for kind, n in c.frame_errors.items():
                frame_errors.add_metric([*labels, kind], n)
        yield from families.values()
        yield dropped
        yield frame_errors
        yield GaugeMetricFamily(
            "pylog_containers_active", "Containers being logged now.", value=len(per)
        )
        yield GaugeMetricFamily("pylog_fifos_active", "FIFOs being read now.", value=len(drivers))
        yield CounterMetricFamily(
            "pylog_fifos_reattached",
            "FIFOs of a previous pylog process read again at startup.",
            value=service.reattached,
        )
        yield CounterMetricFamily(
            "pylog_store_damaged_files",
            "Compressed log files found cut short or corrupt (read up to the damage).",
            value=DAMAGE.files,
        )
        yield CounterMetricFamily(
            "pylog_shipper_rests",
            "Times a shipper stood back because a FIFO was being read flat out.",
            value=service.pressure.rests,
        )

    def _shipping(self) -> Iterator[Metric]:
        service = self.service
        names = {d.info.container_id: _name(d.info.container_name) for d in service.drivers()}
        shipped = CounterMetricFamily(
            "pylog_ship_lines_acked",
            "Lines Kafka acknowledged (since this shipper started).",
            labels=LABELS,
        )
        rejected = CounterMetricFamily(
            "pylog_ship_lines_rejected",
            "Lines the broker can never accept (too large), dropped.",
            labels=LABELS,
        )
        lost = CounterMetricFamily(
            "pylog_ship_lines_lost_rotation",
            "Lines rotation deleted before they were shipped.",
            labels=LABELS,
        )
        abandoned = CounterMetricFamily(
            "pylog_ship_lines_abandoned",
            "Lines of a stopped container given up unshipped after KAFKA_BACKLOG_MAX_AGE.",
            labels=LABELS,
        )
        for sh, count in service.shipping.abandoned():
            abandoned.add_metric(
                [sh.short_id, names.get(sh.container_id) or _stored_name(sh)], count
            )
        retries = CounterMetricFamily(
            "pylog_ship_retries",
            "Delivery failures retried from the acked position.",
            labels=LABELS,
        )
        backlog = GaugeMetricFamily(
            "pylog_ship_backlog_bytes",
            "Bytes of the current log file not yet acknowledged by Kafka "
            "(the whole file while rotated files are left, see pylog_ship_backlog_files).",
            labels=LABELS,
        )
        backlog_f = GaugeMetricFamily(
            "pylog_ship_backlog_files",
            "Rotated log files not yet fully acknowledged by Kafka.",
            labels=LABELS,
        )
        shippers = service.shipping.shippers()
        for sh in sorted(shippers, key=lambda s: s.container_id):
            name = names.get(sh.container_id)
            if name is None:
                name = _stored_name(sh)
            labels = [sh.short_id, name]
            st = sh.stats
            shipped.add_metric(labels, st.lines_acked)
            rejected.add_metric(labels, st.lines_rejected)
            lost.add_metric(labels, st.lines_lost_rotation)
            retries.add_metric(labels, st.retries)
            backlog.add_metric(labels, backlog_bytes(sh))
            backlog_f.add_metric(labels, backlog_files(sh))
        yield from (shipped, rejected, lost, abandoned, retries, backlog, backlog_f)
        yield from _producers(service.shipping.producers())
        yield GaugeMetricFamily(
            "pylog_ship_shippers_active",
            "Containers being shipped to Kafka now.",
            value=len(shippers),
        )


def _producers(producers: list[ClusterProducer]) -> Iterator[Metric]:
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
    now = time.monotonic()  # the Kafka loop's clock
    for p in sorted(producers, key=lambda p: p.describe()):
        label = [p.describe()]
        st = p.stats
        starts.add_metric(label, p.generation)
        batches.add_metric(label, st.batches_sent)
        records.add_metric(label, st.records_sent)
        acked.add_metric(label, st.records_acked)
        for kind, n in list(st.errors.items()):
            errors.add_metric([*label, kind], n)
        retries.add_metric(label, st.retries)
        buckets, total = st.latency.snapshot()
        latency.add_metric(label, buckets, total)
        waiting, age = st.in_flight(now)
        in_flight.add_metric(label, waiting)
        oldest.add_metric(label, age)
    yield from (starts, batches, records, acked, errors, retries, latency, in_flight, oldest)


def _stored_name(shipper: ContainerShipper) -> str:
    try:
        obj = json.loads((shipper.directory / "info.json").read_text())
    except (OSError, ValueError):
        return ""
    name = obj.get("ContainerName") if isinstance(obj, dict) else None
    return _name(name) if isinstance(name, str) else ""


def make_registry(service: LoggingService) -> CollectorRegistry:
    """A registry of its own (not the client's global one): pylog's metrics and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PylogCollector(service))
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


def status_report(service: LoggingService) -> dict[str, Any]:
    """What ``pylog status`` prints: containers being logged and shipped, broker reachability.

    Like the metrics, it holds no setting that could be a secret: broker addresses and
    topics only.
    """
    per: dict[str, dict[str, Any]] = {}
    for d in service.drivers():
        s, e = d.stats, d.frame_errors
        c = per.setdefault(
            d.info.container_id,
            {
                "id": d.info.container_id,
                "name": _name(d.info.container_name),
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
        c["lines_received"] += s.lines_received
        c["lines_stored"] += s.lines_stored
        c["bytes_stored"] += s.bytes_stored
        c["lines_dropped"] += s.lines_dropped_store
        c["frame_errors"] += e.corrupt + e.oversize + e.truncated
    shipping: list[dict[str, Any]] = []
    brokers: set[str] = set(service.settings.kafka.brokers)
    for sh in service.shipping.shippers():
        brokers.update(sh.route.brokers)
        st = sh.stats
        entry = {
            "topic": sh.route.topic,
            "brokers": list(sh.route.brokers),
            "lines_acked": st.lines_acked,
            "retries": st.retries,
            "lines_lost_rotation": st.lines_lost_rotation,
            "backlog_bytes": backlog_bytes(sh),
            "backlog_files": backlog_files(sh),
        }
        live = per.get(sh.container_id)
        if live is not None:
            live["shipping"] = entry
        else:
            shipping.append({"id": sh.container_id, "name": _stored_name(sh), **entry})
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
        "fifos_reattached": service.reattached,
    }
