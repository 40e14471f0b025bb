"""Kafka producers: one per distinct cluster configuration, on a shipping process's loop.

A :class:`ClusterProducer` per cluster configuration (the brokers plus the
plugin-wide producer settings) is shared by every container that ships there
(the worker keeps them, :mod:`.worker`); the containers' tasks await
:meth:`ClusterProducer.send` on the same loop.

A producer is started lazily on first use; if the brokers cannot be reached
the send fails with :class:`ProducerUnavailable` and the next one tries again.
After delivery failures a shipper calls :meth:`ClusterProducer.reset`: the
aiokafka producer (its client and connections) is replaced by a fresh one, with
a new producer ID for pylog's numbered requests, so no sequence-number state
from before the failure can wedge it.

How sends become batches shared per partition (:mod:`.batching`), and how those
reach the broker as pylog's own produce requests on the aiokafka producer's
client (:mod:`.pipeline`), is theirs to say; this module keeps the settings and
each producer's life: start, reset, health logging, close. Of the aiokafka
producer only its client is used (connections, metadata); its sender and
accumulator stay idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from ..config import KafkaSettings
from ..deadline import left
from .batching import LARGE_RECORD, REJECTED, Batcher
from .batching import SendGroup as SendGroup
from .batching import SendResult as SendResult
from .errors import ProducerUnavailable
from .producer_stats import ProducerStats
from .recordbatch import RecordBatch
from .schema import OutRecord

log = logging.getLogger(__name__)


#: Of the shutdown deadline, what cancelling the loop's last tasks keeps for itself.
CANCEL_RESERVE = 0.2
#: The largest request; a record above it is rejected locally (see ``rejected``).
MAX_REQUEST_SIZE = 4 << 20

#: How often a producer checks for batches the broker has not acknowledged for
#: ``KAFKA_REQUEST_TIMEOUT_MS`` (the idempotent producer retries them forever: a broker
#: outage raises no error, so this is what logs it).
WATCH_INTERVAL = 1.0


def cluster_key(settings: KafkaSettings, brokers: tuple[str, ...]) -> KafkaSettings:
    """What makes two containers share a producer: brokers and producer settings."""
    return dataclasses.replace(settings, brokers=brokers)


def producer_kwargs(cfg: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for a cluster configuration (secrets included)."""
    kw: dict[str, Any] = {
        "bootstrap_servers": list(cfg.brokers),
        "client_id": cfg.client_id,
        "acks": "all" if cfg.acks == "all" else int(cfg.acks),
        # pylog sends its own produce requests (pipeline.py) on this producer's
        # client, numbered with a producer ID of its own: aiokafka's sender is unused.
        "enable_idempotence": False,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": cfg.batch_size,
        "max_request_size": max(MAX_REQUEST_SIZE, cfg.batch_size),
        "request_timeout_ms": cfg.request_timeout_ms,
        "retry_backoff_ms": 500,
        "metadata_max_age_ms": 60_000,
    }
    protocol = "PLAINTEXT"
    if cfg.tls:
        kw["ssl_context"] = tls_context(cfg)
        protocol = "SSL"
    if cfg.sasl_mechanism is not None:
        protocol = "SASL_SSL" if cfg.tls else "SASL_PLAINTEXT"
        kw["sasl_mechanism"] = cfg.sasl_mechanism
        kw["sasl_plain_username"] = cfg.sasl_username
        kw["sasl_plain_password"] = cfg.sasl_password
    kw["security_protocol"] = protocol
    return kw


def tls_context(cfg: KafkaSettings) -> ssl.SSLContext:
    """A verifying client context: KAFKA_TLS_CA (else the system CAs), optional client cert."""
    ctx: ssl.SSLContext = create_ssl_context(
        cafile=str(cfg.tls_ca) if cfg.tls_ca else None,
        certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
        keyfile=str(cfg.tls_key) if cfg.tls_key else None,
    )
    return ctx


class ClusterProducer:
    def __init__(self, cfg: KafkaSettings) -> None:
        self.cfg = cfg
        self.generation = 0
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None
        self._closing: set[asyncio.Task[None]] = set()
        #: Counters for /metrics, per batch (see producer_stats).
        self.stats = ProducerStats()
        #: Whether the last start, send or delivery failed: logged once per change.
        self._failing = False
        self._watchdog: asyncio.Task[None] | None = None
        #: The shared per-partition batches and their pumps (see batching).
        self._batcher = Batcher(
            self.describe(),
            cfg.linger_ms,
            self.stats,
            self._log_health_change,
            functools.partial(RecordBatch, cfg.batch_size, cfg.compression, LARGE_RECORD),
            idempotent=cfg.idempotence,
            acks=-1 if cfg.acks == "all" else int(cfg.acks),
            request_timeout_ms=cfg.request_timeout_ms,
        )

    def describe(self) -> str:
        """The producer's name in logs and metrics: its brokers (never credentials)."""
        return ",".join(self.cfg.brokers)

    def _log_health_change(self, exc: BaseException | None) -> None:
        """Log the broker going down or coming back: one line per change, not per batch."""
        if exc is None:
            if self._failing:
                self._failing = False
                log.info("Kafka at %s is back: deliveries are acknowledged again", self.describe())
        elif not self._failing and not isinstance(exc, (*REJECTED, asyncio.CancelledError)):
            self._failing = True
            log.warning(
                "Kafka at %s is failing, shipping retries until it is back: %s",
                self.describe(),
                _reason(exc),
            )

    async def _get(self) -> tuple[AIOKafkaProducer, int]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**producer_kwargs(self.cfg))
                try:
                    await producer.start()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(producer.stop(), 5)
                    raise ProducerUnavailable(
                        f"cannot reach Kafka at {self.describe()}: {type(exc).__name__}: {exc}"
                    ) from None
                self._producer = producer
                self.generation += 1
                if self._watchdog is None:
                    self._watchdog = asyncio.get_running_loop().create_task(self._watch())
                log.info("Kafka producer for %s started", self.describe())
            return self._producer, self.generation

    async def _watch(self) -> None:
        """Log the broker as failing when a batch waits longer than the request timeout."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            waiting, age = self.stats.in_flight(loop.time())
            if not self._failing and age * 1000 >= self.cfg.request_timeout_ms:
                self._log_health_change(
                    TimeoutError(f"{waiting} batches unacknowledged, the oldest for {age:.0f} s")
                )

    async def send(
        self, group: SendGroup, topic: str, key: bytes | None, records: list[OutRecord]
    ) -> SendResult:
        """Append the records in order, then wait until the broker acknowledged them all.

        The records of every container on a partition go into shared batches,
        sent in order by the partition's pump (:mod:`.batching`, :mod:`.pipeline`).
        """
        return await self._batcher.send(self._get, group, topic, key, records)

    async def reset(self, generation: int) -> None:
        """Replace the producer if it is still the one that failed."""
        if self._producer is None or generation != self.generation:
            return
        old, self._producer = self._producer, None
        self._batcher.forget(old)
        task = asyncio.get_running_loop().create_task(_stop_quietly(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, deadline: float) -> None:
        """Stop the producer, flushing what it holds until ``deadline`` (less
        :data:`CANCEL_RESERVE`) at most."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._batcher.drain(producer, left(deadline, CANCEL_RESERVE))
            await _stop_quietly(producer, left(deadline, CANCEL_RESERVE))
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, left(deadline, CANCEL_RESERVE))


def _reason(exc: BaseException) -> str:
    """An error for the log: ProducerUnavailable's own message, else the type and message."""
    if isinstance(exc, ProducerUnavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except Exception as exc:
        log.debug("stopping a Kafka producer: %r", exc)
