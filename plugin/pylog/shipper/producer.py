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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from ..config import KafkaSettings
from .compression import use_fast_lz4
from .errors import DeliveryError, ProducerUnavailable
from .producer_stats import ProducerStats
from .schema import OutRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a batch may wait for the broker before it is failed (and shipped again).
#: Failing one resets the producer, which fails every container's batches on it, and
#: those are shipped again (duplicates where they had got through). With ten
#: containers at full speed on a busy 2-core machine, batches waited over 30 s for
#: CPU, not for the broker; hence a minute.
REQUEST_TIMEOUT_MS = 60_000
#: The largest request; a record above it is rejected locally (see ``rejected``).
MAX_REQUEST_SIZE = 4 << 20

_PARTITIONER = DefaultPartitioner()

#: How often a producer checks for batches the broker has not acknowledged for
#: ``REQUEST_TIMEOUT_MS`` (the idempotent producer retries them forever: a broker
#: outage raises no error, so this is what logs it).
WATCH_INTERVAL = 1.0

#: Errors that sending again cannot fix: the records are dropped and counted.
REJECTED = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError)


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


#: A record at least this large gets a batch of its own, so that if the broker
#: refuses it as too large, no other record is refused with it.
LARGE_RECORD = 256 * 1024


@dataclass
class _Pending:
    records: list[OutRecord]
    done: asyncio.Future[SendResult]
    at: float
    """Loop time of the hand-over to the producer (start of the delivery latency)."""


@dataclass
class SendGroup:
    """The batches one shipper has in flight since its last rewind.

    Sends of a group are appended to the producer strictly in submission order
    (one asyncio lock, FIFO); once one fails, the later ones fail without
    sending, so a retry re-sends in order instead of interleaving. Sends that
    queue up while the producer is busy are appended together, as large
    batches (see :meth:`ClusterProducer.send`).
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failed: bool = False
    queue: list[_Pending] = field(default_factory=list)


@dataclass(frozen=True)
class SendResult:
    generation: int
    """The producer generation used (to reset the right one after a failure)."""
    rejected: int
    """Records the broker can never take (too large...), dropped."""


class ClusterProducer:
    def __init__(self, cfg: KafkaSettings) -> None:
        self.cfg = cfg
        self.generation = 0
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._settling: set[asyncio.Future[None]] = set()
        #: One hand-over at a time per partition (see _enqueue).
        self._partition_locks: dict[tuple[str, int], asyncio.Lock] = {}
        #: Counters for /metrics, per batch (see producer_stats).
        self.stats = ProducerStats()
        #: Whether the last start, send or delivery failed: logged once per change.
        self._failing = False
        self._watchdog: asyncio.Task[None] | None = None

    def describe(self) -> str:
        """The producer's name in logs and metrics: its brokers (never credentials)."""
        return ",".join(self.cfg.brokers)

    def _outcome(self, exc: BaseException | None) -> None:
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
                self._outcome(
                    TimeoutError(f"{waiting} batches unacknowledged, the oldest for {age:.0f} s")
                )

    async def send(
        self, group: SendGroup, topic: str, key: bytes | None, records: list[OutRecord]
    ) -> SendResult:
        """Append the records in order, then wait until the broker acknowledged them all.

        aiokafka keeps one batch per partition waiting while another is in flight,
        so handing it many small batches would cap a container at one small batch
        per broker round trip. Instead, records wait in the group's queue, and
        whoever holds the group's lock appends everything queued so far, cut into
        batches of ``KAFKA_BATCH_SIZE`` (aiokafka's batch API, several times faster
        than a ``send()`` per record). All records of a group share the key, so
        they go to one partition, chosen like the Java client does (murmur2 of
        the key; a random one for no key).
        """
        loop = asyncio.get_running_loop()
        item = _Pending(records, loop.create_future(), loop.time())
        group.queue.append(item)
        async with group.lock:
            if group.queue:
                items, group.queue = group.queue, []
                await self._append(group, topic, key, items)
        return await item.done

    async def _append(
        self, group: SendGroup, topic: str, key: bytes | None, items: list[_Pending]
    ) -> None:
        if group.failed:
            for it in items:
                _settle_error(it.done, DeliveryError("an earlier batch failed"))
            return
        generation = -1
        # For each item, how many of its records went into which batch.
        shares: list[dict[int, int]] = [{} for _ in items]
        batches: list[asyncio.Future[Any]] = []
        try:
            producer, generation = await self._get()
            partitions = sorted(await producer.partitions_for(topic))
            partition = _PARTITIONER(key, partitions, partitions)
            batch = producer.create_batch()
            count = 0
            since = 0.0  # hand-over time of the batch's first record
            stats = self.stats

            async def flush() -> None:
                fut = await self._enqueue(producer, batch, topic, partition)
                stats.watch(fut, count, since, self._outcome)
                batches.append(fut)

            for n, it in enumerate(items):
                for value, headers, timestamp in it.records:
                    big = len(value) >= LARGE_RECORD
                    if count and (
                        big
                        or batch.append(key=key, value=value, timestamp=timestamp, headers=headers)
                        is None
                    ):
                        await flush()
                        batch, count = producer.create_batch(), 0
                    if count == 0:
                        since = it.at
                        batch.append(key=key, value=value, timestamp=timestamp, headers=headers)
                    count += 1
                    share = shares[n]
                    share[len(batches)] = share.get(len(batches), 0) + 1
                    if big:
                        await flush()
                        batch, count = producer.create_batch(), 0
            if count:
                await flush()
        except (ProducerUnavailable, TimeoutError, KafkaError) as exc:
            group.failed = True
            self.stats.error(exc)
            self._outcome(exc)
            if isinstance(exc, ProducerUnavailable):
                error = DeliveryError(str(exc))
            else:
                error = DeliveryError(f"send to {self.describe()} failed: {exc!r}", generation)
            for it in items:
                _settle_error(it.done, error)
            return
        for it, share in zip(items, shares, strict=True):
            task = asyncio.ensure_future(
                self._settle(
                    group, it.done, [(batches[i], c) for i, c in share.items()], generation
                )
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(
        self,
        group: SendGroup,
        done: asyncio.Future[SendResult],
        parts: list[tuple[asyncio.Future[Any], int]],
        generation: int,
    ) -> None:
        results = await asyncio.gather(*(f for f, _ in parts), return_exceptions=True)
        rejected = 0
        for res, (_, count) in zip(results, parts, strict=True):
            if isinstance(res, REJECTED):
                rejected += count
            elif isinstance(res, BaseException):
                group.failed = True
                _settle_error(
                    done,
                    DeliveryError(f"delivery to {self.describe()} failed: {res!r}", generation),
                )
                return
        if not done.done():
            done.set_result(SendResult(generation, rejected))

    async def _enqueue(
        self, producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
    ) -> asyncio.Future[Any]:
        """Hand a batch to aiokafka, one caller per partition at a time, in turn.

        aiokafka keeps one batch per partition queued and makes other callers
        wait for it to drain, but it takes the time waited so far off their
        timeout again on every wake-up (0.14: ``timeout -= now - start``). With
        several containers on one partition, the losers of a few rounds got
        KafkaTimeoutError after seconds, not after the request timeout, the
        producer was reset, and every container shipped its in-flight lines
        again. Waiting in an asyncio lock (FIFO) first leaves aiokafka a single
        waiter, which is served when the queued batch drains.
        """
        lock = self._partition_locks.get((topic, partition))
        if lock is None:
            lock = self._partition_locks[topic, partition] = asyncio.Lock()
        async with lock:
            fut: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
            return fut

    async def reset(self, generation: int) -> None:
        """Replace the producer if it is still the one that failed."""
        if self._producer is None or generation != self.generation:
            return
        old, self._producer = self._producer, None
        task = asyncio.get_running_loop().create_task(_stop_quietly(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, timeout: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, timeout)
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout)


def _reason(exc: BaseException) -> str:
    """An error for the log: ProducerUnavailable's own message, else the type and message."""
    if isinstance(exc, ProducerUnavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _settle_error(done: asyncio.Future[SendResult], error: DeliveryError) -> None:
    if not done.done():
        done.set_exception(error)


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
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def new_group(self) -> SendGroup:
        # asyncio.Lock binds to a loop on first use (3.10+): safe to make here.
        return SendGroup()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the producers (flushing what they hold, up to ``timeout``) and the loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producers = list(self._producers.values())

        async def stop_all() -> None:
            await asyncio.gather(*(p.close(timeout) for p in producers))
            # Sends of halted shippers that nobody waits for any more.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.submit(stop_all()).result(timeout + 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
