"""One container's shipping: its log, from the acknowledged position on, into Kafka.

One asyncio task per container in a shipping process (:mod:`.worker`). It
follows the log through its view (:mod:`.view`, woken by the main process's
messages; a slowly written log is read at most every ``FOLLOW_FROM_INTERVAL``),
turns records into lines (:mod:`.assemble`) and Kafka records (:mod:`.schema`),
and hands them in batches to the cluster's producer, awaiting it on the same
loop. Acknowledgements are taken strictly in order; the position of the last
one is stored in the container's directory (:mod:`.position`), and the main
process is told when its generation (or that of the file being read) changes
(:class:`~.ipc.Progress`), so it keeps the rotated files still needed and counts
those rotation deletes unread.

Failure model: the local log is the write-ahead log, so nothing is kept in
memory that is not also on disk. When a batch fails (broker down, timeout,
producer restart) every batch after it is dropped too, the producer is
replaced, and reading starts again at the acknowledged position after a
capped exponential backoff with jitter (:mod:`.backoff`), until the broker
takes the lines; only the backlog of a container whose logging has stopped is
given up, after ``KAFKA_BACKLOG_MAX_AGE`` (:mod:`.backlog`). Lines that were
in flight may thus reach Kafka twice (at least once). A task that fails in an
unexpected way is logged and started again the same way; it never ends the
process or another task. Ingest never waits on any of this: it only appends
to the log, in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..store.logfile import CURRENT
from ..store.reader import Position, follow_from_async
from .assemble import Item, LineAssembler
from .backlog import BacklogLimit, mtime
from .backoff import Backoff
from .errors import DeliveryError, PositionError
from .ipc import Finished, FromWorker, Progress, log_id
from .position import PositionUnreadable, load_position, position_path, save_position
from .producer import ClusterProducer, SendGroup, SendResult
from .routing import Route
from .schema import Line, OutRecord, PlainRun, ValueBuilder
from .view import LogView

log = logging.getLogger(__name__)

#: Records per producer hand-over.
BATCH_RECORDS = 2000
#: Lines read ahead of the broker's acknowledgements, at most: bounds memory and how
#: long a batch queues in a shared producer, where one that outwaits the request
#: timeout is shipped again (docs/performance.md, "Why the constants are what they are").
MAX_IN_FLIGHT = 20_000
#: Backoff between retries after a failure: doubles from MIN to MAX, each wait
#: drawn from the upper half of that (see backoff.py).
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
#: The acknowledged position is written at most this often (and at the end).
SAVE_INTERVAL = 0.5
#: Warnings about the same kind of trouble are repeated at most this often.
WARN_INTERVAL = 60.0
#: While waiting for acknowledgements, how often halting and the backlog's age are checked.
ACK_CHECK = 0.2


@dataclass
class ShipperStats:
    lines_sent: int = 0
    lines_acked: int = 0
    lines_rejected: int = 0
    """Lines the broker can never take (too large), dropped."""
    lines_abandoned: int = 0
    """Lines of a stopped container given up after KAFKA_BACKLOG_MAX_AGE (see backlog.py)."""
    retries: int = 0
    bad_records: int = 0


class _Rewind(Exception):
    """Internal: a delivery failed, start again from the acknowledged position."""


_InFlight = deque[tuple["asyncio.Task[SendResult]", Position, int]]


class ShippingTask:
    """One container's shipping (see the module docstring); :meth:`start` runs it."""

    def __init__(
        self,
        *,
        container_id: str,
        log_name: str = "",
        directory: Path,
        view: LogView,
        route: Route,
        builder: ValueBuilder,
        make_assembler: Callable[[Position], LineAssembler],
        producer: ClusterProducer,
        start: Position,
        send: Callable[[FromWorker], None],
        on_done: Callable[[ShippingTask], None] | None = None,
        backoff: Backoff | None = None,
        limit: BacklogLimit | None = None,
    ) -> None:
        self.container_id = container_id
        self.log_name = log_name
        """The declared file log shipped; empty for the container's own log."""
        self.log_id = log_id(container_id, log_name)
        #: How messages name it: the short ID, and the declared log's name.
        self.short_id = log_id(container_id[:12], log_name)
        self.directory = directory
        self.view = view
        self.route = route
        self.stats = ShipperStats()
        self._builder = builder
        self._make_assembler = make_assembler
        self._producer = producer
        self._acked = start
        self._saved: Position | None = None
        self._saved_at = 0.0
        self._read = start
        self._send_message = send
        self._progress_sent: tuple[int, int] | None = None
        self._on_done = on_done
        self._limit = limit
        self._backoff = backoff if backoff is not None else Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self._halt = asyncio.Event()
        self._warned: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # -- control -------------------------------------------------------------------

    @property
    def acked(self) -> Position:
        return self._acked

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    @property
    def running(self) -> asyncio.Task[None]:
        """The asyncio task (once started)."""
        assert self._task is not None
        return self._task

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pylog-ship-{self.short_id}"
        )

    def halt(self) -> None:
        """Stop now; what was acknowledged is stored, the rest ships on the next start."""
        self._halt.set()
        self.view.wake()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until the task has ended, ``timeout`` at most; whether it has."""
        if self._task is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self._task.done()

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            self._keep_stored_position()
            self._save(force=True)
            self._progress(force=True)
            while not self._halt.is_set():
                before = self._acked
                try:
                    await self._ship_once()
                    if self.view.state().closed:
                        break
                    # Its logging started again while the last lines were acknowledged
                    # (a Ship for it came): carry on where it stopped.
                    continue
                except _Rewind as exc:
                    if self._halt.is_set():
                        break
                    reason = str(exc)
                except Exception as exc:
                    log.exception("container %s: Kafka shipping failed unexpectedly", self.short_id)
                    reason = repr(exc)
                if self._acked > before:
                    self._backoff.reset()  # it was working: a fresh failure
                # What was read since the acknowledged position must be read again.
                self._read = self._acked
                if self._backlog_expired():
                    await self._give_up()
                    break
                self.stats.retries += 1
                self._producer.stats.note_retry()
                self._warn(
                    "delivery",
                    "container %s: shipping to Kafka topic %s failed, retrying from the "
                    "last acknowledged line (%s)",
                    self.short_id,
                    self.route.topic,
                    reason,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._halt.wait(), self._backoff.next())
        except Exception:
            log.exception("container %s: Kafka shipping task crashed", self.short_id)
        finally:
            # No await from the check of the view's state above to here: a Ship
            # handled meanwhile would find this task ended and start a new one.
            self._save(force=True)
            self._progress()
            if not self._halt.is_set():
                self._send_message(Finished(self.container_id, self.log_name))
            if self._on_done is not None:
                self._on_done(self)

    async def _ship_once(self) -> None:
        """Ship from the acknowledged position until the log is closed and all is acked."""
        start = self._acked
        self._read = start
        assembler = self._make_assembler(start)
        group = SendGroup()
        inflight: _InFlight = deque()
        pending = 0  # lines in flight
        last_commit = start

        def submit(items: Sequence[Item]) -> None:
            """Hand the items' records over in parts of about BATCH_RECORDS, each
            with the commit position of its last item that has one."""
            records: list[OutRecord] = []
            commit: Position | None = None
            for item, position in items:
                if isinstance(item, PlainRun):
                    records += self._builder.plain_records(item)
                else:
                    records.append(self._record(item))
                if position is not None:
                    commit = position
                if len(records) >= BATCH_RECORDS:
                    send(records, commit)
                    records, commit = [], None
            if records:
                send(records, commit)

        def send(records: list[OutRecord], commit: Position | None) -> None:
            nonlocal pending, last_commit
            task = asyncio.ensure_future(
                self._producer.send(group, self.route.topic, self.route.key, records)
            )
            task.add_done_callback(_retrieve)
            # Lines without a commit position of their own are covered by a later
            # one; a part with none at all commits no more than the part before.
            if commit is None:
                commit = last_commit
            last_commit = commit
            inflight.append((task, commit, len(records)))
            pending += len(records)
            self.stats.lines_sent += len(records)

        async def reap(wait_until: int | None = None) -> None:
            try:
                await take_acks(wait_until)
            finally:
                self._save()

        async def take_acks(wait_until: int | None) -> None:
            """Advance the acknowledged position over the batches done, in order;
            with ``wait_until``, wait until at most that many lines are in flight."""
            nonlocal pending
            while inflight:
                fut, commit, count = inflight[0]
                if not fut.done():
                    if wait_until is None or pending <= wait_until:
                        return
                    await asyncio.wait([fut], timeout=ACK_CHECK)
                    if not fut.done():
                        if self._halt.is_set():
                            raise _Rewind("halted")
                        if self._backlog_expired():
                            # An idempotent producer retries a broker that is
                            # gone forever: no failure would ever come.
                            raise _Rewind("backlog too old")
                        continue
                inflight.popleft()
                pending -= count
                try:
                    result = fut.result()
                except DeliveryError as exc:
                    await self._fail(inflight, exc.generation)
                    raise _Rewind(str(exc)) from None
                except Exception as exc:
                    await self._fail(inflight, -1)
                    raise _Rewind(repr(exc)) from None
                if result.rejected:
                    self.stats.lines_rejected += result.rejected
                    self._warn(
                        "rejected",
                        "container %s: Kafka rejected %d records for good (too large?), "
                        "dropped (%d in total)",
                        self.short_id,
                        result.rejected,
                        self.stats.lines_rejected,
                    )
                self.stats.lines_acked += count - result.rejected
                self._acked = max(self._acked, commit)
            # Nothing in flight: records that made no line (unreadable) are done too.
            self._acked = max(self._acked, assembler.commit_position())

        async def alive() -> bool:
            # Asked by the follower after about a second without new records.
            if self._halt.is_set():
                return False
            submit(assembler.expire(time.monotonic()))
            await reap()
            self.stats.bad_records = assembler.bad_records
            return True

        try:
            batches = follow_from_async(self.view, start, alive, self.view.next_change)
            async with contextlib.aclosing(batches):
                async for batch, end in batches:
                    self._read = end
                    self._progress()
                    # A backlog can come as one large batch: take it in slices, so that
                    # what is held in memory stays bounded by MAX_IN_FLIGHT.
                    rest = sum(map(len, batch))
                    for i in range(0, len(batch), BATCH_RECORDS):
                        if self._halt.is_set():
                            raise _Rewind("halted")
                        part = batch[i : i + BATCH_RECORDS]
                        rest -= sum(map(len, part))
                        now = time.monotonic()
                        end_of_part = Position(end.generation, end.offset - rest)
                        submit(assembler.feed(part, end_of_part, now))
                        submit(assembler.expire(now))
                        await reap()
                        if pending > MAX_IN_FLIGHT:
                            # Half-way down, not to zero: the producer is never left idle.
                            await reap(wait_until=MAX_IN_FLIGHT // 2)
                        # The other tasks and the message reader get the loop between
                        # slices, however large the backlog.
                        await asyncio.sleep(0)
            if self._halt.is_set():
                raise _Rewind("halted")
            submit(assembler.finish())
            self.stats.bad_records = assembler.bad_records
            await reap(wait_until=0)
        except BaseException:
            # After a failure, a halt or a crash, sends of this pass not yet appended
            # must never be: the next pass sends them again, in order.
            group.failed = True
            raise
        self._acked = max(self._acked, assembler.commit_position())

    async def _fail(self, inflight: _InFlight, generation: int) -> None:
        """Forget the batches after a failed one and replace the producer that failed.

        The later sends are not cancelled (that would cancel aiokafka's own
        delivery futures): the group is marked failed, so those not yet handed
        to the producer fail at once, and the others are simply not waited for.
        """
        inflight.clear()
        if generation >= 0:
            await self._producer.reset(generation)

    # -- an abandoned backlog (see backlog.py) --------------------------------------

    def _keep_stored_position(self) -> None:
        """Leave ``kafka.position`` untouched when it holds where this task starts:
        its mtime is the time of the last acknowledgement (see backlog.py)."""
        try:
            stored = load_position(self.directory)
        except PositionError:
            return
        if stored == self._acked:
            self._saved = stored

    def _backlog_expired(self) -> bool:
        if self._limit is None or self._limit.max_age <= 0:
            return False
        if not self.view.state().closed:
            return False  # checked first: no file is looked at for a running container
        last_ack = mtime(position_path(self.directory))
        if last_ack is None:
            return False  # unknown: keep trying
        return self._limit.expired(
            closed=True,
            last_ack=last_ack,
            last_write=mtime(self.directory / CURRENT) or 0.0,
        )

    async def _give_up(self) -> None:
        """Count the lines from the acknowledged position to the end of the (closed)
        log, store the end as the position, and say so once."""

        async def stop() -> bool:
            return False

        lost, end = 0, self._acked
        batches = follow_from_async(self.view, self._acked, stop, self.view.next_change)
        async with contextlib.aclosing(batches):
            async for batch, pos in batches:
                lost += len(batch)
                end = pos
        state = self.view.state()
        self._acked = self._read = max(end, Position(state.generation, state.size))
        self._save(force=True)
        self.stats.lines_abandoned += lost
        assert self._limit is not None
        log.warning(
            "container %s: gave up %d lines never shipped to Kafka topic %s: its logging "
            "has stopped and nothing was acknowledged or written for %s (KAFKA_BACKLOG_MAX_AGE)",
            self.short_id,
            lost,
            self.route.topic,
            _duration(self._limit.max_age),
        )

    def _record(self, line: Line) -> OutRecord:
        b = self._builder
        return (b.value(line), b.headers(line), line.time_ns // 1_000_000)

    # -- position and progress ------------------------------------------------------

    def _save(self, force: bool = False) -> None:
        if self._acked == self._saved:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < SAVE_INTERVAL:
            return
        try:
            save_position(self.directory, self._acked)
        except PositionError as exc:
            self._warn("position", "container %s: %s", self.short_id, exc)
            return
        self._saved, self._saved_at = self._acked, now
        self._progress()

    def _progress(self, *, force: bool = False) -> None:
        """Tell the main process where the saved position and the reading are, when
        the generation of either changed (or ``force``)."""
        acked = self._saved if self._saved is not None else self._acked
        now = (acked.generation, self._read.generation)
        if force or now != self._progress_sent:
            self._progress_sent = now
            self._send_message(
                Progress(self.container_id, acked, self._read.generation, self.log_name)
            )

    def _warn(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_INTERVAL) >= WARN_INTERVAL:
            self._warned[kind] = now
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)


def start_position(
    directory: Path, view: LogView, first_start: Position, short_id: str
) -> Position:
    """Where shipping starts: the stored position; ``first_start`` if the container
    never shipped.

    A position that exists but cannot be read was lost, not never there: the
    lines since are shipped again from the oldest file kept (at least once),
    rather than skipped by starting at the log's end.
    """
    try:
        stored = load_position(directory)
    except PositionUnreadable as exc:
        start = _oldest(view)
        log.warning(
            "container %s: %s; shipping again from the oldest kept log file (generation %d)",
            short_id,
            exc,
            start.generation,
        )
        return start
    return first_start if stored is None else stored


def _oldest(view: LogView) -> Position:
    rotated = view.rotated_generations()
    return Position(rotated[0] if rotated else view.state().generation, 0)


def _retrieve(task: asyncio.Task[SendResult]) -> None:
    """A send nobody awaits any more (after a rewind) must not log "exception never
    retrieved": its failure was handled with the one before it."""
    if not task.cancelled():
        task.exception()


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"
