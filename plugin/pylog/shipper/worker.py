"""A shipping process: ``python -m pylog.shipper.worker --fd N``.

Started by the main process (:mod:`.supervisor`) with one end of a Unix socket
pair as fd ``N``, over which the two talk (:mod:`.ipc`). One asyncio loop and no
thread: a task reads the messages, a :class:`~.task.ShippingTask` per log (a
container's own, and each of its declared file logs, by log id: :func:`~.ipc.log_id`)
ships it, one :class:`~.producer.ClusterProducer` per cluster configuration
is shared by the tasks shipping there, and a task sends the counters every
:data:`~.ipc.REPORT_INTERVAL` (and gives idle memory back, :mod:`pylog.memtrim`).

It runs at a lower priority (:data:`WORKER_NICE`): when the cores are busy,
ingest (the main process) goes first; the local log is the write-ahead log, so
shipping only falls behind. It ignores SIGINT and SIGTERM, which dockerd or a
terminal send to the whole process group: the main process says when to stop
(:class:`~.ipc.Stop`). If the main process goes away (end of stream on the
socket), the worker halts at once and exits: a new main process starts a new
worker, and two must never ship the same log for long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import gctune
from ..config import KafkaSettings, Settings, parse_declarations, parse_log_opts
from ..deadline import left
from ..kept_info import stored_name
from ..lograte import log_to_stderr
from ..memtrim import IdleTrim
from ..models import ContainerInfo
from ..snapshot import AbandonedCounters
from ..store import Store
from ..store.reader import Position
from . import ipc
from .assemble import LineAssembler
from .backlog import BacklogLimit
from .ipc import log_id
from .producer import ClusterProducer, cluster_key
from .report import producer_counters, shipper_counters
from .routing import Route, file_route, resolve
from .schema import Declared, ValueBuilder
from .task import ShippingTask, start_position
from .view import LogView

log = logging.getLogger(__name__)

#: The process's niceness: ingest, in the main process, goes first on busy cores.
WORKER_NICE = 5
#: Of a Stop's deadline, what halting the tasks (each notices within a fraction of
#: a second) and closing the producers keep for themselves.
HALT_RESERVE = 1.5
#: Of that, what closing the producers keeps.
CLOSE_RESERVE = 0.5
#: When the main process has gone: the time left to halt and close the producers.
ORPHAN_DEADLINE = 2.0


class Worker:
    """The state of one shipping process, on its loop: tasks, producers, counters."""

    def __init__(self, hello: ipc.Hello, send: Callable[[ipc.FromWorker], None]) -> None:
        self.settings: Settings = hello.settings
        self.index = hello.index
        self.store = Store(self.settings.state_dir)
        self._send = send
        self.tasks: dict[str, ShippingTask] = {}
        """Per log id."""
        self._names: dict[str, str] = {}
        """Per log id shipped, its container's name from the kept Info (for the counters)."""
        self.producers: dict[KafkaSettings, ClusterProducer] = {}
        self.abandoned: dict[str, AbandonedCounters] = {}
        self._limit = BacklogLimit(self.settings.kafka.backlog_max_age)
        self._closing = False
        self._activity = 0
        """Lines acknowledged by tasks that have ended (see :meth:`activity`)."""

    # -- messages ------------------------------------------------------------------

    def handle(self, message: ipc.ToWorker) -> None:
        if isinstance(message, ipc.Ship):
            self.ship(message)
        elif isinstance(message, ipc.Grew):
            for lid, state in message.states.items():
                task = self.tasks.get(lid)
                if task is not None:
                    task.view.update(state)
        else:
            log.warning("unexpected message %s, ignored", type(message).__name__)

    def ship(self, message: ipc.Ship) -> None:
        """Start shipping a log; if it is shipped already, only take its state (its
        logging restarted: the task carries on)."""
        lid = message.log_id
        cid, name = message.container_id, message.log
        task = self.tasks.get(lid)
        if task is not None:
            task.view.update(message.state)
            return
        if self._closing:
            return
        what = f"log {name} of container {cid[:12]}" if name else f"container {cid[:12]}"
        try:
            task = self._new_task(message)
        except Exception as exc:
            log.warning("%s: cannot ship it to Kafka: %s", what, exc)
            self._send(ipc.Finished(cid, name))
            return
        if task is None:
            log.warning("%s: shipping asked for, but it has no Kafka route", what)
            self._send(ipc.Finished(cid, name))
            return
        self.tasks[lid] = task
        self._names[lid] = stored_name(message.info)
        task.start()

    def _new_task(self, message: ipc.Ship) -> ShippingTask | None:
        info = ContainerInfo.from_json(message.info)
        options = parse_log_opts(info.config)
        declarations = parse_declarations(
            info.container_labels, info.env, self.settings.log_prefixes
        )
        kafka = self.settings.kafka
        route = resolve(info, options, kafka, declarations)
        if route is None:
            return None
        name = message.log
        if name:
            declaration = next(
                (d for d in declarations if d.name == name and d.kind == "file"), None
            )
            if declaration is None:
                raise ValueError(f"no file log {name!r} is declared by the container any more")
            route = file_route(route, declaration)
            directory = self.store.file_log_directory(info.container_id, name)
        else:
            declaration = next((d for d in declarations if d.kind == "stdout"), None)
            directory = self.store.directory(info.container_id)
        declared = None
        if declaration is not None:
            declared = Declared(
                declaration.name,
                file=bool(name),
                tags=declaration.tags,
                format=declaration.format,
                pattern=declaration.pattern,
            )
        view = LogView(directory, options.rotation, message.state)
        start = start_position(directory, view, message.first_start, log_id(info.short_id, name))
        tag = options.tag.render(info) if options.tag is not None else info.short_id
        builder = ValueBuilder(
            info,
            tag=tag,
            labels=options.selected_labels(info.container_labels),
            env=options.selected_env(info.env),
            parse_json=options.kafka.json,
            declared=declared,
        )
        ko = options.kafka
        raw_text = not ko.json and (declared is None or not declared.parses)

        def make_assembler(pos: Position) -> LineAssembler:
            return LineAssembler(
                pos,
                max_line=kafka.max_line,
                raw_text=raw_text,
                multiline=ko.multiline_pattern,
                multiline_max_lines=ko.multiline_max_lines,
                multiline_timeout=ko.multiline_timeout,
                by_path=bool(name),
            )

        return ShippingTask(
            container_id=info.container_id,
            log_name=name,
            directory=directory,
            view=view,
            route=route,
            builder=builder,
            make_assembler=make_assembler,
            producer=self.producer(route),
            start=start,
            send=self._send,
            on_done=self._task_done,
            limit=self._limit,
        )

    def producer(self, route: Route) -> ClusterProducer:
        """The producer of the route's cluster, shared by every container shipping there."""
        key = cluster_key(self.settings.kafka, route.brokers)
        producer = self.producers.get(key)
        if producer is None:
            producer = self.producers[key] = ClusterProducer(key)
        return producer

    def _task_done(self, task: ShippingTask) -> None:
        lid = task.log_id
        if self.tasks.get(lid) is task:
            del self.tasks[lid]
        name = self._names.pop(lid, "")
        self._activity += task.stats.lines_acked + task.stats.lines_abandoned
        if task.stats.lines_abandoned:
            before = self.abandoned.get(lid)
            lines = task.stats.lines_abandoned + (before.lines if before else 0)
            self.abandoned[lid] = AbandonedCounters(task.container_id, name, lines, task.log_name)

    # -- counters ------------------------------------------------------------------

    def report(self) -> ipc.Report:
        return ipc.Report(
            shippers=[shipper_counters(t, self._names.get(c, "")) for c, t in self.tasks.items()],
            producers=[producer_counters(p) for p in self.producers.values()],
            abandoned=list(self.abandoned.values()),
        )

    def activity(self) -> int:
        """A number that changes while the process ships (for the idle memory trim)."""
        running = sum(t.stats.lines_sent + t.stats.lines_acked for t in self.tasks.values())
        return self._activity + running + len(self.tasks)

    # -- stopping ------------------------------------------------------------------

    async def stop(self, deadline: float, *, drain: bool, cut: asyncio.Event) -> None:
        """Stop by ``deadline`` (``time.monotonic()``).

        With ``drain`` (a Stop), the tasks first ship what their closed logs
        hold until :data:`HALT_RESERVE` before the deadline (less if ``cut`` is
        set: the main process went away meanwhile); then they are halted,
        saving their acknowledged positions, and the producers close with what
        is left: whatever is not acknowledged ships from ``kafka.position``
        next time.
        """
        self._closing = True
        tasks = list(self.tasks.values())
        if drain:
            await _wait_tasks(tasks, left(deadline, HALT_RESERVE), cut)
        for t in tasks:
            t.halt()
        await _wait_tasks(tasks, left(deadline, CLOSE_RESERVE), None)
        for t in tasks:
            if not t.done:
                log.warning("container %s: Kafka shipping did not stop in time", t.short_id)
        if self.producers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(p.close(deadline) for p in self.producers.values()),
                        return_exceptions=True,
                    ),
                    left(deadline),
                )
        unshipped = sum(1 for t in tasks if not t.done or t.acked < _end(t.view))
        if unshipped:
            log.info("%d logs have lines left to ship to Kafka at next start", unshipped)


def _end(view: LogView) -> Position:
    state = view.state()
    return Position(state.generation, state.size)


async def _wait_tasks(
    tasks: Iterable[ShippingTask], timeout: float, cut: asyncio.Event | None
) -> None:
    """Wait until the tasks have ended, ``timeout`` at most, or until ``cut`` is set."""
    pending: set[asyncio.Future[Any]] = {t.running for t in tasks if not t.done}
    cutter: asyncio.Future[Any] | None = None
    if cut is not None:
        cutter = asyncio.ensure_future(cut.wait())
    end = time.monotonic() + timeout
    try:
        while pending and (remaining := end - time.monotonic()) > 0:
            watched = set(pending)
            if cutter is not None:
                watched.add(cutter)
            done, _ = await asyncio.wait(
                watched, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
            if cutter is not None and cutter in done:
                return
    finally:
        if cutter is not None:
            cutter.cancel()


async def _serve(hello: ipc.Hello, sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(message: ipc.FromWorker) -> None:
        if writer.transport.is_closing():
            return
        try:
            writer.write(ipc.encode(message))
        except (OSError, RuntimeError) as exc:
            log.debug("cannot send %s: %s", type(message).__name__, exc)

    worker = Worker(hello, send)
    gone = asyncio.Event()
    stop: list[ipc.Stop] = []
    stopping = asyncio.Event()

    async def read_messages() -> None:
        try:
            while True:
                message = await ipc.read_message_async(reader)
                if message is None:
                    break
                if isinstance(message, ipc.Stop):
                    stop.append(message)
                    stopping.set()
                    continue
                try:
                    worker.handle(message)
                except Exception:  # one message, not the stream: go on with the next
                    log.exception("handling a %s message failed", type(message).__name__)
        except (ipc.MessageError, OSError) as exc:
            log.error("the message stream from the main process broke: %s", exc)
        gone.set()
        stopping.set()

    async def report() -> None:
        trim = IdleTrim(worker.activity)
        while True:
            await asyncio.sleep(ipc.REPORT_INTERVAL)
            try:
                send(worker.report())
                trim.tick(time.monotonic())
            except Exception:  # a report missed is no reason to stop reporting
                log.exception("reporting the counters failed")

    reading = asyncio.ensure_future(read_messages())
    reporting = asyncio.ensure_future(report())
    try:
        await stopping.wait()
        if stop and not gone.is_set():
            await worker.stop(stop[0].deadline, drain=True, cut=gone)
        else:
            await worker.stop(time.monotonic() + ORPHAN_DEADLINE, drain=False, cut=gone)
    finally:
        reporting.cancel()
    if not gone.is_set():
        send(worker.report())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 1.0)
    reading.cancel()
    # Sends of halted tasks that nobody waits for any more, and the producers' leftovers.
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    writer.close()


def configure_logging(level: str, index: int) -> None:
    """Like the main process's (:func:`pylog.server.configure_logging`): stderr, which
    dockerd copies into its log, rate-limited; ``ship-<index>`` tells the processes
    apart. A summary of suppressed lines comes with the next line of its kind (no
    timer thread)."""
    log_to_stderr(level, f"pylog ship-{index}", schedule=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pylog.shipper.worker")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the main process")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    hello = ipc.read_message(sock)
    if not isinstance(hello, ipc.Hello):
        print(f"pylog shipper: expected Hello first, got {type(hello).__name__}", file=sys.stderr)
        return 2
    configure_logging(hello.settings.log_level, hello.index)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    gctune.tune()
    log.info(
        "shipping process %d of %d started (pid %d)", hello.index + 1, hello.count, os.getpid()
    )
    asyncio.run(_serve(hello, sock))
    log.info("shipping process %d stopped", hello.index + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
