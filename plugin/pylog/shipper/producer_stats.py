"""Counters of one cluster producer, kept per batch and read by ``/metrics`` at scrape time.

pylog counts where a partition's pump hands a batch to its sender and where
the batch's outcome resolves. Every count is per batch, never per record: the
shipping loop pays one callback per batch (up to ``KAFKA_BATCH_SIZE`` of
records).

Everything runs on the shipping process's one loop, so nothing is locked.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from .errors import ProducerUnavailable
from .pipeline import REJECTED

#: Upper bounds (seconds) of the delivery latency buckets: linger (20 ms) up to the
#: producer's request timeout (60 s), after which a batch fails instead.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The kinds of send error, the ``kind`` label of ``pylog_kafka_send_errors_total``.
ERROR_KINDS = ("unavailable", "timeout", "connection", "rejected", "broker", "cancelled", "other")


def error_kind(exc: BaseException) -> str:
    """Which of :data:`ERROR_KINDS` an exception from starting, sending or delivery is."""
    if isinstance(exc, ProducerUnavailable):
        return "unavailable"  # the producer could not start: broker unreachable, auth refused
    if isinstance(exc, REJECTED):
        return "rejected"  # too large (a batch is split, a record alone dropped), or never taken
    if isinstance(exc, KafkaTimeoutError | RequestTimedOutError | TimeoutError):
        return "timeout"
    if isinstance(exc, KafkaConnectionError | NodeNotReadyError):
        return "connection"
    if isinstance(exc, asyncio.CancelledError):
        # A batch of a producer replaced after a failure or closed.
        return "cancelled"
    if isinstance(exc, KafkaError):
        return "broker"
    return "other"


@dataclass
class LatencyHistogram:
    """A fixed-bucket histogram, observed with a weight (the records of a batch)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf

    def observe(self, seconds: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += weight
        self.total += seconds * weight

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` pairs ending with ``+Inf``, and the sum."""
        counts, total = list(self.counts), self.total
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
            running += n
            out.append((bound, running))
        return out, total


@dataclass
class ProducerStats:
    batches_sent: int = 0
    """Batches handed to a partition's sender (:mod:`.pipeline`)."""
    records_sent: int = 0
    """Records in those batches."""
    records_acked: int = 0
    """Records the broker acknowledged (also the latency histogram's count)."""
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    """Failed producer starts, sends and batch deliveries, by :func:`error_kind`."""
    retries: int = 0
    """Shipper rewinds after a failed delivery through this producer."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Seconds from a batch's hand-over to the producer to the broker's acknowledgement,
    one observation per record (per batch, weighted by its records)."""
    _in_flight: dict[asyncio.Future[Any], float] = field(default_factory=dict, repr=False)

    def in_flight(self, now: float) -> tuple[int, float]:
        """Batches handed over and not resolved yet, and the age of the oldest (0: none).

        With the idempotent producer (the default) a batch is sent again until the
        broker takes it (:mod:`.pipeline`), so a broker outage shows here, not as
        errors.
        """
        times = self._in_flight.values()
        return len(times), (now - min(times)) if times else 0.0

    def error(self, exc: BaseException) -> None:
        self.errors[error_kind(exc)] += 1

    def note_retry(self) -> None:
        """Called by a shipping task when it rewinds after a failure."""
        self.retries += 1

    def watch(
        self,
        batch: asyncio.Future[Any],
        records: int,
        handed_over: float,
        listener: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """Count a batch just handed to its sender and, when it resolves, its outcome.

        ``handed_over`` is the loop time at which its first record reached
        :meth:`ClusterProducer.send`. ``listener`` gets the batch's error (None:
        acknowledged), not for a cancelled batch.
        """
        self.batches_sent += 1
        self.records_sent += records
        loop = asyncio.get_running_loop()
        self._in_flight[batch] = handed_over

        def done(fut: asyncio.Future[Any]) -> None:
            self._in_flight.pop(fut, None)
            if fut.cancelled():
                self.errors["cancelled"] += 1
                return
            exc = fut.exception()
            if exc is not None:
                self.error(exc)
            else:
                self.records_acked += records
                self.latency.observe(loop.time() - handed_over, records)
            if listener is not None:
                listener(exc)

        batch.add_done_callback(done)
