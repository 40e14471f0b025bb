"""Following one declared log file: its lines, through rotation, truncation and deletion.

A :class:`FileFollower` owns one path. Its owner calls :meth:`FileFollower.poll`
when it decides (no thread, no timer, no blocking call in here) and gets the
complete lines written since the last call, each with the file it came from
and the offset just after it: the position to store once the line is safe
(:mod:`.registry`). The file is opened by an *opener* (path -> fd) the owner
gives, so that the path resolves inside the container's root; only that
opener ever sees the path.

What happens to the file between two polls:

- **rename and create** (logrotate's default): the path names another file.
  The old file is read to its end first (whatever was written before the
  rename), then the new one from 0. While the path names nothing (between the
  rename and the create) the old file is still followed.
- **copytruncate**: the file is shorter than the offset reached, or the last
  bytes read (up to :data:`FINGERPRINT` of them, just before the offset) are
  not there any more: reading starts again at 0 (counted in ``truncations``).
  The second check catches a file truncated and regrown past the offset
  between two polls, which its size alone cannot tell from one that grew
  (filebeat cannot); only a regrowth that rewrote those very bytes at the very
  same place goes unseen. Lines written after the last poll and before the
  copy are in the copy, not here: poll often enough.
- **deletion** (no link left and nothing at the path): the open fd is read to
  its end, then the follower ends (``ended``). A file created at the path
  later is a new file for the owner to follow.

A line is complete at its newline, which is not part of it. Bytes after the
last newline are held until more comes, and taken as a line of their own when
the file ends for the follower: rotation, truncation, deletion or
:meth:`FileFollower.close` (the owner's "the container exited and the file was
read to its end"). Nothing is decoded: NUL bytes, ``\\r`` and invalid UTF-8
are passed on as they are.

Long lines are cut as dockerd cuts stdout: pieces of at most ``max_line``
bytes (default 16 KiB, dockerd's chunk) with ``partial`` true on every piece
but the last, as ``LogEntry.partial``/``Entry.complete`` mark stdout's
chunks. A file log stored with each piece as one record thus has the same
shape as a stdout log, and the shipper's ``LineAssembler`` joins the pieces and
re-cuts at ``KAFKA_MAX_LINE`` exactly as it does for stdout. A piece never ends
inside a UTF-8 character (it is up to three bytes shorter instead), so each
piece decodes on its own.

Memory is bounded: at most ``read_size`` bytes are read per poll (a large
file is read over several polls, ``caught_up`` says when its end was
reached) and at most ``max_line`` bytes of an unfinished line are held.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import NamedTuple

from .identity import FileIdentity, FilePosition

#: Longest piece of a line: dockerd's chunk of a stdout line (see module doc).
DEFAULT_MAX_LINE = 16 * 1024
#: Most bytes read per poll.
DEFAULT_READ_SIZE = 1 << 20
#: Most bytes asked of one read.
_CHUNK = 128 * 1024
#: Bytes before the offset checked at each poll to see a truncated file regrown.
FINGERPRINT = 64

#: Opens a path for reading and returns the fd (the owner's, safe in a container root).
Opener = Callable[[str], int]


class TailLine(NamedTuple):
    """A line (without its newline) or a piece of one, of the file ``identity``.

    Everything of that file before ``offset`` has been returned. ``partial`` is
    true for a piece of a long line other than its last.
    """

    data: bytes
    identity: FileIdentity
    offset: int
    partial: bool = False


class NotARegularFile(OSError):
    """The path names a FIFO, device, socket or directory: never read."""


def open_plain(path: str) -> int:
    """An :data:`Opener` for a path of this process's own filesystem (tests, host paths).

    Non-blocking, so that opening a FIFO does not wait for a writer.
    """
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)


def _cut(buf: bytes, start: int, limit: int) -> int:
    """Length <= limit of the piece at ``start``, not ending inside a UTF-8 character."""
    cut = limit
    while cut > limit - 4 and cut > 0 and (buf[start + cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


class FileFollower:
    """Follows the file at ``path`` (see module doc).

    ``start`` is where a previous run stopped: if the path names that file, it
    is read from that offset (from 0 if the file is now shorter: truncated, or
    a reused inode); if it names another file, that file is read from 0.
    """

    def __init__(
        self,
        path: str,
        opener: Opener,
        start: FilePosition | None = None,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        if max_line < 1 or read_size < 1:
            raise ValueError("max_line and read_size must be positive")
        self.path = path
        self.max_line = max_line
        self.read_size = read_size
        self._opener = opener
        self._start = start
        self._fd: int | None = None
        self._identity: FileIdentity | None = None
        self._offset = 0
        """Next byte of the current file to read."""
        self._held = b""
        """The unfinished line at the end of what was read (at most max_line bytes)."""
        self._seen = b""
        """The last bytes read of the current file, ending at ``_offset`` (up to FINGERPRINT)."""
        self._next: tuple[int, FileIdentity] | None = None
        """The file now at the path, once rotation was seen: read after the current one."""
        self._deleted = False
        self.ended = False
        """The file was deleted and read to its end, or the follower was closed."""
        self.caught_up = False
        """The last poll reached the end of the file (it was not cut short by read_size)."""
        self.error: OSError | None = None
        """Why the last poll could not open, look at or read the file; None if it could."""
        self.rotations = 0
        self.truncations = 0

    @property
    def position(self) -> FilePosition | None:
        """Where the lines returned so far end in the current file; None before it is open."""
        if self._identity is None:
            return None
        return FilePosition(self._identity, self._offset - len(self._held))

    # -- polling -----------------------------------------------------------------

    def poll(self) -> list[TailLine]:
        """The lines written since the last poll, up to ``read_size`` bytes of them."""
        out: list[TailLine] = []
        self.caught_up = False
        if self.ended or (self._fd is None and not self._open_first()):
            return out
        budget = self.read_size
        while True:
            budget = self._drain(out, budget)
            if budget <= 0:
                return out
            if self._next is not None:
                self._switch(out)
            elif self._deleted:
                self._finish(out)
                self.caught_up = True
                return out
            elif not self._look():
                self.caught_up = True
                return out
            # Rotation or deletion seen: what was written before it is read first.

    def close(self) -> list[TailLine]:
        """Stop following; the held unfinished line, if any, is returned as a line."""
        out: list[TailLine] = []
        if self._next is not None:
            os.close(self._next[0])
            self._next = None
        self._finish(out)
        return out

    # -- the file at the path ------------------------------------------------------

    def _open(self) -> tuple[int, os.stat_result]:
        fd = self._opener(self.path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotARegularFile(errno.EINVAL, "not a regular file", self.path)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _open_first(self) -> bool:
        try:
            fd, st = self._open()
        except FileNotFoundError:
            self.error = None  # not there yet
            return False
        except OSError as exc:
            self.error = exc
            return False
        self.error = None
        self._fd, self._identity = fd, FileIdentity.of(st)
        start, self._start = self._start, None
        if start is not None and start.identity == self._identity:
            # Past the file's end (truncated, or a reused inode): _drain starts at 0.
            self._offset = start.offset
        return True

    def _look(self) -> bool:
        """At the end of the current file: has the path moved on? True if it has
        (rotation or deletion, to act on once the current file is read again)."""
        assert self._fd is not None
        try:
            fd, st = self._open()
        except FileNotFoundError:
            try:
                linked = os.fstat(self._fd).st_nlink > 0
            except OSError as exc:
                self.error = exc
                return False
            self.error = None
            # Still linked: renamed and the new file not yet created; keep following it.
            self._deleted = not linked
            return self._deleted
        except OSError as exc:
            self.error = exc
            return False
        self.error = None
        identity = FileIdentity.of(st)
        if identity == self._identity:
            os.close(fd)
            return False
        self._next = (fd, identity)
        return True

    def _switch(self, out: list[TailLine]) -> None:
        assert self._fd is not None and self._next is not None
        self._take_held(out)
        os.close(self._fd)
        (self._fd, self._identity), self._next = self._next, None
        self._offset = 0
        self._seen = b""
        self.rotations += 1

    def _finish(self, out: list[TailLine]) -> None:
        if self._fd is not None:
            self._take_held(out)
            os.close(self._fd)
            self._fd = None
        self.ended = True

    # -- reading -----------------------------------------------------------------

    def _drain(self, out: list[TailLine], budget: int) -> int:
        """Read the current file to its end or until ``budget`` bytes were read;
        the budget left (0 if the end may not have been reached)."""
        assert self._fd is not None
        try:
            if os.fstat(self._fd).st_size < self._offset or self._rewritten():
                self._take_held(out)
                self._offset = 0
                self._seen = b""
                self.truncations += 1
            while budget > 0:
                data = os.pread(self._fd, min(budget, _CHUNK), self._offset)
                if not data:
                    return budget
                budget -= len(data)
                self._split(data, out)
        except OSError as exc:
            self.error = exc
        return 0

    def _rewritten(self) -> bool:
        """Are the last bytes read no longer where they were (truncated and regrown)?"""
        seen = self._seen
        if not seen:
            return False
        assert self._fd is not None
        return os.pread(self._fd, len(seen), self._offset - len(seen)) != seen

    def _split(self, data: bytes, out: list[TailLine]) -> None:
        identity = self._identity
        assert identity is not None
        held = self._held
        buf = held + data if held else data
        base = self._offset - len(held)  # file offset of buf[0]
        self._offset += len(data)
        self._seen = (self._seen + data[-FINGERPRINT:])[-FINGERPRINT:]
        limit = self.max_line
        start = 0
        find = buf.find
        append = out.append
        while (nl := find(b"\n", start)) >= 0:
            if nl - start > limit:
                start = self._pieces(buf, start, nl, base, out)
            append(TailLine(buf[start:nl], identity, base + nl + 1))
            start = nl + 1
        if len(buf) - start > limit:
            start = self._pieces(buf, start, len(buf), base, out)
        self._held = buf[start:]

    def _pieces(self, buf: bytes, start: int, end: int, base: int, out: list[TailLine]) -> int:
        """Return the partial pieces of ``buf[start:end]`` while more than max_line
        bytes are left; where the rest (1 to max_line bytes) starts."""
        identity = self._identity
        assert identity is not None
        while end - start > self.max_line:
            cut = start + _cut(buf, start, self.max_line)
            out.append(TailLine(buf[start:cut], identity, base + cut, True))
            start = cut
        return start

    def _take_held(self, out: list[TailLine]) -> None:
        """The file ends here for us: its unfinished last line is a line."""
        if self._held:
            assert self._identity is not None
            out.append(TailLine(self._held, self._identity, self._offset))
            self._held = b""
