"""The broker-acknowledged position, kept in the container's directory on the host mount.

``kafka.position`` holds ``{"generation": G, "offset": O}``: every line before
that place in the log has been acknowledged by the broker. It is replaced with
the store's atomic write (temp file, fsync, rename, fsync of the directory), so
a crash or power cut leaves the old or the new position, never a torn one; at
worst lines after the old one are shipped again.

Absent and unreadable are different things. No file means the container has
never shipped (the manager starts it at the log's end). A file that is empty,
not JSON, or holds anything but two non-negative integers means the position
was lost: :func:`load_position` raises :class:`PositionUnreadable`, and the
manager ships from the oldest kept file rather than silently skip the backlog.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..store.atomic import write_json
from ..store.logfile import LogState
from ..store.reader import Position
from .errors import PositionError

POSITION_FILE = "kafka.position"


class PositionUnreadable(PositionError):
    """``kafka.position`` exists but holds no usable position."""


def position_path(directory: Path) -> Path:
    return directory / POSITION_FILE


def load_position(directory: Path) -> Position | None:
    """The stored position; None if none was ever stored; PositionUnreadable if it is lost."""
    path = position_path(directory)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PositionUnreadable(f"cannot read {path}: {exc}") from exc
    try:
        obj = json.loads(text)
        gen, offset = obj["generation"], obj["offset"]
    except Exception as exc:  # whatever the file holds, it is no position
        raise PositionUnreadable(f"{path} holds no position: {exc!r}"[:300]) from exc
    if not _count(gen) or not _count(offset):
        raise PositionUnreadable(f"{path} holds no position: {text[:100]!r}")
    return Position(gen, offset)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def save_position(directory: Path, pos: Position) -> None:
    try:
        write_json(position_path(directory), {"generation": pos.generation, "offset": pos.offset})
    except OSError as exc:
        raise PositionError(f"cannot store the Kafka position in {directory}: {exc}") from exc


def backlog(acked: Position, state: LogState) -> tuple[int, int]:
    """What is left to ship of a log at ``state`` from ``acked``: bytes of the current
    file (the whole file while rotated ones are left) and rotated files not finished."""
    files = max(0, state.generation - acked.generation)
    if acked.generation < state.generation:
        return state.size, files
    return max(0, state.size - acked.offset), files
