"""What the plugin's main process and a shipping process say to each other.

The main process (ingest, the store, ``docker logs``) starts one or more
shipping processes (:mod:`.supervisor`) and talks to each over one Unix
socket pair: a message is a 4-byte big-endian length and a pickled
dataclass below. Only a parent and the child it started hold the two ends,
and unpickling is limited to pylog's own classes and a few plain types
(:class:`_Unpickler`), so a message cannot be anything else.

To a shipping process (from :mod:`.supervisor`):

* :class:`Hello` once, first: the settings and which process of how many it is;
* :class:`Ship`: ship this log (its container's kept Info, the log's state now,
  and where to start if it never shipped); sent again after a restart of the
  container's logging or of the shipping process. A log is the container's
  own (stdout/stderr, ``log`` empty) or one of its declared file logs
  (``log`` its name);
* :class:`Grew`: the state (generation, size, closed) of logs that changed,
  coalesced: how a shipping process learns that a log grew, rotated or closed,
  without reading the store's directory or polling;
* :class:`Stop`: ship what the closed logs hold until ``deadline`` (on the
  ``time.monotonic()`` clock, which is the same in every process of a host),
  then stop.

Every log is named by its *log id* (:func:`log_id`): the bare container ID for
the container's own log, so nothing of it changed when file logs came, and
``<container ID>/<name>`` for a declared file log. Fields added for file logs
have defaults that mean "the container's own log"; both ends of the socket are
always of one version (the main process starts its shipping processes).

From a shipping process:

* :class:`Progress`: a log's acknowledged position moved to another
  generation, or its reading did (the main process trims rotated files
  nothing needs any more, and counts what rotation deleted unread);
* :class:`Finished`: a log's shipping ended (closed and all acknowledged,
  or its backlog given up);
* :class:`Report`: the counters /metrics and /status show, every
  :data:`REPORT_INTERVAL` and before the process exits.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Any, Final

from ..config import Settings
from ..snapshot import AbandonedCounters, ProducerCounters, ShipperCounters
from ..store.logfile import LogState
from ..store.reader import Position

#: How often a shipping process sends its counters.
REPORT_INTERVAL: Final = 1.0
#: The largest message accepted: far above any real one (a Ship carries one
#: container's kept Info, a Report a few hundred counters per container).
MAX_MESSAGE: Final = 64 << 20

_HEADER = struct.Struct(">I")

#: Between the container ID and a declared log's name in a log id.
LOG_ID_SEPARATOR: Final = "/"


def log_id(container_id: str, name: str = "") -> str:
    """A log's id: the container ID for its own log (``name`` empty), else
    ``<container ID>/<name>`` (a name never holds ``/``, see config.declarations)."""
    return f"{container_id}{LOG_ID_SEPARATOR}{name}" if name else container_id


def split_log_id(lid: str) -> tuple[str, str]:
    """``(container ID, name)`` of a log id; the name is empty for the container's own."""
    container_id, _, name = lid.partition(LOG_ID_SEPARATOR)
    return container_id, name


@dataclass(frozen=True)
class Hello:
    settings: Settings
    index: int
    """Which shipping process this is (0-based), for its name in logs."""
    count: int


@dataclass(frozen=True)
class Ship:
    container_id: str
    info: dict[str, Any]
    """The container's Info as the store keeps it (see kept_info.py)."""
    state: LogState
    first_start: Position
    """Where to start when the container has no ``kafka.position`` (it never
    shipped): the end of its log when shipping was first asked for, so lines
    logged before Kafka was configured are not sent."""
    log: str = ""
    """The declared file log's name; empty for the container's own log. What declared
    it is read again from the kept Info (which keeps the declaring env, kept_info.py)."""

    @property
    def log_id(self) -> str:
        return log_id(self.container_id, self.log)


@dataclass(frozen=True)
class Grew:
    states: dict[str, LogState]
    """Per log id, its log's state now."""


@dataclass(frozen=True)
class Stop:
    deadline: float
    """``time.monotonic()`` by which the process has exited."""


@dataclass(frozen=True)
class Progress:
    container_id: str
    acked: Position
    read_generation: int
    """The generation being read: files after it that rotation deletes were
    never read, and are counted lost."""
    log: str = ""
    """The declared file log's name; empty for the container's own log."""

    @property
    def log_id(self) -> str:
        return log_id(self.container_id, self.log)


@dataclass(frozen=True)
class Finished:
    container_id: str
    log: str = ""

    @property
    def log_id(self) -> str:
        return log_id(self.container_id, self.log)


@dataclass(frozen=True)
class Report:
    shippers: list[ShipperCounters]
    producers: list[ProducerCounters]
    abandoned: list[AbandonedCounters]


ToWorker = Hello | Ship | Grew | Stop
FromWorker = Progress | Finished | Report


class MessageError(Exception):
    """A message that is not one of ours (too large, not unpicklable, a foreign class)."""


#: Modules whose classes a message may hold besides pylog's own.
_PLAIN_MODULES: Final = frozenset({"pathlib", "builtins", "copyreg", "collections"})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "pylog" or module.startswith("pylog.") or module in _PLAIN_MODULES:
            return super().find_class(module, name)
        raise MessageError(f"a message may not hold {module}.{name}")


def encode(message: ToWorker | FromWorker) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > MAX_MESSAGE:
        raise MessageError(f"message of {len(payload)} bytes, the limit is {MAX_MESSAGE}")
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> Any:
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except MessageError:
        raise
    except Exception as exc:
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}") from None


def _length(header: bytes) -> int:
    (n,) = _HEADER.unpack(header)
    if n > MAX_MESSAGE:
        raise MessageError(f"message of {n} bytes announced, the limit is {MAX_MESSAGE}")
    return int(n)


def read_message(sock: socket.socket) -> Any | None:
    """The next message from a blocking socket; None at end of stream."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    payload = _recv_exactly(sock, _length(header))
    if payload is None:
        raise MessageError("stream ended inside a message")
    return decode(payload)


async def read_message_async(reader: asyncio.StreamReader) -> Any | None:
    """The next message from an asyncio stream; None at end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise MessageError("stream ended inside a message") from None
        return None
    try:
        payload = await reader.readexactly(_length(header))
    except asyncio.IncompleteReadError:
        raise MessageError("stream ended inside a message") from None
    return decode(payload)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            if buf:
                raise MessageError("stream ended inside a message")
            return None
        buf += chunk
    return bytes(buf)
