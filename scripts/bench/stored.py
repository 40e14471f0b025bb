"""Counting the lines of one of pylog's logs on disk, read from the host.

The ``files`` workload waits until every line a container wrote to a declared file is
in pylog's store (``containers/<id>/files/<name>/``). No FIFO record tells when that
is done, so the records are counted: each is one line of ``json.log`` or of a rotated
``json.log.<G>`` / ``json.log.<G>.gz``. Polled while pylog is still writing, a count
must cost little next to the writing (the machine has two cores): a plain file is
read on from where the last poll stopped, followed by its inode, so a rename by
rotation does not read it again; a ``.gz`` is read once. A ``.gz`` whose plain file is
still there is being compressed and is not counted (the plain file is), nor is a
``.tmp``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

CURRENT = "json.log"
CHUNK = 1 << 20


@dataclass
class _Plain:
    offset: int = 0
    lines: int = 0


@dataclass
class LineCounter:
    """Newline-terminated lines in the json.log files of ``directory``, counted anew
    (incrementally) at each :meth:`count`. A directory not there yet holds 0 lines."""

    directory: Path
    _plain: dict[int, _Plain] = field(default_factory=dict)  # by inode
    _gz: dict[str, int] = field(default_factory=dict)  # by file name

    def count(self) -> int:
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except FileNotFoundError:
            return 0
        present = set(names)
        seen: set[int] = set()
        gz_total = 0
        for name in names:
            if name != CURRENT and not name.startswith(CURRENT + "."):
                continue
            if name.endswith(".tmp"):
                continue
            path = self.directory / name
            if name.endswith(".gz"):
                if name[:-3] in present:
                    continue  # being compressed: its plain file counts
                if name not in self._gz:
                    try:
                        self._gz[name] = _gz_lines(path)
                    except FileNotFoundError:
                        continue
                gz_total += self._gz[name]
                continue
            inode = self._read_on(path)
            if inode is not None:
                seen.add(inode)
        for inode in [i for i in self._plain if i not in seen]:
            del self._plain[inode]  # compressed or deleted since
        return gz_total + sum(p.lines for p in self._plain.values())

    def _read_on(self, path: Path) -> int | None:
        """Count the lines appended to ``path`` since the last read; its inode."""
        try:
            with path.open("rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                state = self._plain.setdefault(inode, _Plain())
                f.seek(state.offset)
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    # Only whole lines: a record being written is counted next time.
                    end = chunk.rfind(b"\n") + 1
                    state.lines += chunk.count(b"\n", 0, end)
                    state.offset += end
                    if end < len(chunk):
                        break  # the rest is read on at the next count
        except FileNotFoundError:
            return None
        return inode


def _gz_lines(path: Path) -> int:
    n = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            n += chunk.count(b"\n")
    return n
