"""Kafka producers: one per distinct cluster configuration, on one asyncio thread.

:class:`KafkaRuntime` owns an event loop in a daemon thread (started only when
a container is actually shipped, so a local-only pylog runs nothing of this)
and the :class:`ClusterProducer` of each cluster configuration (the brokers
plus the plugin-wide producer settings), shared by every container that ships
there. Shipper threads hand batches over with :meth:`KafkaRuntime.submit` and
wait on the returned ``concurrent.futures.Future``.

A producer is started lazily on first use; if the brokers cannot be reached
the send fails with :class:`ProducerUnavailable` and the next one tries again.
After delivery failures a shipper calls :meth:`ClusterProducer.reset`: the
aiokafka producer is replaced by a fresh one (a new idempotent producer ID, so
no sequence-number state from before an outage can wedge it).

How sends become aiokafka batches (shared per partition, one partition's at a
time inside aiokafka) is :mod:`.batching`'s job; this module keeps the settings
and each producer's life: start, reset, health logging, close.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from ..config import KafkaSettings
from ..deadline import left
from .batching import REJECTED, Batcher
from .batching import SendGroup as SendGroup
from .batching import SendResult as SendResult
from .compression import use_fast_lz4
from .errors import ProducerUnavailable
from .producer_stats import ProducerStats
from .schema import OutRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a batch may wait for the broker before it is failed and shipped again;
#: failing one resets the producer for every container on it, so this is generous
#: (docs/performance.md, "Why the constants are what they are").
REQUEST_TIMEOUT_MS = 60_000
#: Of the shutdown deadline, what cancelling the loop's last tasks keeps for itself.
CANCEL_RESERVE = 0.2
#: The largest request; a record above it is rejected locally (see ``rejected``).
MAX_REQUEST_SIZE = 4 << 20

#: How often a producer checks for batches the broker has not acknowledged for
#: ``REQUEST_TIMEOUT_MS`` (the idempotent producer retries them forever: a broker
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
        "enable_idempotence": cfg.idempotence,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": cfg.batch_size,
        "max_request_size": max(MAX_REQUEST_SIZE, cfg.batch_size),
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
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
        self._batcher = Batcher(self.describe(), cfg.linger_ms, self.stats, self._log_health_change)

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
            if not self._failing and age * 1000 >= REQUEST_TIMEOUT_MS:
                self._log_health_change(
                    TimeoutError(f"{waiting} batches unacknowledged, the oldest for {age:.0f} s")
                )

    async def send(
        self, group: SendGroup, topic: str, key: bytes | None, records: list[OutRecord]
    ) -> SendResult:
        """Append the records in order, then wait until the broker acknowledged them all.

        The records of every container on a partition go into shared batches,
        one partition's at a time inside aiokafka (see :mod:`.batching` for the
        aiokafka behaviours this works around).
        """
        return await self._batcher.send(self._get, group, topic, key, records)

    async def reset(self, generation: int) -> None:
        """Replace the producer if it is still the one that failed."""
        if self._producer is None or generation != self.generation:
            return
        old, self._producer = self._producer, None
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
            await _stop_quietly(producer, left(deadline, CANCEL_RESERVE))
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, left(deadline, CANCEL_RESERVE))


def _reason(exc: BaseException) -> str:
    """An error for the log: ProducerUnavailable's own message, else the type and message."""
    if isinstance(exc, ProducerUnavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _to_concurrent(fut: concurrent.futures.Future[Any], task: asyncio.Future[Any]) -> None:
    """Copy a finished task's outcome to the future :meth:`KafkaRuntime.submit` returned."""
    if task.cancelled():
        fut.cancel()
    if not fut.set_running_or_notify_cancel():
        return
    if (exc := task.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(task.result())


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except Exception as exc:
        log.debug("stopping a Kafka producer: %r", exc)


class KafkaRuntime:
    """The asyncio loop thread and the producers of every cluster in use."""

    def __init__(self) -> None:
        use_fast_lz4()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._producers: dict[KafkaSettings, ClusterProducer] = {}
        #: Coroutines submitted and not started yet, with their futures (see submit).
        self._submit_lock = threading.Lock()
        self._submitted: list[tuple[Coroutine[Any, Any, Any], concurrent.futures.Future[Any]]] = []
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pylog-kafka", daemon=True
        )
        self._thread.start()
        self._closed = False

    def producer(self, cfg: KafkaSettings) -> ClusterProducer:
        with self._lock:
            p = self._producers.get(cfg)
            if p is None:
                p = self._producers[cfg] = ClusterProducer(cfg)
            return p

    def producers(self) -> list[ClusterProducer]:
        with self._lock:
            return list(self._producers.values())

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; its outcome comes in the returned future.

        Like ``asyncio.run_coroutine_threadsafe``, but the loop is woken once for
        all the coroutines submitted meanwhile, not once each: with 200 shipper
        threads each waking the loop for every line (a write to its self-pipe,
        a GIL hand-over and a loop iteration), the loop thread got the GIL too
        seldom to keep up, and the lines waiting for it piled up in memory.
        """
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._submit_lock:
            self._submitted.append((coro, fut))
            wake = len(self._submitted) == 1
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._start_submitted)
            except RuntimeError:  # the loop is closed: fail what waits for it
                with self._submit_lock:
                    todo, self._submitted = self._submitted, []
                for c, f in todo:
                    c.close()
                    f.set_exception(RuntimeError("the Kafka loop is closed"))
        return fut

    def _start_submitted(self) -> None:
        with self._submit_lock:
            todo, self._submitted = self._submitted, []
        for coro, fut in todo:
            if fut.cancelled():
                coro.close()
                continue
            task = self._loop.create_task(coro)
            task.add_done_callback(functools.partial(_to_concurrent, fut))

    def new_group(self) -> SendGroup:
        # asyncio.Lock binds to a loop on first use (3.10+): safe to make here.
        return SendGroup()

    def close(self, deadline: float) -> None:
        """Stop the producers (flushing what they hold) and the loop by ``deadline``
        (``time.monotonic()``); what is still unsent then is dropped, to be
        shipped again from the acknowledged positions at the next start."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producers = list(self._producers.values())

        async def stop_all() -> None:
            await asyncio.gather(*(p.close(deadline) for p in producers))
            # Sends of halted shippers that nobody waits for any more.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.submit(stop_all()).result(left(deadline))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(left(deadline))
        if not self._thread.is_alive():
            self._loop.close()
