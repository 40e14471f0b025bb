"""Per-partition batches shared by every container, and their pumps.

Records of every container on a partition gather in shared batches (pylog's
own, :mod:`.recordbatch`: the bytes aiokafka's builder would make, filled with
one call per send instead of one per record, several times faster than a
``send()`` per record). A batch per container instead served 200 containers on
4 partitions 4 batches per round trip, and their sends piled up in memory far
faster than they left.

Each partition has one pump (:meth:`Batcher._pump`), which sends its batches in
order through a :class:`~.pipeline.PartitionSender` (pylog's own produce
requests: up to five in flight with idempotence, one without); a full batch goes
as soon as there is room, the batch being filled once nothing is in flight or it
has waited ``linger_ms``. When a batch fails for good, the batches behind it
that are not sent fail unsent, and so do the sends (groups) with records in
them (:meth:`_PartitionQueue.fail_all`): a container's later lines must not
reach Kafka before the ones that failed, which it sends again from its
acknowledged position. A batch the broker refuses as too large is split in
two in its place (:func:`_split_batch`); its outcome, once both halves have
theirs, names the records refused for good by their index in it, so that each
send counts its own.

Everything here runs on the one asyncio loop of its :class:`Batcher`'s owner
(:class:`~pylog.shipper.producer.ClusterProducer`).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from .errors import DeliveryError, ProducerUnavailable
from .pipeline import REJECTED as REJECTED
from .pipeline import PartitionSender, client_produce, init_producer_id
from .producer_stats import ProducerStats
from .recordbatch import CompressionRatio, RecordBatch
from .schema import OutRecord

#: A record at least this large gets a batch of its own, so that if the broker
#: refuses it as too large, no other record is refused with it.
LARGE_RECORD = 256 * 1024

#: How long getting a producer ID for pylog's own produce requests may take.
PRODUCER_ID_TIMEOUT = 10.0

_PARTITIONER = DefaultPartitioner()

#: Starts the owner's producer if needed: it and its generation (see ClusterProducer).
Connect = Callable[[], Awaitable[tuple[AIOKafkaProducer, int]]]
#: Told each send, hand-over and delivery outcome: None for success (health logging).
HealthHook = Callable[[BaseException | None], None]


@functools.lru_cache(maxsize=4096)
def _partition_for(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition of a key, like the Java client (murmur2). Cached: aiokafka's
    murmur2 is pure Python, and a container's key is the same for every send."""
    return int(_PARTITIONER(key, list(partitions), list(partitions)))


@dataclass(frozen=True)
class SendResult:
    rejected: int
    """Records the broker can never take (too large...), dropped."""


@dataclass
class _Pending:
    records: list[OutRecord]
    done: asyncio.Future[SendResult]
    at: float
    """Loop time of the hand-over to the producer (start of the delivery latency)."""


@dataclass
class SendGroup:
    """The batches one shipper has in flight since its last rewind.

    Sends of a group are appended strictly in submission order (one asyncio
    lock, FIFO); once one fails, the later ones fail without sending, so a
    retry re-sends in order instead of interleaving. Sends that queue up while
    the lock is held are appended together (see :meth:`Batcher.send`).
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failed: bool = False
    queue: list[_Pending] = field(default_factory=list)


class _Batch:
    """A batch of one partition: filled by every container shipping there, then sent."""

    __slots__ = ("builder", "count", "done", "groups", "since")

    def __init__(self, builder: RecordBatch, since: float, done: asyncio.Future[Any]) -> None:
        self.builder = builder
        self.count = 0
        self.groups: list[SendGroup] = []
        """The groups with records in it (repeats possible)."""
        self.since = since
        """Hand-over time of its first record (start of the delivery latency)."""
        self.done = done
        """aiokafka's delivery outcome, once the batch was handed over."""


class _PartitionQueue:
    """One partition's batches of one producer: the one being filled, those full,
    and the sender of those sent.

    Records go into the open batch in the order they come; a full batch (or a
    record of :data:`LARGE_RECORD` or more, which gets a batch of its own) is
    sealed and waits for the partition's pump (:meth:`Batcher._pump`).

    When a batch fails, every batch after it that is not sent yet fails too,
    and so does every group with records in them (:meth:`fail_all`).
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        new_batch: Callable[[CompressionRatio], RecordBatch],
        new_sender: Callable[[_PartitionQueue], PartitionSender[_Batch]],
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.new_batch = new_batch
        self.ratio = CompressionRatio()
        """How well this partition's batches compress (sizes the next ones)."""
        self.open: _Batch | None = None
        self.sealed: deque[_Batch] = deque()
        self.sender = new_sender(self)
        """Sends the batches (its outcomes come back to this queue)."""
        self.pump: asyncio.Future[None] | None = None
        self.wake: asyncio.Future[None] | None = None
        """Set when a batch is sealed, for a pump waiting on its requests."""

    def add_all(
        self, group: SendGroup, key: bytes | None, records: list[OutRecord], at: float
    ) -> list[tuple[_Batch, int, int]]:
        """Append the records in order, as many to a batch as it takes (one call per
        batch, see :mod:`.recordbatch`); returns each batch they went into with the
        index of the first there and how many. A batch that is full, or took a record
        of :data:`LARGE_RECORD` or more, is sealed."""
        shares: list[tuple[_Batch, int, int]] = []
        i = 0
        while i < len(records):
            batch = self.open
            if batch is None:
                loop = asyncio.get_running_loop()
                batch = self.open = _Batch(self.new_batch(self.ratio), at, loop.create_future())
            end = batch.builder.add(records, i, key)
            if end > i:
                shares.append(self._counted(batch, group, end - i))
            if batch.builder.closed():
                self.sealed.append(batch)
                self.open = None
                if self.wake is not None and not self.wake.done():
                    self.wake.set_result(None)
            i = end
        return shares

    @staticmethod
    def _counted(batch: _Batch, group: SendGroup, n: int) -> tuple[_Batch, int, int]:
        first = batch.count
        batch.count += n
        if not batch.groups or batch.groups[-1] is not group:
            batch.groups.append(group)
        return batch, first, n

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


class Batcher:
    """The partition queues and pumps of one cluster producer.

    ``name`` names the cluster in errors (never credentials); ``linger_ms`` is
    how long a batch may wait for more records; ``stats`` and ``health`` are
    told about every hand-over and delivery.
    """

    def __init__(
        self,
        name: str,
        linger_ms: int,
        stats: ProducerStats,
        health: HealthHook,
        new_batch: Callable[[CompressionRatio], RecordBatch],
        idempotent: bool = False,
        acks: int = -1,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.name = name
        #: Makes an empty batch (the cluster's batch size and compression) for a
        #: partition's compression ratio.
        self.new_batch = new_batch
        #: Whether batches carry a producer ID and sequence numbers (:mod:`.pipeline`).
        self.idempotent = idempotent
        #: The acks of every request: -1 (all), 1 or 0.
        self.acks = acks
        self.request_timeout_ms = request_timeout_ms
        #: The producer ID of the current producer (:func:`init_producer_id`), shared.
        self._producer_id: tuple[AIOKafkaProducer, asyncio.Future[tuple[int, int]]] | None = None
        self.linger = linger_ms / 1000
        self.stats = stats
        self.health = health
        #: The batches being filled and handed over, per partition.
        self._queues: dict[tuple[str, int], _PartitionQueue] = {}
        #: The tasks passing batch outcomes on to sends (kept referenced).
        self._settling: set[asyncio.Future[None]] = set()

    async def send(
        self,
        connect: Connect,
        group: SendGroup,
        topic: str,
        key: bytes | None,
        records: list[OutRecord],
    ) -> SendResult:
        """Append the records in order, then wait until the broker acknowledged them all.

        All records of a group share the key, so they go to one partition,
        chosen like the Java client does (murmur2 of the key; a random one for
        no key), in the order they were sent. Sends that queued up while the
        group's earlier ones were appended go in together.
        """
        loop = asyncio.get_running_loop()
        item = _Pending(records, loop.create_future(), loop.time())
        group.queue.append(item)
        async with group.lock:
            if group.queue:
                items, group.queue = group.queue, []
                await self._append(connect, group, topic, key, items)
        return await item.done

    async def _append(
        self,
        connect: Connect,
        group: SendGroup,
        topic: str,
        key: bytes | None,
        items: list[_Pending],
    ) -> None:
        if group.failed:
            for it in items:
                _settle_error(it.done, DeliveryError("an earlier batch failed"))
            return
        generation = -1
        producer_id: tuple[int, int] | None = None
        try:
            producer, generation = await connect()
            partitions = sorted(await producer.partitions_for(topic))
            if self.idempotent:
                producer_id = await self._producer_id_of(producer)
        except (ProducerUnavailable, TimeoutError, KafkaError) as exc:
            group.failed = True
            self.stats.error(exc)
            self.health(exc)
            if isinstance(exc, ProducerUnavailable):
                error = DeliveryError(str(exc))
            else:
                error = DeliveryError(f"send to {self.name} failed: {exc!r}", generation)
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
            if queue is not None and queue.pump is not None:
                queue.pump.cancel()  # its requests carry the old producer ID
            queue = self._queues[topic, partition] = _PartitionQueue(
                producer,
                topic,
                partition,
                self.new_batch,
                functools.partial(self._sender, producer_id=producer_id),
            )
        for it in items:
            # For each batch the item's records went into, how many.
            shares = queue.add_all(group, key, it.records, it.at)
            task = asyncio.ensure_future(
                self._settle(group, it.done, [(b.done, i, n) for b, i, n in shares], generation)
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
        if queue.pump is None:
            queue.pump = asyncio.ensure_future(self._pump(queue))

    async def _producer_id_of(self, producer: AIOKafkaProducer) -> tuple[int, int]:
        """The producer ID and epoch of pylog's produce requests on ``producer``: one
        per producer, asked for once (concurrent callers share the request)."""
        if self._producer_id is None or self._producer_id[0] is not producer:
            asking = asyncio.ensure_future(init_producer_id(producer.client, PRODUCER_ID_TIMEOUT))
            self._producer_id = (producer, asking)
        fut = self._producer_id[1]
        try:
            return await asyncio.shield(fut)
        except (TimeoutError, KafkaError):
            if self._producer_id is not None and self._producer_id[1] is fut:
                self._producer_id = None  # the next send asks again
            raise

    def _sender(
        self, queue: _PartitionQueue, producer_id: tuple[int, int] | None
    ) -> PartitionSender[_Batch]:
        return PartitionSender(
            client_produce(queue.producer.client, self.acks, self.request_timeout_ms),
            queue.topic,
            queue.partition,
            producer_id,
            functools.partial(_outcome, queue),
            self._failed_round,
            split=_split_batch,
        )

    def _failed_round(self, exc: BaseException) -> None:
        self.stats.error(exc)
        self.health(exc)

    async def _pump(self, queue: _PartitionQueue) -> None:
        """Send a partition's batches in order through its sender (:mod:`.pipeline`).
        A sealed batch goes as soon as there is room; the batch being filled goes
        when nothing is in flight, or once it has lingered."""
        sender = queue.sender
        loop = asyncio.get_running_loop()

        def take() -> _Batch | None:
            if queue.sealed:
                batch = queue.sealed.popleft()
            else:
                opened = queue.open
                if opened is None or opened.count == 0:
                    return None
                if sender.in_flight() and loop.time() - opened.since < self.linger:
                    return None  # it fills while the others are at the broker
                queue.open = None
                opened.builder.close()
                batch = opened
            self.stats.watch(batch.done, batch.count, batch.since, self.health)
            return batch

        try:
            while True:
                sender.fill(take)
                if sender.idle():
                    break  # nothing to send: the next send starts a pump again
                timeout = None
                if queue.open is not None and not queue.sealed:
                    timeout = max(0.0, queue.open.since + self.linger - loop.time())
                queue.wake = loop.create_future()
                await sender.step(queue.wake, timeout)
        finally:
            queue.pump = None
            queue.wake = None
            sender.close(asyncio.CancelledError())
            queue.fail_all(asyncio.CancelledError())  # if it ended early (cancelled)

    def forget(self, producer: AIOKafkaProducer) -> None:
        """``producer`` is being replaced or closed: stop the pumps sending through
        it (what they hold fails; the shipping tasks send it again)."""
        for pump in self._pumps_of(producer):
            pump.cancel()

    async def drain(self, producer: AIOKafkaProducer, timeout: float) -> None:
        """Give the pumps sending through ``producer`` up to ``timeout`` s to deliver
        what they hold (the shutdown's flush), then stop them."""
        pumps = self._pumps_of(producer)
        if pumps and timeout > 0:
            await asyncio.wait(pumps, timeout=timeout)
        self.forget(producer)

    def _pumps_of(self, producer: AIOKafkaProducer) -> list[asyncio.Future[None]]:
        return [q.pump for q in self._queues.values() if q.producer is producer and q.pump]

    async def _settle(
        self,
        group: SendGroup,
        done: asyncio.Future[SendResult],
        parts: list[tuple[asyncio.Future[Any], int, int]],
        generation: int,
    ) -> None:
        """A send's outcome from those of the batches its records went into (each
        with the index of its first record there and how many)."""
        results = await asyncio.gather(*(f for f, _, _ in parts), return_exceptions=True)
        rejected = 0
        for res, (_, first, count) in zip(results, parts, strict=True):
            if isinstance(res, REJECTED):
                rejected += count
            elif isinstance(res, tuple):  # a batch that was split: its refused records
                rejected += sum(1 for i in res if first <= i < first + count)
            elif isinstance(res, BaseException):
                group.failed = True
                _settle_error(
                    done, DeliveryError(f"delivery to {self.name} failed: {res!r}", generation)
                )
                return
        if not done.done():
            done.set_result(SendResult(rejected))


def _outcome(queue: _PartitionQueue, batch: _Batch, exc: BaseException | None) -> None:
    """A batch sent by pylog's own requests is done (:mod:`.pipeline`): pass its
    outcome on. A batch the broker rejects for good is counted and dropped; any
    other failure fails the partition's batches not handed over yet."""
    if batch.done.done():
        return
    if exc is None:
        batch.done.set_result(None)
    elif isinstance(exc, REJECTED):
        batch.done.set_exception(exc)  # these records only: counted, not sent again
    else:
        _fail_batch(batch, exc)
        queue.fail_all(exc)


def _split_batch(batch: _Batch) -> list[_Batch] | None:
    """A batch the broker refused as too large, as two (``RecordBatch.split``) that
    take its place in the sender; its own outcome comes from theirs (:func:`_join`)."""
    builders = batch.builder.split()
    if builders is None:
        return None
    loop = asyncio.get_running_loop()
    parts = []
    for builder in builders:
        part = _Batch(builder, batch.since, loop.create_future())
        part.count = builder.record_count()
        part.groups = batch.groups
        parts.append(part)
    _join(batch, parts)
    return parts


def _join(whole: _Batch, parts: list[_Batch]) -> None:
    """Once every part of a split batch has its outcome, give the batch its own: the
    first failure of a part, else the indices (in the batch) of the records refused
    for good, as a tuple (empty when all were appended)."""
    left = len(parts)

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if left or whole.done.done():
            return
        refused: list[int] = []
        first = 0
        for part in parts:
            exc = asyncio.CancelledError() if part.done.cancelled() else part.done.exception()
            if isinstance(exc, REJECTED):
                refused.extend(range(first, first + part.count))
            elif exc is not None:
                _fail_batch(whole, exc)
                return
            elif isinstance(res := part.done.result(), tuple):
                refused.extend(first + i for i in res)
            first += part.count
        whole.done.set_result(tuple(refused))

    for part in parts:
        part.done.add_done_callback(one_done)


def _fail_batch(batch: _Batch, exc: BaseException) -> None:
    for group in batch.groups:
        group.failed = True
    if not batch.done.done():
        batch.done.set_exception(exc)


def _settle_error(done: asyncio.Future[SendResult], error: DeliveryError) -> None:
    if not done.done():
        done.set_exception(error)
