"""Which FIFOs pylog is reading, remembered on the host mount.

dockerd restarts a crashed plugin but never repeats StartLogging for running
containers; their FIFOs stay open and the containers stall once the pipe is
full. So every StartLogging is recorded here (FIFO path and container Info,
written atomically) and forgotten when the FIFO reaches EOF; when pylog starts,
it reattaches to every recorded FIFO that still exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Attachments:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, fifo: Path) -> Path:
        # The FIFO's name is dockerd's random hex, but never trust it as a file name.
        return self.directory / (hashlib.sha256(str(fifo).encode()).hexdigest()[:32] + ".json")

    def record(self, fifo: Path, info: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(fifo)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"File": str(fifo), "Info": info}, f)
        os.replace(tmp, path)

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
                path.unlink(missing_ok=True)
                continue
            try:
                obj = json.loads(path.read_text(encoding="utf-8"))
                out.append((Path(obj["File"]), obj["Info"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("dropping unreadable attachment record %s: %s", name, exc)
                path.unlink(missing_ok=True)
        return out
