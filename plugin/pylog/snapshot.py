"""The service's counters at one moment, as plain data: what /metrics and /status render.

:meth:`LoggingService.snapshot` fills these in from the live drivers and from
what the shipping processes last reported (:mod:`.shipper.ipc` carries these
same classes across); :mod:`.metrics` turns one into metric
families and the status report. They hold numbers and names only, no object of
the service, so the renderers need nothing of it (and could run in another
process from a copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .procstat import ProcessStat


@dataclass(frozen=True, slots=True)
class IngestCounters:
    """One FIFO being read (a container may have more than one)."""

    container_id: str
    container_name: str
    """As dockerd sends it, with its leading ``/``."""
    lines_received: int
    bytes_received: int
    lines_stored: int
    bytes_stored: int
    lines_dropped_store: int
    """Lines the disk refused."""
    frame_errors: dict[str, int]
    """``corrupt``, ``oversize`` and ``truncated`` frames."""
    frame_skipped_bytes: int
    """Bytes thrown away with those frames or while resynchronising after one: how
    much of the stream was lost, which a count of frames does not say."""


@dataclass(frozen=True, slots=True)
class FileLogCounters:
    """One log file a container declared (``pylog.logs.<name>=/path``), being collected."""

    container_id: str
    container_name: str
    """As dockerd sends it, with its leading ``/``."""
    log_name: str
    lines: int
    """Lines (and 16 KiB pieces of longer ones) stored."""
    bytes: int
    lines_dropped_store: int
    files_open: int
    files_skipped: dict[str, int]
    """Matches of the glob's last evaluation not followed: ``not_regular``, ``cap``."""
    truncations: int
    rotations: int


@dataclass(frozen=True, slots=True)
class ShipperCounters:
    """One log being shipped to Kafka: a container's own, or one of its declared file logs."""

    container_id: str
    stored_name: str
    """The container's name from its stored Info (no leading ``/``), for a backlog
    whose container is no longer logged; empty for a container being logged (its
    FIFO has the name) or when the Info cannot be read."""
    topic: str
    brokers: tuple[str, ...]
    lines_acked: int
    lines_rejected: int
    lines_lost_rotation: int
    retries: int
    backlog_bytes: int
    """Bytes of the log's current file not yet acknowledged (the whole file while
    rotated files are left)."""
    backlog_files: int
    """Rotated files not finished yet."""
    lines_sent: int = 0
    """Lines handed to the producer (acknowledged or not, resends included)."""
    log_name: str = ""
    """The declared file log shipped; empty for the container's own log (stdout/stderr)."""


@dataclass(frozen=True, slots=True)
class ProducerCounters:
    """One Kafka producer (one per cluster configuration), named by its brokers."""

    brokers: str
    starts: int
    batches_sent: int
    records_sent: int
    records_acked: int
    errors: dict[str, int]
    retries: int
    latency_buckets: list[tuple[str, int]]
    """Cumulative ``(le, count)`` pairs ending with ``+Inf``."""
    latency_sum: float
    batches_in_flight: int
    oldest_in_flight: float
    """Seconds; 0 when nothing is in flight."""


@dataclass(frozen=True, slots=True)
class AbandonedCounters:
    """Lines of one stopped container given up unshipped (KAFKA_BACKLOG_MAX_AGE)."""

    container_id: str
    stored_name: str
    """The container's name from its stored Info (see :class:`ShipperCounters`)."""
    lines: int
    log_name: str = ""
    """As in :class:`ShipperCounters`."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything /metrics and /status show, read at one moment."""

    fifos: list[IngestCounters] = field(default_factory=list)
    file_logs: list[FileLogCounters] = field(default_factory=list)
    shippers: list[ShipperCounters] = field(default_factory=list)
    producers: list[ProducerCounters] = field(default_factory=list)
    abandoned: list[AbandonedCounters] = field(default_factory=list)
    brokers: tuple[str, ...] = ()
    """The plugin's default brokers (KAFKA_BROKERS)."""
    fifos_reattached: int = 0
    damaged_files: int = 0
    shipping_processes: int = 0
    """Shipping processes running (see shipper/supervisor.py)."""
    shipping_restarts: int = 0
    """Shipping processes restarted after they died."""
    shipping_stats: dict[int, ProcessStat] = field(default_factory=dict)
    """Memory and CPU of each shipping process running, by its index."""
