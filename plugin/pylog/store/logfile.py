"""One container's log on disk: a current file plus rotated (optionally gzipped) files.

Records are opaque newline-terminated byte strings here; the record format lives
in :mod:`.records`. Layout in the container's directory::

    json.log            current file, appended to
    json.log.<G>[.gz]   a rotated file of generation G (at most max-file - 1 kept)
    generation          the current file's generation, written before each rotation

Rotation state is explicit and durable: every file has a *generation*, an
integer that only grows; rotated files carry theirs in their name and the
current file's is ``max(<generation file>, newest rotated + 1)``. A position in
the log is therefore ``(generation, byte offset)``, which stays valid across
rotations and restarts (the Kafka shipper stores its acknowledged position that
way). The generation file is written before the rename, so a crash in the
middle of a rotation can only make a reader see the old file's lines twice,
never skip any.

Rotation happens under the lock, before a record is written when the current
file already holds ``max-size`` bytes (json-file's rule), and creates a new
current file, so a follower holding the old file descriptor reads it to its
end and then asks for the next generation. Followers are woken through a
condition variable on every append, rotation and close; they never poll.

Compression runs in a background thread (gzip level 1 through ISA-L, see .gz) so the
ingest thread is not held up. It writes ``.G.gz.tmp``, renames it to ``.G.gz``
and only then unlinks ``.G``, so a reader finds one of the two at any instant;
the next rotation waits for it to finish. One thread compresses for every log of
the process, one file at a time, in 64 KiB steps, so rotations that coincide do not
add up in memory (docs/performance.md, "Why the constants are what they are").
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .atomic import FILE_MODE, private_dir, write_atomic
from .gz import open_gzip

log = logging.getLogger(__name__)

CURRENT = "json.log"
#: Compression's read size (see the module docstring).
_COMPRESS_CHUNK = 1 << 16
#: The one compressing thread of the process (see the module docstring).
_compressor: concurrent.futures.ThreadPoolExecutor | None = None
_compressor_lock = threading.Lock()


def _compress_later(path: Path) -> concurrent.futures.Future[None]:
    global _compressor
    with _compressor_lock:
        if _compressor is None:
            _compressor = concurrent.futures.ThreadPoolExecutor(1, "pylog-compress")
        return _compressor.submit(_compress_file, path)


@dataclass(frozen=True)
class RotationPolicy:
    """How a container's log files rotate (json-file's max-size, max-file, compress).

    The store's own type: config builds one from a container's log-opts, and the
    store needs nothing else from config.
    """

    max_size: int
    """Rotate once the current file holds this many bytes; -1 never rotates."""
    max_files: int
    """Files kept, the current one included (>= 1)."""
    compress: bool
    """Gzip rotated files."""


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


def _rotated_name(generation: int, compressed: bool) -> str:
    return f"{CURRENT}.{generation}" + (".gz" if compressed else "")


GENERATION_FILE = "generation"

#: Called under the log's lock just before a rotated file is deleted, with its
#: generation and path (the shipper counts lines it had not shipped yet).
DiscardHook = Callable[[int, Path], None]
#: Called under the log's lock when rotation is about to delete files: the oldest
#: generation a consumer still needs (the Kafka shipper's acknowledged position),
#: or None when nothing is needed.
HoldHook = Callable[[], int | None]
#: While a consumer needs them, rotated files beyond max-file are kept, up to this
#: many times max-file more; past that the oldest go anyway (and are counted lost).
HOLD_FACTOR = 1


class LogFile:
    """A container's rotating log, shared by its writers and readers.

    ``writable=False`` gives a read-only view of a log nobody writes to (a
    stopped container); it reports itself closed, so followers end at once.
    """

    def __init__(
        self,
        directory: Path,
        policy: RotationPolicy,
        *,
        writable: bool = True,
        on_discard: DiscardHook | None = None,
    ) -> None:
        if policy.max_files < 1:
            raise ValueError("max_files must be >= 1")
        self.directory = directory
        self.policy = policy
        self.on_discard = on_discard
        self.hold: HoldHook | None = None
        #: Called after every append, rotation and close (under the log's lock: it
        #: must only take note, as the shipping supervisor's does).
        self.on_change: Callable[[], None] | None = None
        self._writable = writable
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closed = not writable
        self._fd: int | None = None
        self._size = 0
        self._compressing: concurrent.futures.Future[None] | None = None
        if writable:
            private_dir(directory)
            self._recover()
        self._generation = self._load_generation()
        if writable:
            self._fd = os.open(
                self._current_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE
            )
            os.fchmod(self._fd, FILE_MODE)  # a file left by an older pylog may be 0644
            self._size = os.fstat(self._fd).st_size
        else:
            with contextlib.suppress(FileNotFoundError):
                self._size = self._current_path().stat().st_size

    # -- paths and rotation state ----------------------------------------------

    def _current_path(self) -> Path:
        return self.directory / CURRENT

    def _rotated_path(self, generation: int) -> Path | None:
        """The existing rotated file of ``generation``, plain preferred, or None."""
        for compressed in (False, True):
            path = self.directory / _rotated_name(generation, compressed)
            if path.exists():
                return path
        return None

    def rotated_generations(self) -> list[int]:
        """Generations of the rotated files on disk, oldest first."""
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

    def _load_generation(self) -> int:
        recorded = 0
        with contextlib.suppress(FileNotFoundError, ValueError):
            recorded = int((self.directory / GENERATION_FILE).read_text().strip())
        rotated = self.rotated_generations()
        return max(recorded, rotated[-1] + 1 if rotated else 0)

    def _store_generation(self, generation: int) -> None:
        # Not fsynced: this runs on the ingest path at each rotation, and a
        # generation file lost in a power cut is recovered from the rotated files.
        write_atomic(self.directory / GENERATION_FILE, f"{generation}\n".encode(), durable=False)

    def _recover(self) -> None:
        """Tidy up after a crash: drop temp files and gz twins of plain files."""
        for name in os.listdir(self.directory):
            path = self.directory / name
            stale_tmp = name.endswith(".tmp")
            gz_twin = name.endswith(".gz") and (self.directory / name[:-3]).exists()
            if stale_tmp or gz_twin:
                path.unlink(missing_ok=True)
        if self.policy.compress:
            for gen in self.rotated_generations():
                plain = self.directory / _rotated_name(gen, False)
                if plain.exists():
                    _compress_file(plain)

    # -- writing -------------------------------------------------------------

    def append(self, records: bytes) -> int:
        """Write whole records (concatenated, each ending in ``\\n``), rotating as
        needed; returns bytes written.

        On failure nothing of the failed write stays in the file (it is cut back
        to its last whole record) and :class:`StoreError` is raised.
        """
        if not records:
            return 0
        with self._cond:
            if self._closed or self._fd is None:
                raise StoreError(errno.EBADF, "log is closed")
            try:
                return self._append_locked(records)
            finally:
                self._cond.notify_all()
                self._changed()

    def _append_locked(self, data: bytes) -> int:
        """json-file's rule: rotate before a record when the file already holds
        ``max-size`` bytes. So the record that crosses the limit is the last one
        written; it ends at the first newline at or after the limit."""
        max_size = self.policy.max_size
        written = 0
        start = 0
        end = len(data)
        view = memoryview(data)
        while start < end:
            cut = end
            if max_size >= 0:
                if self._size >= max_size:
                    self._rotate()
                room = max_size - self._size
                if end - start > room:
                    newline = data.find(b"\n", start + max(room - 1, 0))
                    cut = end if newline < 0 else newline + 1
            written += self._write(view[start:cut])
            start = cut
        return written

    def _write(self, data: memoryview) -> int:
        assert self._fd is not None
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise StoreError(exc.errno, f"writing {self._current_path()}: {exc.strerror}") from exc
        self._size += done
        return done

    def _rotate(self) -> None:
        """Close the current file as generation G, start generation G+1, drop the oldest."""
        assert self._fd is not None
        self._wait_compressor()
        old = self._generation
        keep = self.policy.max_files - 1
        self._store_generation(old + 1)
        os.close(self._fd)
        self._fd = None
        current = self._current_path()
        needed = self._held_from()
        if keep >= 1 or (needed is not None and needed <= old):
            rotated = self.directory / _rotated_name(old, False)
            os.replace(current, rotated)
            if self.policy.compress:
                self._compressing = _compress_later(rotated)
        else:
            self._discard(old, current)
        self._fd = os.open(current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._size = 0
        self._generation = old + 1
        self._trim_locked(needed)

    def _held_from(self) -> int | None:
        if self.hold is None:
            return None
        try:
            return self.hold()
        except Exception:
            log.exception("hold hook failed for %s", self.directory)
            return None

    def trim(self) -> None:
        """Delete the rotated files beyond max-file that nothing holds any more."""
        with self._cond:
            if self._writable:
                self._trim_locked(self._held_from())

    def _trim_locked(self, needed: int | None) -> None:
        """Delete rotated files beyond max-file, keeping those from generation
        ``needed`` on (within the hold cap)."""
        keep = self.policy.max_files - 1
        gens = self.rotated_generations()
        excess = gens[: max(0, len(gens) - keep)]
        if not excess:
            return
        drop = excess
        if needed is not None:
            held = [g for g in excess if g >= needed]
            extra = self.policy.max_files * HOLD_FACTOR
            drop = [g for g in excess if g < needed] + held[: max(0, len(held) - extra)]
        for gen in drop:
            path = self._rotated_path(gen)
            if path is not None:
                self._discard(gen, path)

    def _discard(self, generation: int, path: Path) -> None:
        if self.on_discard is not None:
            try:
                self.on_discard(generation, path)
            except Exception:
                log.exception("discard hook failed for %s", path)
        path.unlink(missing_ok=True)

    def _wait_compressor(self) -> None:
        if self._compressing is not None:
            try:
                self._compressing.result()
            except Exception:
                log.exception("compressing a rotated file of %s failed", self.directory.name)
            self._compressing = None

    def close(self) -> None:
        """Stop writing; followers are woken and end once they have read everything."""
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True
            self._cond.notify_all()
            self._changed()
        self._wait_compressor()

    def _changed(self) -> None:
        hook = self.on_change
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("change hook failed for %s", self.directory)

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
                for gen in self.rotated_generations():
                    seg = self._open_rotated(gen)
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
            if generation < self._generation:
                for gen in self.rotated_generations():
                    if generation <= gen < self._generation:
                        seg = self._open_rotated(gen)
                        if seg is not None:
                            return seg
            return self._open_current()

    def _open_rotated(self, generation: int) -> Segment | None:
        path = self._rotated_path(generation)
        if path is None:
            return None
        try:
            f = open(path, "rb")  # noqa: SIM115 - owned by the Segment
        except FileNotFoundError:
            # Compressed in the meantime: the .gz is in place before the plain file goes.
            path = self.directory / _rotated_name(generation, True)
            try:
                f = open(path, "rb")  # noqa: SIM115 - owned by the Segment
            except FileNotFoundError:
                return None
        return Segment(generation, f, path.suffix == ".gz", None)

    def _open_current(self) -> Segment | None:
        try:
            f = open(self._current_path(), "rb")  # noqa: SIM115 - owned by the Segment
        except FileNotFoundError:
            return None
        return Segment(self._generation, f, False, self._size)


def _compress_file(path: Path) -> None:
    """Gzip ``path`` to ``path.gz`` and remove it; failures leave the plain file in place."""
    target = path.with_name(path.name + ".gz")
    tmp = path.with_name(path.name + ".gz.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with open(path, "rb") as src, open(fd, "wb") as raw, open_gzip(raw, "wb") as dst:
            shutil.copyfileobj(src, dst, _COMPRESS_CHUNK)
        os.replace(tmp, target)
        path.unlink(missing_ok=True)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("compressing %s failed, keeping it uncompressed: %s", path, exc)
