"""What the unit and Kafka suites share: frames encoded the way dockerd writes them
and a decoder that buffers across chunks, a FIFO written the way dockerd writes it,
a polling wait, the settings of a LoggingService under a temporary directory, and
a started service that is shut down however the test ends.

One copy, so that both suites wait, open FIFOs and lay out state the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pylog.config import KafkaSettings, Settings
from pylog.framing import DEFAULT_MAX_FRAME, FrameDecoder
from pylog.models import Entry
from pylog.shipper.schema import Line, PlainRun, plain_line
from pylog.wire.entry_pb2 import LogEntry

if TYPE_CHECKING:
    from pylog.service import LoggingService
    from pylog.snapshot import ShipperCounters

_LEN = struct.Struct(">I")


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """Frames for entries as dockerd writes them to a FIFO: ``partial`` set on the
    chunks of a long line."""
    parts: list[bytes] = []
    for e in entries:
        msg = LogEntry(source=e.source, time_nano=e.time_ns, line=e.line)
        if not e.complete:
            msg.partial = True
        body = msg.SerializeToString()
        parts.append(_LEN.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def unescape_log(escaped: bytes) -> str:
    """The text of a plain stored line's escaped ``log`` field."""
    text: str = json.loads(b'"' + escaped + b'"')
    return text


def plain_run_lines(run: PlainRun) -> list[Line]:
    """The lines of a run of plain lines as :class:`Line` objects, which the shipper
    never makes (it builds their values straight from the stored fields)."""
    return [plain_line(f) for f in run.plain.fields()]


class BufferedDecoder(FrameDecoder):
    """A FrameDecoder that keeps a cut frame itself, for tests that hand it a
    stream in arbitrary chunks. (pylog's FIFO reader leaves the cut frame in the
    pipe instead, and calls :meth:`FrameDecoder.decode`.)"""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, resync: bool = False) -> None:
        super().__init__(max_frame, resync=resync)
        self._held = b""

    def feed(self, data: bytes) -> list[Entry]:
        """Every entry completed by ``data``, in order; a cut frame at its end is
        kept for the next call."""
        buf = self._held + data
        batch, used = self.decode(buf)
        self._held = buf[used:]
        return batch.entries()

    def close(self) -> list[Entry]:
        """End of stream: a trailing cut frame is counted as truncated; returns any
        entries found after it while resynchronising."""
        held, self._held = self._held, b""
        if not held:
            return []
        batch, _ = self.decode(held, final=True)
        return batch.entries()

    @property
    def pending(self) -> int:
        """Bytes held towards an incomplete frame."""
        return len(self._held)


def make_settings(tmp_path: Path, **kafka: Any) -> Settings:
    """Settings with every path under ``tmp_path``; ``kafka`` goes to KafkaSettings
    (none: no brokers, local only)."""
    fifo_root = tmp_path / "logging"
    fifo_root.mkdir(exist_ok=True)
    return Settings(
        state_dir=tmp_path / "state",
        socket_path=tmp_path / "pylog.sock",
        fifo_root=fifo_root,
        retention_seconds=3600,
        kafka=KafkaSettings(**kafka),
    )


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[LoggingService]:
    """A started LoggingService, shut down on exit. A test may shut it down earlier
    (a crash, as far as the FIFOs are concerned): a second shutdown does nothing."""
    from pylog.service import LoggingService  # here: the shipping-process tests need none of it

    svc = LoggingService(settings)
    svc.startup()
    try:
        yield svc
    finally:
        svc.shutdown()


class Fifo:
    """A FIFO opened the way dockerd opens it: read-write, so it has a writer from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.fd: int | None = os.open(path, os.O_RDWR)

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def entries(self, entries: list[Entry]) -> None:
        self.write(encode_entries(entries))

    def read_left(self) -> bytes:
        """What is still in the pipe (no reader took it), without blocking."""
        assert self.fd is not None
        os.set_blocking(self.fd, False)
        return os.read(self.fd, 1 << 16)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` s (a bound against a hang,
    not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.01)


def shipping(svc: LoggingService, container_id: str | None = None) -> ShipperCounters | None:
    """A container's shipping counters as the service shows them (the shipping
    process's last report, at most a second old); with no ID, the only one there is."""
    shippers = svc.snapshot().shippers
    if container_id is None:
        assert len(shippers) <= 1, f"{len(shippers)} containers are shipped"
        return shippers[0] if shippers else None
    return next((s for s in shippers if s.container_id == container_id), None)


def acked(svc: LoggingService, container_id: str | None = None) -> int:
    """Lines Kafka acknowledged for a container, as reported (0 before the first report)."""
    s = shipping(svc, container_id)
    return s.lines_acked if s is not None else 0


def retries(svc: LoggingService, container_id: str | None = None) -> int:
    s = shipping(svc, container_id)
    return s.retries if s is not None else 0
