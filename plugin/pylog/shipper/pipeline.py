"""A partition's batches as produce requests of pylog's own, several in flight.

Why this exists: aiokafka's sender sends a broker one produce request at a
time (``Sender._sender_routine`` drains no batch for a node while a request to
it is out), so a partition got one batch per broker round trip however fast
the rest of pylog was; that was the measured limit of the one-container rate.
Its accumulator also had to be worked around (a batch queued behind one that
failed went out anyway, a batch refused for good kept its sequence numbers).
pylog sends its batches itself, on aiokafka's client, and uses no other part of
aiokafka's producer.

Kafka's Java producer keeps up to five requests in flight per connection. It
can, because the broker handles a connection's requests one at a time in the
order they came, and, for an idempotent producer, appends a partition's batch
only if its sequence number follows the last one appended (else it answers
OUT_OF_ORDER_SEQUENCE_NUMBER), and answers a batch it already appended (one of
the last five of that producer and partition) with success. So batches in
flight reach the log in the order sent or not at all, and one sent again is
not doubled. But the broker checks the order only once it knows the producer on
the partition: it takes *any* sequence number from a producer ID it has no state
for (new, or expired after ``producer.id.expiration.ms``). Kafka 4.4 appended
the second of two batches of a new producer ID after refusing the first.
:class:`PartitionSender` keeps those rules, per partition of one producer ID:

* Sequence numbers are its own: a batch gets the next one when first sent,
  written into its header (``RecordBatch.stamp``).
* At most ``depth`` batches in flight, never more than :data:`MAX_IN_FLIGHT`
  (the five the broker remembers, so a batch sent again is recognised), and
  only one until the broker has acknowledged a batch since the last failure
  (and within :data:`FORGET_AFTER`): then it knows the producer, and the
  batches behind that one are checked against it.
* Outcomes are taken in the order the batches were sent. A success is
  delivered. At the first failure, the others in flight are awaited; that
  batch and every batch after it go out again, in order, with the same
  sequence numbers, after a backoff with jitter. The broker answers those it
  did append as duplicates, so nothing is doubled and nothing overtakes.
  Retriable errors (connection lost, timeout, leader moved) are retried until
  the producer is closed or replaced, as aiokafka's idempotent producer does;
  a broker outage shows as batches waiting (and one error per attempt), not
  as failed sends.
* A batch of more than one record that the broker refuses as too large
  (``TOO_LARGE``: above the topic's ``max.message.bytes``) is split (``split``,
  the owner's): its halves take its place, with its sequence numbers, before
  the batches behind it, which keep theirs; a half still too large is split
  again. So a topic with a lower limit than pylog's batches loses nothing.
* A batch the broker refuses for good (``REJECTED``: a single record too large,
  an invalid topic) is dropped and counted. None after it was appended (they
  were out of order), so they are numbered again from its sequence number, and
  the partition sends one batch at a time from then on.
* Any other error (out of order or unknown producer ID when nothing failed
  before it, a fenced epoch, authorization) fails that batch and every later
  one, and every batch handed over after it: the shipping tasks rewind from
  their acknowledged positions and the producer is replaced by one with a new
  ID (``ClusterProducer.reset``).

Without idempotence (``KAFKA_IDEMPOTENCE=false``, no producer ID) there are no
sequence numbers for the broker to check, so nothing could keep a batch from
overtaking one that failed before it: a partition has one batch in flight at a
time, and one sent again after a lost answer may be doubled (at least once).

Written against aiokafka **0.14.0** (:data:`AIOKAFKA_VERSIONS`), of which
it uses the client only: ``AIOKafkaClient.send`` (several requests in flight
on one connection, answered in order), its cluster metadata, and the
``ProduceRequest`` and ``InitProducerIdRequest`` protocol classes;
``tests/unit/shipper/test_aiokafka_contract.py`` and
``tests/kafka/test_pipeline_contract.py`` pin them, the latter on a real broker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import errors as kafka_errors
from aiokafka.errors import (
    DuplicateSequenceNumber,
    InvalidTopicError,
    KafkaError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.structs import TopicPartition

from .backoff import Backoff

#: The aiokafka versions whose client (above) was checked; the contract tests fail
#: on any other, so that someone re-checks it on an upgrade.
AIOKAFKA_VERSIONS = ("0.14.0",)

#: Batches of a partition in flight at most: the broker keeps the last five of a
#: producer and partition to recognise one sent again.
MAX_IN_FLIGHT = 5

#: After this long without an acknowledgement (seconds), the broker may have
#: forgotten the producer: the next batch goes alone. Far below the broker's
#: ``producer.id.expiration.ms`` (a day by default).
FORGET_AFTER = 60.0

#: The broker's answers to a batch larger than it takes (``message.max.bytes``,
#: ``max.message.bytes``; ``segment.bytes``): a batch of several records is split.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)

#: Errors that sending again cannot fix: the batch's records are dropped and counted.
REJECTED = (*TOO_LARGE, InvalidTopicError)

#: The wait between rounds of sending failed batches again (seconds, doubling, jittered).
RETRY_BACKOFF = (0.05, 2.0)

#: The producer ID and epoch of a batch without idempotence.
NO_PRODUCER = (-1, -1)

#: Sends one batch to its partition's leader: ``(topic, partition, data)`` -> the
#: base offset; raises a :class:`KafkaError` for the broker's (or the client's) error.
Produce = Callable[[str, int, bytes], Awaitable[int]]


class Stampable(Protocol):
    def record_count(self) -> int: ...

    def stamp(self, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes: ...


class Item(Protocol):
    """What the sender sends: something holding a batch."""

    @property
    def builder(self) -> Stampable: ...


T = TypeVar("T", bound=Item)

#: Told each item's outcome once: None (acknowledged) or its error.
Outcome = Callable[[T, BaseException | None], None]

#: An item the broker refused as too large, as smaller items holding its records in
#: order; None if it cannot be split (one record). The sender then tells the
#: outcomes of the parts, never of the item split.
Split = Callable[[T], "list[T] | None"]


class _Flight(Generic[T]):
    __slots__ = ("item", "sequence", "task")

    def __init__(self, item: T, sequence: int, task: asyncio.Task[int]) -> None:
        self.item = item
        self.sequence = sequence
        self.task = task


class PartitionSender(Generic[T]):
    """One partition's batches of one producer ID, up to ``depth`` in flight (rules
    in the module docstring); ``producer`` None: no idempotence, one in flight.
    Runs on one asyncio loop; its owner (the partition's pump) calls :meth:`fill`
    and :meth:`step` in turn and :meth:`close` at the end.

    ``outcome`` is told each item's outcome, in the order the items were given;
    ``on_error`` the error that made a round send batches again (counters, health
    logging: an outcome reports the rest).
    """

    def __init__(
        self,
        produce: Produce,
        topic: str,
        partition: int,
        producer: tuple[int, int] | None,
        outcome: Outcome[T],
        on_error: Callable[[BaseException], None],
        depth: int = MAX_IN_FLIGHT,
        backoff: Backoff | None = None,
        split: Split[T] | None = None,
    ) -> None:
        if not 1 <= depth <= MAX_IN_FLIGHT:
            raise ValueError(f"depth must be 1..{MAX_IN_FLIGHT}, not {depth}")
        self._produce = produce
        self.topic = topic
        self.partition = partition
        #: Whether batches carry a producer ID and sequence numbers (idempotence).
        self._numbered = producer is not None
        self._producer_id, self._epoch = producer or NO_PRODUCER
        self._outcome = outcome
        self._on_error = on_error
        self.depth = depth if self._numbered else 1
        self._backoff = backoff or Backoff(*RETRY_BACKOFF)
        self._split = split
        self._flights: deque[_Flight[T]] = deque()
        #: Items to send again, in order, before any new one (with their numbers).
        self._again: deque[tuple[T, int]] = deque()
        self._next_sequence = 0
        #: Loop time of the last acknowledgement since the last failure (None: none).
        self._acked_at: float | None = None
        #: The error that broke this producer ID for the partition (see the rules).
        self.broken: BaseException | None = None

    def idle(self) -> bool:
        """Nothing in flight and nothing waiting to be sent again."""
        return not self._flights and not self._again

    def in_flight(self) -> int:
        return len(self._flights)

    def fill(self, take: Callable[[], T | None]) -> None:
        """Send until ``depth`` are in flight: first those to send again, then what
        ``take`` gives (None: nothing more now)."""
        now = asyncio.get_running_loop().time()
        known = self._acked_at is not None and now - self._acked_at < FORGET_AFTER
        depth = self.depth if known else 1
        while len(self._flights) < depth:
            if self._again:
                item, sequence = self._again.popleft()
            else:
                new = take()
                if new is None:
                    return
                if self.broken is not None:
                    self._outcome(new, self.broken)
                    continue
                item, sequence = new, self._next_sequence
                self._next_sequence += item.builder.record_count()
            self._fly(item, sequence)

    def _fly(self, item: T, sequence: int) -> None:
        if not self._numbered:
            sequence = 0  # what an unnumbered batch carries (the Java client's and aiokafka's)
        data = item.builder.stamp(self._producer_id, self._epoch, sequence)
        task = asyncio.ensure_future(self._produce(self.topic, self.partition, data))
        self._flights.append(_Flight(item, sequence, task))

    async def step(self, wake: asyncio.Future[Any] | None, timeout: float | None) -> None:
        """Wait for the oldest batch in flight (or ``wake``, or ``timeout``), then take
        the outcomes that are in, in order; after a failure, send again as the rules
        say (this waits out the backoff)."""
        if self._flights and not self._flights[0].task.done():
            waits: list[asyncio.Future[Any]] = [self._flights[0].task]
            if wake is not None:
                waits.append(wake)
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        while self._flights and self._flights[0].task.done():
            head = self._flights[0]
            if _error(head.task) is not None:
                await self._recover()
                return
            self._flights.popleft()
            self._backoff.reset()
            self._acked_at = asyncio.get_running_loop().time()
            self._outcome(head.item, None)

    async def _recover(self) -> None:
        """The oldest batch in flight failed: sort out the round (see the rules)."""
        await asyncio.wait([f.task for f in self._flights])
        flights, self._flights = list(self._flights), deque()
        # Still waiting from an earlier round (fewer go at once after a failure):
        # they come after the batches that were in flight.
        waiting = [item for item, _ in self._again]
        self._again.clear()
        self._acked_at = None
        retried: BaseException | None = None  # the first cause of sending again
        sequence = flights[0].sequence  # everything before it was delivered
        fatal: BaseException | None = None
        earlier_failed = False
        for flight in flights:
            exc = _error(flight.task)
            if fatal is not None:
                self._outcome(flight.item, fatal)
            elif isinstance(exc, TOO_LARGE) and (parts := self._parts(flight.item)):
                # Its parts in its place, with its numbers: none behind it moves.
                for part in parts:
                    self._again.append((part, sequence))
                    sequence += part.builder.record_count()
                earlier_failed = True
                if retried is None:
                    retried = exc
            elif isinstance(exc, REJECTED):
                self._outcome(flight.item, exc)  # dropped; its number is used again
                self.depth = 1
                earlier_failed = True
            elif exc is None or _retriable(exc, earlier_failed):
                self._again.append((flight.item, sequence))
                sequence += flight.item.builder.record_count()
                earlier_failed = True
                if retried is None and not isinstance(exc, OutOfOrderSequenceNumber | None):
                    retried = exc
            else:
                fatal = self.broken = exc
                self._outcome(flight.item, exc)
        if fatal is not None:
            while self._again:
                self._outcome(self._again.popleft()[0], fatal)
            for item in waiting:
                self._outcome(item, fatal)
            return
        for item in waiting:
            self._again.append((item, sequence))
            sequence += item.builder.record_count()
        self._next_sequence = sequence
        if retried is not None:
            self._on_error(retried)  # outcomes report the rest (rejected, fatal)
        if self._again:
            await asyncio.sleep(self._backoff.next())

    def _parts(self, item: T) -> list[T] | None:
        if self._split is None or item.builder.record_count() < 2:
            return None
        return self._split(item)

    def close(self, exc: BaseException) -> None:
        """Stop: what is in flight or waiting to go again fails with ``exc``."""
        flights, self._flights = self._flights, deque()
        for flight in flights:
            flight.task.cancel()
            self._outcome(flight.item, exc)
        while self._again:
            self._outcome(self._again.popleft()[0], exc)


def _error(task: asyncio.Task[int]) -> BaseException | None:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


def _retriable(exc: BaseException, earlier_failed: bool) -> bool:
    """Whether a batch that failed with ``exc`` is sent again (with its number)."""
    if isinstance(exc, OutOfOrderSequenceNumber):
        return earlier_failed  # expected behind a failure; else the broker lost track
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


# -- on aiokafka's client -------------------------------------------------------------


def client_produce(client: Any, acks: int, timeout_ms: int) -> Produce:
    """:data:`Produce` on an aiokafka client: one batch per request, to the
    partition's leader. ``acks`` -1 (all: what idempotence needs), 1 or 0 (no
    answer: the base offset is -1)."""

    async def produce(topic: str, partition: int, data: bytes) -> int:
        node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if node is None or node < 0:
            client.force_metadata_update()
            raise LeaderNotAvailableError(f"no leader known for {topic}-{partition}")
        request = ProduceRequest(
            transactional_id=None,
            required_acks=acks,
            timeout=timeout_ms,
            topics=[(topic, [(partition, data)])],
        )
        try:
            response = await client.send(node, request)
        except KafkaError as exc:
            if getattr(exc, "invalid_metadata", False):
                client.force_metadata_update()
            raise
        if acks == 0:
            return -1
        for _topic, partitions in response.topics:
            for info in partitions:
                error = kafka_errors.for_code(info[1])
                if error is kafka_errors.NoError or error is DuplicateSequenceNumber:
                    return int(info[2])
                if getattr(error, "invalid_metadata", False):
                    client.force_metadata_update()
                raise error()
        raise kafka_errors.UnknownError(f"no answer for {topic}-{partition} in the response")

    return produce


async def init_producer_id(client: Any, timeout: float) -> tuple[int, int]:
    """A new producer ID and epoch for an idempotent producer (no transactions)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    backoff = Backoff(*RETRY_BACKOFF)
    while True:
        node = client.get_random_node()
        try:
            if node is None:
                raise kafka_errors.NoBrokersAvailable()
            response = await client.send(
                node, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
            )
            error = kafka_errors.for_code(response.error_code)
            if error is kafka_errors.NoError:
                return int(response.producer_id), int(response.producer_epoch)
            raise error()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or loop.time() >= end:
                raise
        await asyncio.sleep(min(backoff.next(), max(0.0, end - loop.time())))
