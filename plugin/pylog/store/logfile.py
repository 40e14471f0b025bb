"""One container's log on disk: a current file plus rotated (optionally gzipped) files.

Records are opaque newline-terminated byte strings here; the record format lives
in :mod:`.records`. Layout in the container's directory::

    json.log          current file, appended to
    json.log.1[.gz]   newest rotated file
    json.log.N[.gz]   oldest kept, N = max-file - 1

Rotation state is explicit: every file has a *generation*, the current file's
being :attr:`LogFile.generation`; rotated index ``k`` holds generation
``generation - k``. Rotation happens under the lock, before a record is written
when the current file already holds ``max-size`` bytes (json-file's rule), and
creates a new current file, so a follower holding the old file descriptor reads
it to its end and then asks for the next generation. Followers are woken through
a condition variable on every append, rotation and close; they never poll.

Compression runs in a background thread (gzip level 1, like json-file) so the
ingest thread is not held up. It writes ``.1.gz.tmp``, renames it to ``.1.gz``
and only then unlinks ``.1``, so a reader looking for generation ``G-1`` finds
one of the two at any instant; the next rotation waits for it to finish.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import RotationPolicy

log = logging.getLogger(__name__)

CURRENT = "json.log"
_READ_BLOCK = 1 << 16


class StoreError(OSError):
    """Writing to the store failed (disk full, permissions, closed log)."""


@dataclass
class Segment:
    """An open file of one generation and how much of it is readable now."""

    generation: int
    file: BinaryIO
    compressed: bool
    size: int | None
    """Bytes of the current file known to hold whole records; None means to EOF."""

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class LogState:
    generation: int
    size: int
    closed: bool


def _rotated_name(index: int, compressed: bool) -> str:
    return f"{CURRENT}.{index}" + (".gz" if compressed else "")


class LogFile:
    """A container's rotating log, shared by its writers and readers.

    ``writable=False`` gives a read-only view of a log nobody writes to (a
    stopped container); it reports itself closed, so followers end at once.
    """

    def __init__(self, directory: Path, policy: RotationPolicy, *, writable: bool = True) -> None:
        if policy.max_files < 1:
            raise ValueError("max_files must be >= 1")
        self.directory = directory
        self.policy = policy
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._generation = 0
        self._closed = not writable
        self._fd: int | None = None
        self._size = 0
        self._compressor: threading.Thread | None = None
        if writable:
            directory.mkdir(parents=True, exist_ok=True)
            self._recover()
            self._fd = os.open(self._current_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._size = os.fstat(self._fd).st_size
        else:
            with contextlib.suppress(FileNotFoundError):
                self._size = (directory / CURRENT).stat().st_size

    # -- paths ---------------------------------------------------------------

    def _current_path(self) -> Path:
        return self.directory / CURRENT

    def _rotated_path(self, index: int) -> Path | None:
        """The existing file at rotated ``index``, plain preferred, or None."""
        for compressed in (False, True):
            path = self.directory / _rotated_name(index, compressed)
            if path.exists():
                return path
        return None

    def _rotated_indices(self) -> list[int]:
        found: set[int] = set()
        prefix = CURRENT + "."
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        for name in names:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].removesuffix(".gz")
            if rest.isdigit():
                found.add(int(rest))
        return sorted(found)

    def _recover(self) -> None:
        """Tidy up after a crash: drop temp files and gz twins of plain files."""
        for name in os.listdir(self.directory):
            path = self.directory / name
            stale_tmp = name.endswith(".tmp")
            gz_twin = name.endswith(".gz") and (self.directory / name[:-3]).exists()
            if stale_tmp or gz_twin:
                path.unlink(missing_ok=True)
        if self.policy.compress:
            for index in self._rotated_indices():
                plain = self.directory / _rotated_name(index, False)
                if plain.exists():
                    _compress_file(plain)

    # -- writing -------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def append(self, records: list[bytes]) -> int:
        """Write whole records, rotating as needed; returns bytes written.

        On failure nothing of the failed batch stays in the file (it is cut back
        to its last whole record) and :class:`StoreError` is raised.
        """
        if not records:
            return 0
        with self._cond:
            if self._closed or self._fd is None:
                raise StoreError(errno.EBADF, "log is closed")
            try:
                written = self._append_locked(records)
            finally:
                self._cond.notify_all()
            return written

    def _append_locked(self, records: list[bytes]) -> int:
        max_size = self.policy.max_size
        if max_size < 0:
            return self._write(records)
        written = 0
        batch: list[bytes] = []
        size = self._size
        for rec in records:
            if size >= max_size:
                written += self._write(batch)
                batch = []
                self._rotate()
                size = 0
            batch.append(rec)
            size += len(rec)
        return written + self._write(batch)

    def _write(self, batch: list[bytes]) -> int:
        if not batch:
            return 0
        assert self._fd is not None
        data = b"".join(batch) if len(batch) > 1 else batch[0]
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise StoreError(exc.errno, f"writing {self._current_path()}: {exc.strerror}") from exc
        self._size += done
        return done

    def _rotate(self) -> None:
        """Shift rotated files up one index and start a new current file."""
        assert self._fd is not None
        self._wait_compressor()
        keep = self.policy.max_files - 1
        for index in reversed(self._rotated_indices()):
            src = self._rotated_path(index)
            if src is None:
                continue
            if index >= keep:
                src.unlink(missing_ok=True)
            else:
                dst = self.directory / _rotated_name(index + 1, src.suffix == ".gz")
                os.replace(src, dst)
        os.close(self._fd)
        self._fd = None
        current = self._current_path()
        if keep >= 1:
            rotated = self.directory / _rotated_name(1, False)
            os.replace(current, rotated)
            if self.policy.compress:
                self._compressor = threading.Thread(
                    target=_compress_file, args=(rotated,), name="pylog-compress", daemon=True
                )
                self._compressor.start()
        else:
            current.unlink(missing_ok=True)
        self._fd = os.open(current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0
        self._generation += 1

    def _wait_compressor(self) -> None:
        if self._compressor is not None:
            self._compressor.join()
            self._compressor = None

    def close(self) -> None:
        """Stop writing; followers are woken and end once they have read everything."""
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True
            self._cond.notify_all()
        self._wait_compressor()

    # -- reading -------------------------------------------------------------

    def state(self) -> LogState:
        with self._lock:
            return LogState(self._generation, self._size, self._closed)

    def wait_for_change(self, seen: LogState, timeout: float) -> LogState:
        """Block until the log moves past ``seen`` (new data, rotation, close) or timeout."""
        with self._cond:
            if (self._generation, self._size, self._closed) == (
                seen.generation,
                seen.size,
                seen.closed,
            ):
                self._cond.wait(timeout)
            return LogState(self._generation, self._size, self._closed)

    def open_segments(self) -> list[Segment]:
        """Every file, oldest first, opened under the lock so none moves away meanwhile.

        The last segment is the current file with its readable size.
        """
        with self._lock:
            segments: list[Segment] = []
            try:
                for index in reversed(self._rotated_indices()):
                    seg = self._open_rotated(index)
                    if seg is not None:
                        segments.append(seg)
                current = self._open_current()
                if current is not None:
                    segments.append(current)
            except BaseException:
                for seg in segments:
                    seg.close()
                raise
            return segments

    def open_generation(self, generation: int) -> Segment | None:
        """The file of ``generation``, or of the oldest later one still kept."""
        with self._lock:
            if generation >= self._generation:
                return self._open_current()
            indices = [i for i in self._rotated_indices() if self._generation - i >= generation]
            for index in sorted(indices, reverse=True):
                seg = self._open_rotated(index)
                if seg is not None:
                    return seg
            return self._open_current()

    def _open_rotated(self, index: int) -> Segment | None:
        path = self._rotated_path(index)
        if path is None:
            return None
        try:
            f = open(path, "rb")  # noqa: SIM115 - owned by the Segment
        except FileNotFoundError:
            return None
        return Segment(self._generation - index, f, path.suffix == ".gz", None)

    def _open_current(self) -> Segment | None:
        try:
            f = open(self._current_path(), "rb")  # noqa: SIM115 - owned by the Segment
        except FileNotFoundError:
            return None
        return Segment(self._generation, f, False, self._size)

    def total_bytes(self) -> int:
        """Bytes on disk for this container's log files."""
        total = 0
        for name in os.listdir(self.directory):
            if name.startswith(CURRENT):
                with contextlib.suppress(FileNotFoundError):
                    total += (self.directory / name).stat().st_size
        return total


def _compress_file(path: Path) -> None:
    """Gzip ``path`` to ``path.gz`` and remove it; failures leave the plain file in place."""
    target = path.with_name(path.name + ".gz")
    tmp = path.with_name(path.name + ".gz.tmp")
    try:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, target)
        path.unlink(missing_ok=True)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("compressing %s failed, keeping it uncompressed: %s", path, exc)
