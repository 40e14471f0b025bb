"""Kafka producers: one per distinct cluster configuration, on a shipping process's loop.

A :class:`ClusterProducer` per cluster configuration (the brokers plus the
plugin-wide producer settings) is shared by every container that ships there
(the worker keeps them, :mod:`.worker`); the containers' tasks await
:meth:`ClusterProducer.send` on the same loop.

A producer is started lazily on first use; if the brokers cannot be reached
the send fails with :class:`ProducerUnavailable` and the next one tries again.
After delivery failures a shipper calls :meth:`ClusterProducer.reset`: the
aiokafka producer is replaced by a fresh one (a new idempotent producer ID, so
no sequence-number state from before an outage can wedge it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any

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
from ..deadline import left
from .errors import DeliveryError, ProducerUnavailable
from .producer_stats import ProducerStats
from .schema import OutRecord

log = logging.getLogger(__name__)

#: How long a batch may wait for the broker before it is failed and shipped again;
#: failing one resets the producer for every container on it, so this is generous
#: (docs/performance.md, "Why the constants are what they are").
REQUEST_TIMEOUT_MS = 60_000
#: Of the shutdown deadline, what cancelling the loop's last tasks keeps for itself.
CANCEL_RESERVE = 0.2
#: The largest request; a record above it is rejected locally (see ``rejected``).
MAX_REQUEST_SIZE = 4 << 20

_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=4096)
def _partition_for(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition of a key, like the Java client (murmur2). Cached: aiokafka's
    murmur2 is pure Python, and a container's key is the same for every send."""
    return int(_PARTITIONER(key, list(partitions), list(partitions)))


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


class _Batch:
    """A batch of one partition: filled by every container shipping there, then sent."""

    __slots__ = ("builder", "count", "done", "groups", "since")

    def __init__(self, builder: Any, since: float, done: asyncio.Future[Any]) -> None:
        self.builder = builder
        self.count = 0
        self.groups: list[SendGroup] = []
        """The groups with records in it (repeats possible)."""
        self.since = since
        """Hand-over time of its first record (start of the delivery latency)."""
        self.done = done
        """aiokafka's delivery outcome, once the batch was handed over."""


class _PartitionQueue:
    """One partition's batches of one producer: the one being filled, those full.

    Records go into the open batch in the order they come; a full batch (or a
    record of :data:`LARGE_RECORD` or more, which gets a batch of its own) is
    sealed and waits for the partition's pump (:meth:`ClusterProducer._pump`).

    When a batch fails, every batch after it that is not handed over yet fails
    too, and so does every group with records in them (:meth:`fail_all`): a
    group's later records must not reach Kafka before the ones that failed,
    which it sends again from its acknowledged position.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, partition: int) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.open: _Batch | None = None
        self.sealed: deque[_Batch] = deque()
        self.pump: asyncio.Future[None] | None = None

    def add(self, group: SendGroup, key: bytes | None, record: OutRecord, at: float) -> _Batch:
        value, headers, timestamp = record
        big = len(value) >= LARGE_RECORD
        batch = self.open
        if batch is not None and (
            big
            or batch.builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
            is None
        ):
            self.sealed.append(batch)
            batch = None
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self.open = _Batch(self.producer.create_batch(), at, loop.create_future())
            batch.builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
        batch.count += 1
        if not batch.groups or batch.groups[-1] is not group:
            batch.groups.append(group)
        if big:
            self.sealed.append(batch)
            self.open = None
        return batch

    def take(self) -> _Batch | None:
        """The next batch to hand over, oldest first; None when there is none."""
        if self.sealed:
            return self.sealed.popleft()
        batch, self.open = self.open, None
        return batch

    def fail_all(self, exc: BaseException) -> None:
        """Fail every batch not handed over yet, and the groups with records in them."""
        while (batch := self.take()) is not None:
            _fail_batch(batch, exc)


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
        #: The batches being filled and handed over, per partition (see _pump).
        self._queues: dict[tuple[str, int], _PartitionQueue] = {}
        #: Counters for /metrics, per batch (see producer_stats).
        self.stats = ProducerStats()
        #: Whether the last start, send or delivery failed: logged once per change.
        self._failing = False
        self._watchdog: asyncio.Task[None] | None = None

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

        aiokafka keeps one batch per partition waiting while another is in flight,
        so a partition takes one batch per broker round trip. The records of every
        container on a partition therefore go into one shared batch (see
        :class:`_PartitionQueue`), cut at ``KAFKA_BATCH_SIZE`` and handed over by
        one pump per partition (aiokafka's batch API, several times faster than a
        ``send()`` per record). A batch per container, instead, served 200
        containers on 4 partitions 4 batches per round trip: each container's
        sends piled up in memory (about 4 KB a line) far faster than they left.
        All records of a group share the key, so they go to one partition,
        chosen like the Java client does (murmur2 of the key; a random one for no
        key), in the order they were sent.
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
        try:
            producer, generation = await self._get()
            partitions = sorted(await producer.partitions_for(topic))
        except (ProducerUnavailable, TimeoutError, KafkaError) as exc:
            group.failed = True
            self.stats.error(exc)
            self._log_health_change(exc)
            if isinstance(exc, ProducerUnavailable):
                error = DeliveryError(str(exc))
            else:
                error = DeliveryError(f"send to {self.describe()} failed: {exc!r}", generation)
            for it in items:
                _settle_error(it.done, error)
            return
        if key is None:
            partition = _PARTITIONER(None, partitions, partitions)
        else:
            partition = _partition_for(key, tuple(partitions))
        queue = self._queues.get((topic, partition))
        if queue is None or queue.producer is not producer:
            # New, or the producer was replaced: the old queue's pump fails what it holds.
            queue = self._queues[topic, partition] = _PartitionQueue(producer, topic, partition)
        for it in items:
            # For each batch the item's records went into, how many.
            shares: dict[_Batch, int] = {}
            for r in it.records:
                batch = queue.add(group, key, r, it.at)
                shares[batch] = shares.get(batch, 0) + 1
            task = asyncio.ensure_future(
                self._settle(group, it.done, [(b.done, c) for b, c in shares.items()], generation)
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
        if queue.pump is None:
            queue.pump = asyncio.ensure_future(self._pump(queue))

    async def _pump(self, queue: _PartitionQueue) -> None:
        """Hand a partition's batches to aiokafka in order, each once the one before
        is delivered.

        aiokafka keeps one batch per partition queued and makes other callers
        wait for it to drain, but it takes the time waited so far off their
        timeout again on every wake-up (0.14: ``timeout -= now - start``). With
        several callers on one partition, the losers of a few rounds got
        KafkaTimeoutError after seconds, not after the request timeout. The
        pump is the partition's single caller; while it waits, records of every
        container on the partition gather in the next batch.

        At most one batch of the partition is inside aiokafka at any time, so
        that a failed batch can never be overtaken. aiokafka's sender takes a
        partition's next queued batch as soon as the one in flight is done,
        failed or not (0.14: ``Sender._send_produce_req`` unmutes the partition
        and the next ``drain_by_nodes`` sends it); and stopping a producer
        (:meth:`ClusterProducer.reset`) flushes what is queued. With a second
        batch queued behind a failed one, its lines reached Kafka before the
        failed ones were sent again: a hole in the topic, filled later or never
        (a batch the broker refuses each time). Idempotence does not prevent
        it: with ``KAFKA_IDEMPOTENCE=true`` too, Kafka 4.4 appended the second
        batch after refusing the first one for good (InvalidTimestamp).
        Waiting costs no round trip: aiokafka sends one batch per partition per
        request anyway, and the next one is handed over in the same loop turn
        as the delivery, already full of what gathered meanwhile (closed, so
        aiokafka does not linger on it again).
        """
        loop = asyncio.get_running_loop()
        linger = self.cfg.linger_ms / 1000
        try:
            while (batch := queue.take()) is not None:
                if loop.time() - batch.since >= linger:
                    batch.builder.close()  # it has lingered (waiting for the one before)
                try:
                    fut: asyncio.Future[Any] = await queue.producer.send_batch(
                        batch.builder, queue.topic, partition=queue.partition
                    )
                except (TimeoutError, KafkaError) as exc:
                    self.stats.error(exc)
                    self._log_health_change(exc)
                    _fail_batch(batch, exc)
                    queue.fail_all(exc)
                    continue
                except BaseException as exc:
                    _fail_batch(batch, exc)
                    raise
                self.stats.watch(fut, batch.count, batch.since, self._log_health_change)
                fut.add_done_callback(functools.partial(_delivered, queue, batch))
                # Delivered or failed: a failure has failed the batches queued
                # here by now (_delivered), so none of them is handed over.
                await asyncio.wait([fut])
                await asyncio.sleep(0)  # let _delivered run first
        finally:
            queue.pump = None
            queue.fail_all(asyncio.CancelledError())  # if it ended early (cancelled)

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
            done.set_result(SendResult(rejected))

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


def _delivered(queue: _PartitionQueue, batch: _Batch, fut: asyncio.Future[Any]) -> None:
    """A handed-over batch is done: pass its outcome on; a failure fails the batches
    of the partition not handed over yet (see :class:`_PartitionQueue`)."""
    if batch.done.done():
        return
    if fut.cancelled():
        exc: BaseException | None = asyncio.CancelledError()
    else:
        exc = fut.exception()
    if exc is None:
        batch.done.set_result(fut.result())
    elif isinstance(exc, REJECTED):
        batch.done.set_exception(exc)  # these records only: counted, not sent again
    else:
        _fail_batch(batch, exc)
        queue.fail_all(exc)


def _fail_batch(batch: _Batch, exc: BaseException) -> None:
    for group in batch.groups:
        group.failed = True
    if not batch.done.done():
        batch.done.set_exception(exc)


def _settle_error(done: asyncio.Future[SendResult], error: DeliveryError) -> None:
    if not done.done():
        done.set_exception(error)


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except Exception as exc:
        log.debug("stopping a Kafka producer: %r", exc)
