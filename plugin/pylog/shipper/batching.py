"""Per-partition batches shared by every container, and how they reach the broker.

Records of every container on a partition gather in shared batches (pylog's
own, :mod:`.recordbatch`), one partition's pump (:meth:`Batcher._pump_requests`
or :meth:`Batcher._pump`) sends them in order. Two ways out:

* **With idempotence (the default)**: as pylog's own produce requests on the
  producer's client, up to five of a partition in flight, numbered by pylog
  (:mod:`.pipeline`, which says why and how that keeps order and loses nothing).
  aiokafka's sender, which keeps one request per broker in flight, is not used.
* **Without it**: through aiokafka's sender (``send_batch``), one batch in
  flight and one queued per partition, with the workarounds below. Without
  sequence numbers, a batch behind one that failed cannot be kept from
  overtaking it at the broker, so no more than one can be out at a time.

The aiokafka path exists only because of two behaviours of aiokafka; it is
written against aiokafka **0.14.0** (:data:`AIOKAFKA_VERSIONS`), and
``tests/unit/shipper/test_aiokafka_contract.py`` and
``tests/kafka/test_aiokafka_contract.py`` fail when either changes.

1. **One queued batch per partition, and a shrinking wait for the others.**
   ``MessageAccumulator.add_batch`` (what ``AIOKafkaProducer.send_batch`` calls)
   queues a batch only when no batch of its partition is queued; other callers
   wait for that one to be taken by the sender (``MessageBatch.wait_drain``).
   It notes the start time once and then, on every wake-up, takes *all* the
   time waited so far off the remaining timeout again (``timeout -=
   time.monotonic() - start``). With several callers on one partition, those
   that lost a few rounds got ``KafkaTimeoutError`` after seconds, not after
   the request timeout. Here each partition has a single caller, its pump
   (:meth:`Batcher._pump`); the records of every container on the partition
   gather in one shared batch meanwhile.

2. **The next queued batch goes out even when the one before it failed.**
   ``Sender._send_produce_req`` unmutes a partition once its in-flight batch is
   done, delivered or failed, and the next ``MessageAccumulator.drain_by_nodes``
   sends the partition's queued batch; ``AIOKafkaProducer.stop`` flushes what is
   queued too. With a second batch queued behind one the broker refused for
   good, the second one's lines reached the topic before the failed ones were
   sent again: a hole, filled later or never (Kafka 4.4 appended it, refusing
   the first with InvalidTimestamp, with the idempotent producer on or off).
   Yet a queued batch is what keeps the broker busy: without one, every batch
   waits a whole turn of the client (delivery, pump, hand-over, drain) after
   the one before. So the pump keeps at most :data:`PIPELINE` batches of a
   partition inside aiokafka, one in flight and one queued, and when one fails,
   the batch queued behind it is taken back out of the accumulator's queue
   (``MessageAccumulator._batches[tp]``) before the sender can drain it
   (:func:`_withdraw`). That is safe because aiokafka fails a batch (sets its
   ``MessageBatch.future``) before the request task that carried it ends, and the
   sender drains only after that task's end wakes it: the done callback on the
   failed batch's own future (:func:`_delivered`) always runs first. Found
   through the accumulator's queue, that future is the one thing of aiokafka
   the pump holds on to (:func:`_queued_batch`); where it is not found, the pump
   falls back to one batch at a time. The batches behind a failure, withdrawn
   or not handed over yet, fail unsent, and so do the groups with records in
   them (:meth:`_PartitionQueue.fail_all`).

Batches are pylog's own (:mod:`.recordbatch`: the bytes aiokafka's builder
would make, filled with one call per send instead of one per record), several
times faster than a ``send()`` per record. A batch is shared by the containers
on its partition: a batch per container instead served 200 containers on 4
partitions 4 batches per round trip, and their sends piled up in memory far
faster than they left.

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
from aiokafka.structs import TopicPartition

from .errors import BatchWithdrawn, DeliveryError, ProducerUnavailable
from .pipeline import (
    MAX_IN_FLIGHT,
    PartitionSender,
    client_produce,
    init_producer_id,
)
from .pipeline import REJECTED as REJECTED
from .producer_stats import ProducerStats
from .recordbatch import RecordBatch
from .schema import OutRecord

#: The aiokafka versions whose behaviours (above) were checked; the contract
#: tests fail on any other, so that someone re-checks them on an upgrade.
AIOKAFKA_VERSIONS = ("0.14.0",)

#: Batches of a partition inside aiokafka at once: one in flight, one queued behind
#: it (behaviour 2).
PIPELINE = 2

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


class _Inside:
    """A batch handed to aiokafka and not delivered yet."""

    __slots__ = ("batch", "delivered", "queued")

    def __init__(self, batch: _Batch, queued: Any, delivered: asyncio.Future[Any]) -> None:
        self.batch = batch
        self.queued = queued
        """aiokafka's ``MessageBatch`` for it (None if it was not found: see
        :func:`_queued_batch`)."""
        self.delivered = delivered
        """What ``send_batch`` returned (a shield over ``queued.future``)."""


class _PartitionQueue:
    """One partition's batches of one aiokafka producer: the one being filled, those
    full, those inside aiokafka.

    Records go into the open batch in the order they come; a full batch (or a
    record of :data:`LARGE_RECORD` or more, which gets a batch of its own) is
    sealed and waits for the partition's pump (:meth:`Batcher._pump`).

    When a batch fails, every batch after it that is not sent yet fails too,
    and so does every group with records in them (:func:`_withdraw`,
    :meth:`fail_all`): a group's later records must not reach Kafka before the
    ones that failed, which it sends again from its acknowledged position.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        new_batch: Callable[[], RecordBatch],
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.new_batch = new_batch
        self.open: _Batch | None = None
        self.sealed: deque[_Batch] = deque()
        self.inside: deque[_Inside] = deque()
        """Handed to aiokafka, oldest first (at most :data:`PIPELINE`)."""
        self.sender: PartitionSender[_Batch] | None = None
        """With idempotence: pylog's own produce requests (instead of ``inside``)."""
        self.pump: asyncio.Future[None] | None = None
        self.wake: asyncio.Future[None] | None = None
        """Set when a batch is sealed, for a pump waiting on its requests."""

    def add_all(
        self, group: SendGroup, key: bytes | None, records: list[OutRecord], at: float
    ) -> list[tuple[_Batch, int]]:
        """Append the records in order, as many to a batch as it takes (one call per
        batch, see :mod:`.recordbatch`); returns each batch they went into with how
        many. A batch that is full, or took a record of :data:`LARGE_RECORD` or more,
        is sealed."""
        shares: list[tuple[_Batch, int]] = []
        i = 0
        while i < len(records):
            batch = self.open
            if batch is None:
                loop = asyncio.get_running_loop()
                batch = self.open = _Batch(self.new_batch(), at, loop.create_future())
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
    def _counted(batch: _Batch, group: SendGroup, n: int) -> tuple[_Batch, int]:
        batch.count += n
        if not batch.groups or batch.groups[-1] is not group:
            batch.groups.append(group)
        return batch, n

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
        new_batch: Callable[[], RecordBatch],
        idempotent: bool = False,
        request_timeout_ms: int = 30_000,
        in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.name = name
        #: Makes an empty batch (the cluster's batch size and compression).
        self.new_batch = new_batch
        #: Whether batches go as pylog's own numbered produce requests (:mod:`.pipeline`).
        self.idempotent = idempotent
        self.request_timeout_ms = request_timeout_ms
        #: Requests in flight per partition on that path.
        self.in_flight = in_flight
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
        producer_id = (-1, -1)
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
            if queue is not None and queue.sender is not None and queue.pump is not None:
                queue.pump.cancel()  # its requests carry the old producer ID
            queue = self._queues[topic, partition] = _PartitionQueue(
                producer, topic, partition, self.new_batch
            )
            if self.idempotent:
                queue.sender = self._sender(queue, producer_id)
        for it in items:
            # For each batch the item's records went into, how many.
            shares = queue.add_all(group, key, it.records, it.at)
            task = asyncio.ensure_future(
                self._settle(group, it.done, [(b.done, c) for b, c in shares], generation)
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
        if queue.pump is None:
            pump = self._pump if queue.sender is None else self._pump_requests
            queue.pump = asyncio.ensure_future(pump(queue))

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
        self, queue: _PartitionQueue, producer_id: tuple[int, int]
    ) -> PartitionSender[_Batch]:
        return PartitionSender(
            client_produce(queue.producer.client, self.request_timeout_ms),
            queue.topic,
            queue.partition,
            producer_id,
            functools.partial(_outcome, queue),
            self._failed_round,
            depth=self.in_flight,
        )

    def _failed_round(self, exc: BaseException) -> None:
        self.stats.error(exc)
        self.health(exc)

    async def _pump_requests(self, queue: _PartitionQueue) -> None:
        """Send a partition's batches as pylog's own produce requests, several in
        flight (:mod:`.pipeline`). A sealed batch goes as soon as there is room; the
        batch being filled goes when nothing is in flight, or once it has lingered."""
        sender = queue.sender
        assert sender is not None
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
        for queue in self._queues.values():
            if queue.producer is producer and queue.pump is not None:
                queue.pump.cancel()

    async def drain(self, producer: AIOKafkaProducer, timeout: float) -> None:
        """Give the pumps sending through ``producer`` up to ``timeout`` s to deliver
        what they hold (the shutdown's flush), then stop them."""
        pumps = [q.pump for q in self._queues.values() if q.producer is producer and q.pump]
        if pumps and timeout > 0:
            await asyncio.wait(pumps, timeout=timeout)
        self.forget(producer)

    async def _pump(self, queue: _PartitionQueue) -> None:
        """Hand a partition's batches to aiokafka in order, each once the one two
        before it is delivered (behaviours 1 and 2 in the module docstring).

        The pump is the partition's only ``send_batch`` caller, so aiokafka
        holds at most :data:`PIPELINE` batches of the partition: one in flight,
        and one queued behind it that :func:`_withdraw` takes back if the one in
        flight fails. The queued one is closed and compressed at once (nothing
        is added to a batch handed over), while the broker works on the other.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = queue.take()
                if batch is None:
                    if not queue.inside:
                        break
                    # Nothing to hand over: the next one is what gathers meanwhile.
                    await self._delivery(queue.inside[-1])
                    continue
                if queue.inside:
                    batch.builder.compress()  # it waits behind the one in flight
                elif loop.time() - batch.since >= self.linger:
                    batch.builder.close()  # it has lingered (waiting for the one before)
                try:
                    fut: asyncio.Future[Any] = await queue.producer.send_batch(
                        batch.builder, queue.topic, partition=queue.partition
                    )
                except (TimeoutError, KafkaError, BatchWithdrawn) as exc:
                    self.stats.error(exc)
                    self.health(exc)
                    _fail_batch(batch, exc)
                    queue.fail_all(exc)
                    continue
                except BaseException as exc:
                    _fail_batch(batch, exc)
                    raise
                # No await since send_batch queued it: the sender has not taken it.
                queued = _queued_batch(queue, batch)
                entry = _Inside(batch, queued, fut)
                queue.inside.append(entry)
                self.stats.watch(fut, batch.count, batch.since, self.health)
                done = queued.future if queued is not None else fut
                done.add_done_callback(functools.partial(_delivered, queue, entry))
                if queued is None or len(queue.inside) >= PIPELINE:
                    # Delivered or failed: a failure has failed (and withdrawn) the
                    # batches after it by now (_delivered), so none is handed over.
                    await self._delivery(queue.inside[0])
        finally:
            queue.pump = None
            queue.fail_all(asyncio.CancelledError())  # if it ended early (cancelled)

    @staticmethod
    async def _delivery(entry: _Inside) -> None:
        await asyncio.wait([entry.delivered])
        await asyncio.sleep(0)  # let every _delivered run first

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


def _delivered(queue: _PartitionQueue, entry: _Inside, fut: asyncio.Future[Any]) -> None:
    """A batch handed to aiokafka is done: pass its outcome on. A failure fails the
    batches of the partition not sent yet, withdrawing the one queued inside
    aiokafka (behaviour 2); a batch the broker rejects for good is counted and
    dropped.

    Runs as the done callback of aiokafka's own future for the batch, so before
    the sender can drain the batch queued behind it."""
    if entry in queue.inside:
        queue.inside.remove(entry)
    batch = entry.batch
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
        _withdraw(queue)
        queue.fail_all(exc)


def _queued_batch(queue: _PartitionQueue, batch: _Batch) -> Any:
    """aiokafka's ``MessageBatch`` for a batch ``send_batch`` has just queued: the
    last of its partition's queue in the accumulator, holding our builder. None if
    it is not there (aiokafka changed: the pump then sends one batch at a time)."""
    waiting = _accumulator_queues(queue.producer).get(TopicPartition(queue.topic, queue.partition))
    if waiting and getattr(waiting[-1], "_builder", None) is batch.builder:
        return waiting[-1]
    return None


def _accumulator_queues(producer: AIOKafkaProducer) -> dict[TopicPartition, Any]:
    """``MessageAccumulator._batches``: the batches queued per partition, not sent."""
    queues = getattr(getattr(producer, "_message_accumulator", None), "_batches", None)
    return queues if isinstance(queues, dict) else {}


def _withdraw(queue: _PartitionQueue) -> None:
    """Take the batches still queued inside aiokafka back out, unsent, and fail them
    (and the groups with records in them): the one before them failed."""
    tp = TopicPartition(queue.topic, queue.partition)
    waiting = _accumulator_queues(queue.producer)
    while queue.inside:
        entry = queue.inside.popleft()
        exc = BatchWithdrawn("not sent: the batch before it failed")
        _fail_batch(entry.batch, exc)
        queued = entry.queued
        in_queue = waiting.get(tp)
        if queued is None or queued.future.done() or in_queue is None or queued not in in_queue:
            continue  # done already, or (aiokafka changed) on its way: left to its outcome
        in_queue.remove(queued)
        if not in_queue:
            del waiting[tp]  # drain_by_nodes reads the first of every queue it finds
        # Its future and drain waiter (stop's flush, a send_batch waiting) learn it.
        queued.failure(exception=exc)


def _fail_batch(batch: _Batch, exc: BaseException) -> None:
    for group in batch.groups:
        group.failed = True
    if not batch.done.done():
        batch.done.set_exception(exc)


def _settle_error(done: asyncio.Future[SendResult], error: DeliveryError) -> None:
    if not done.done():
        done.set_exception(error)
