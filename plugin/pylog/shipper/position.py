"""The broker-acknowledged position, kept in the container's directory on the host mount.

``kafka.position`` holds ``{"generation": G, "offset": O}``: every line before
that place in the log has been acknowledged by the broker. It is replaced
atomically (write a temp file, rename), so a crash leaves the old or the new
position, never a torn one; at worst lines after the old one are shipped again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..store.reader import Position
from .errors import PositionError

POSITION_FILE = "kafka.position"


def position_path(directory: Path) -> Path:
    return directory / POSITION_FILE


def load_position(directory: Path) -> Position | None:
    """The stored position, or None if there is none (or it is unreadable)."""
    try:
        obj = json.loads(position_path(directory).read_text())
        gen, offset = obj["generation"], obj["offset"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(gen, int) or not isinstance(offset, int) or gen < 0 or offset < 0:
        return None
    return Position(gen, offset)


def save_position(directory: Path, pos: Position) -> None:
    path = position_path(directory)
    tmp = path.with_name(POSITION_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps({"generation": pos.generation, "offset": pos.offset}) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise PositionError(f"cannot store the Kafka position in {directory}: {exc}") from exc
