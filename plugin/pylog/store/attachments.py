"""Which FIFOs pylog is reading, remembered on the host mount.

dockerd restarts a crashed plugin but never repeats StartLogging for running
containers; their FIFOs stay open and the containers stall once the pipe is
full. So every StartLogging is recorded here (FIFO path and container Info
without unselected env, written atomically, 0600) and forgotten when the FIFO
reaches EOF; when pylog starts, it reattaches to every recorded FIFO that still
exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .atomic import private_dir, write_json

log = logging.getLogger(__name__)


class Attachments:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, fifo: Path) -> Path:
        # The FIFO's name is dockerd's random hex, but never trust it as a file name.
        return self.directory / (hashlib.sha256(str(fifo).encode()).hexdigest()[:32] + ".json")

    def record(self, fifo: Path, info: dict[str, Any]) -> None:
        """Remember ``fifo``; ``info`` is the Info as it may be kept (see store.scrub)."""
        private_dir(self.directory)
        write_json(self._path(fifo), {"File": str(fifo), "Info": info})

    def forget(self, fifo: Path) -> None:
        self._path(fifo).unlink(missing_ok=True)

    def recorded(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every remembered (FIFO, Info); unreadable records are dropped with a warning."""
        out: list[tuple[Path, dict[str, Any]]] = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return out
        for name in names:
            path = self.directory / name
            if not name.endswith(".json"):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)  # a temp file left by a crash
                continue
            try:
                obj = json.loads(path.read_text(encoding="utf-8"))
                file = obj["File"]
                if not isinstance(file, str):
                    raise TypeError(f"File is a {type(file).__name__}")
                if self._path(Path(file)) != path:
                    # Not one pylog wrote, and forget() could never remove it.
                    raise ValueError("not named after its FIFO")
                out.append((Path(file), obj["Info"]))
            except Exception as exc:  # whatever is wrong with it, it is of no use
                log.warning("dropping unreadable attachment record %s: %r", name, exc)
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        return out
