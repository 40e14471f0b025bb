"""One container's shipper: its log, from the acknowledged position on, into Kafka.

A thread per container reads the store with ``follow_from`` (woken by appends,
never polling; a slowly written log at most every ``FOLLOW_FROM_INTERVAL``),
turns records into lines (:mod:`.assemble`) and Kafka records (:mod:`.schema`),
and hands them in batches to the cluster's producer.
Acknowledgements are taken strictly in order; the position of the last one is
stored in the container's directory (:mod:`.position`).

Failure model: the local log is the write-ahead log, so nothing is kept in
memory that is not also on disk. When a batch fails (broker down, timeout,
producer restart) every batch after it is dropped too, the producer is
replaced, and reading starts again at the acknowledged position after a
capped exponential backoff with jitter (:mod:`.backoff`), until the broker
takes the lines; only the backlog of a container whose logging has stopped is
given up, after ``KAFKA_BACKLOG_MAX_AGE`` (:mod:`.backlog`). Lines that were
in flight may thus reach Kafka twice (at least once). Ingest never waits on
any of this: it only appends to the log.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..pressure import IngestPressure
from ..store import LogFile
from ..store.gz import open_gzip
from ..store.logfile import CURRENT
from ..store.reader import Position, follow_from
from .assemble import Item, LineAssembler
from .backlog import BacklogLimit, mtime
from .backoff import Backoff
from .errors import DeliveryError, PositionError
from .position import load_position, position_path, save_position
from .producer import ClusterProducer, KafkaRuntime, SendResult
from .routing import Route
from .schema import Line, OutRecord, PlainRun, ValueBuilder

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


@dataclass
class ShipperStats:
    lines_sent: int = 0
    lines_acked: int = 0
    lines_rejected: int = 0
    """Lines the broker can never take (too large), dropped."""
    lines_lost_rotation: int = 0
    """Lines rotation deleted before they were read for shipping."""
    lines_abandoned: int = 0
    """Lines of a stopped container given up after KAFKA_BACKLOG_MAX_AGE (see backlog.py)."""
    retries: int = 0
    bad_records: int = 0


class _Rewind(Exception):
    """Internal: a delivery failed, start again from the acknowledged position."""


class ContainerShipper:
    def __init__(
        self,
        *,
        container_id: str,
        directory: Path,
        logfile: LogFile,
        route: Route,
        builder: ValueBuilder,
        make_assembler: Callable[[Position], LineAssembler],
        runtime: KafkaRuntime,
        producer: ClusterProducer,
        start: Position,
        after: ContainerShipper | None = None,
        on_done: Callable[[ContainerShipper], None] | None = None,
        pressure: IngestPressure | None = None,
        backoff: Backoff | None = None,
        limit: BacklogLimit | None = None,
    ) -> None:
        self.container_id = container_id
        self.short_id = container_id[:12]
        self.directory = directory
        self.logfile = logfile
        self.route = route
        self.stats = ShipperStats()
        self._builder = builder
        self._make_assembler = make_assembler
        self._runtime = runtime
        self._producer = producer
        self._acked = start
        self._saved: Position | None = None
        self._saved_at = 0.0
        self._read = start
        self._after = after
        self._on_done = on_done
        self._pressure = pressure
        self._limit = limit
        self._backoff = backoff if backoff is not None else Backoff(BACKOFF_MIN, BACKOFF_MAX)
        self._halt = threading.Event()
        self._done = threading.Event()
        self._warned: dict[str, float] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"pylog-ship-{self.short_id}", daemon=True
        )

    # -- control -------------------------------------------------------------------

    @property
    def acked(self) -> Position:
        return self._acked

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Stop now; what was acknowledged is stored, the rest ships on the next start.

        A shipper this one waits for (see ``after``) is halted too: pylog is
        stopping, and only the newest shipper of a container is the manager's.
        """
        self._halt.set()
        after = self._after
        if after is not None:
            after.halt()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._after is not None:
                # A shipper this one replaces (same container, its log closed since):
                # let it finish on its own, then take over where it stopped. Halting
                # it would leave batches in flight that this one would send again.
                while not self._after.join(0.2):
                    if self._halt.is_set():
                        # pylog is stopping: so does the one replaced.
                        self._after.halt()
                        self._after.join(1.0)
                        break
                self._acked = self._read = max(self._acked, self._after.acked)
                self._after = None
            self._keep_stored_position()
            self._save(force=True)
            while not self._halt.is_set():
                before = self._acked
                try:
                    self._ship_once()
                    break
                except _Rewind as exc:
                    if self._halt.is_set():
                        break
                    if self._acked > before:
                        self._backoff.reset()  # it was working: a fresh failure
                    # What was read since the acknowledged position must be read again.
                    self._read = self._acked
                    if self._backlog_expired():
                        self._give_up()
                        break
                    self.stats.retries += 1
                    self._producer.stats.note_retry()
                    self._warn(
                        "delivery",
                        "container %s: shipping to Kafka topic %s failed, retrying from the "
                        "last acknowledged line (%s)",
                        self.short_id,
                        self.route.topic,
                        exc,
                    )
                    self._halt.wait(self._backoff.next())
        except Exception:
            log.exception("container %s: Kafka shipper crashed", self.short_id)
        finally:
            self._save(force=True)
            self._done.set()
            if self._on_done is not None:
                self._on_done(self)

    def _ship_once(self) -> None:
        """Ship from the acknowledged position until the log is closed and all is acked."""
        start = self._acked
        self._read = start
        assembler = self._make_assembler(start)
        group = self._runtime.new_group()
        inflight: deque[tuple[concurrent.futures.Future[SendResult], Position, int]] = deque()
        pending: list[int] = [0]  # lines in flight

        last_commit = [start]

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
            fut = self._runtime.submit(
                self._producer.send(group, self.route.topic, self.route.key, records)
            )
            # Lines without a commit position of their own are covered by a later
            # one; a part with none at all commits no more than the part before.
            if commit is None:
                commit = last_commit[0]
            last_commit[0] = commit
            inflight.append((fut, commit, len(records)))
            pending[0] += len(records)
            self.stats.lines_sent += len(records)

        def reap(wait_until: int | None = None) -> None:
            try:
                take_acks(wait_until)
            finally:
                self._save()

        def take_acks(wait_until: int | None) -> None:
            """Advance the acknowledged position over the batches done, in order;
            with ``wait_until``, wait until at most that many lines are in flight."""
            while inflight:
                fut, commit, count = inflight[0]
                if not fut.done():
                    if wait_until is None or pending[0] <= wait_until:
                        return
                    try:
                        fut.result(0.2)
                    except concurrent.futures.TimeoutError:
                        if self._halt.is_set():
                            raise _Rewind("halted") from None
                        if self._backlog_expired():
                            # An idempotent producer retries a broker that is
                            # gone forever: no failure would ever come.
                            raise _Rewind("backlog too old") from None
                        continue
                    except Exception:
                        pass
                inflight.popleft()
                pending[0] -= count
                try:
                    result = fut.result()
                except DeliveryError as exc:
                    self._fail(inflight, exc.generation)
                    raise _Rewind(str(exc)) from None
                except Exception as exc:
                    self._fail(inflight, -1)
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

        def alive() -> bool:
            # Called by follow_from after about a second without new records.
            if self._halt.is_set():
                return False
            submit(assembler.expire(time.monotonic()))
            reap()
            self.stats.bad_records = assembler.bad_records
            return True

        for batch, end in follow_from(self.logfile, start, alive):
            self._read = end
            # A backlog can come as one large batch: take it in slices, so that what
            # is held in memory stays bounded by MAX_IN_FLIGHT.
            rest = sum(map(len, batch))
            for i in range(0, len(batch), BATCH_RECORDS):
                if self._halt.is_set():
                    raise _Rewind("halted")
                part = batch[i : i + BATCH_RECORDS]
                rest -= sum(map(len, part))
                now = time.monotonic()
                submit(assembler.feed(part, Position(end.generation, end.offset - rest), now))
                submit(assembler.expire(now))
                reap()
                if self._pressure is not None:
                    # Ingest first: see pressure.py.
                    self._pressure.yield_to_ingest(time.monotonic() - now)
                if pending[0] > MAX_IN_FLIGHT:
                    # Half-way down, not to zero: the producer is never left idle.
                    reap(wait_until=MAX_IN_FLIGHT // 2)
        if self._halt.is_set():
            raise _Rewind("halted")
        submit(assembler.finish())
        self.stats.bad_records = assembler.bad_records
        reap(wait_until=0)
        self._acked = max(self._acked, assembler.commit_position())

    def _fail(
        self,
        inflight: deque[tuple[concurrent.futures.Future[SendResult], Position, int]],
        generation: int,
    ) -> None:
        """Forget the batches after a failed one and replace the producer that failed.

        The later batches are not cancelled (that would cancel aiokafka's own
        delivery futures): the group is marked failed, so those not yet handed
        to the producer fail at once, and the others are simply not waited for.
        """
        inflight.clear()
        if generation >= 0:
            self._runtime.submit(self._producer.reset(generation))

    # -- an abandoned backlog (see backlog.py) --------------------------------------

    def _keep_stored_position(self) -> None:
        """Leave ``kafka.position`` untouched when it holds where this shipper starts:
        its mtime is the time of the last acknowledgement (see backlog.py)."""
        try:
            stored = load_position(self.directory)
        except PositionError:
            return
        if stored == self._acked:
            self._saved = stored
            self.logfile.trim()

    def _backlog_expired(self) -> bool:
        if self._limit is None or self._limit.max_age <= 0:
            return False
        if not self.logfile.state().closed:
            return False  # checked first: no file is looked at for a running container
        last_ack = mtime(position_path(self.directory))
        if last_ack is None:
            return False  # unknown: keep trying
        return self._limit.expired(
            closed=True,
            last_ack=last_ack,
            last_write=mtime(self.directory / CURRENT) or 0.0,
        )

    def _give_up(self) -> None:
        """Count the lines from the acknowledged position to the end of the (closed)
        log, store the end as the position, and say so once."""
        lost, end = 0, self._acked
        for batch, pos in follow_from(self.logfile, self._acked, lambda: False):
            lost += len(batch)
            end = pos
        state = self.logfile.state()
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

    # -- position and discards -----------------------------------------------------

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
        if self._saved is None or self._saved.generation != self._acked.generation:
            self.logfile.trim()  # files held for this shipper may go now
        self._saved, self._saved_at = self._acked, now

    def held_from(self) -> int | None:
        """LogFile hook: rotation keeps the files from the acknowledged position on
        (within its cap), so a shipper that lags behind a burst loses nothing."""
        if self._done.is_set():
            return None
        return self._acked.generation

    def on_discard(self, generation: int, path: Path) -> None:
        """LogFile hook, under the log's lock: count lines deleted before they were read.

        A file the shipper has already opened stays readable after it is
        deleted, so only generations past the one being read are lost.
        """
        if generation <= self._read.generation or self._done.is_set():
            return
        try:
            lost = _count_lines(path)
        except OSError:
            return
        if not lost:
            return
        self.stats.lines_lost_rotation += lost
        self._warn(
            "rotation",
            "container %s: rotation deleted %d lines before they were shipped to Kafka "
            "(%d in total); raise max-size/max-file or check the brokers",
            self.short_id,
            lost,
            self.stats.lines_lost_rotation,
        )

    def _warn(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_INTERVAL) >= WARN_INTERVAL:
            self._warned[kind] = now
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"


def _count_lines(path: Path) -> int:
    opener = open_gzip if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
    return count
