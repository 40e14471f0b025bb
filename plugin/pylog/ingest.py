"""Reading one container's FIFO without ever making the container wait on pylog,
and without losing what it read if pylog is killed.

Bytes are *peeked* with ``tee(2)`` (copied out of the pipe without consuming
them) into a private peek pipe, handed to ``on_data``, and only the bytes it
reports as handled (whole frames, stored) are then taken out of the pipe. So
when pylog dies at any point, everything not yet stored is still in the FIFO
for the next pylog process, which reattaches to it (see store.attachments); at
worst the last batch is seen twice, which the driver recognises.

A frame cut by the end of what is in the pipe is normally finished within
microseconds (dockerd writes a frame's header and body in two writes). The
reader waits for the rest with pauses that double from 1 ms to 64 ms: a poll
on the FIFO cannot wait for it, since the FIFO stays readable. If the frame
has still not grown after those 127 ms, the reader stops peeking it: see below.
Why pauses: they leave the cut frame in the FIFO, so a crash loses nothing,
and cost no file descriptor. Being woken by the write itself (inotify, or
edge-triggered epoll on the FIFO) would cost one more descriptor per
container, and epoll's wake-up on every pipe write is a kernel behaviour that
some kernel versions lacked (5.5 to 5.13), which would hang the reader.

**Frames read into memory.** A frame is read out of the FIFO (consumed) into
a buffer of the frame's size, and decoded from there, when it cannot be peeked
whole or waiting for it would stall:

- it is longer than both pipes can show at once (every decision uses the
  pipes' real sizes from ``F_GETPIPE_SZ``: past the kernel's per-user pipe
  quota, ``fs.pipe-user-pages-soft``, pipes cannot grow and a new peek pipe
  gets 8 KiB, smaller than one of dockerd's 16 KiB chunks);
- its writer has hung up, or it has not grown for those 127 ms (a writer
  stalled mid-frame; the reader then blocks in poll and uses no CPU).

That buffer never exceeds the decoder's bound on a frame (``max_frame``): a
longer length is counted and skipped by resynchronising, never buffered. The
cost: a frame being read into memory when pylog is killed or halted is lost,
and the next process, which reattaches with a resynchronising decoder, skips
and counts the part of it left in the FIFO. Everything else keeps the
guarantee above.

**Pipe sizes.** The FIFO and the peek pipe are grown to 1 MiB, so a burst has
room while a batch is written, but only once the FIFO is seen at least half
full in one peek: those pages count against a quota that every root process
on the host shares (16,384 pages by default), and a quiet container has no
use for them. A failed attempt is tried again 10 s later at the earliest.

**Gathering.** After a read that found the FIFO less than a quarter full, the
reader waits a millisecond before it looks again (not in a FIFO below 64 KiB,
where a pause could fill it), so that it takes dockerd's frames in reads of tens of
kilobytes instead of a few frames at a time.

Reading ends at EOF, which dockerd causes by closing its end after
StopLogging, or at once on :meth:`FifoReader.halt` (pylog shutting down: what
is still in the pipe stays there).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import mmap
import os
import select
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
#: File descriptors one running :class:`FifoReader` holds: the FIFO, both ends
#: of its peek pipe and its wake-up eventfd. (The ``/dev/null`` that consumed
#: bytes are spliced to is one for the whole process.)
FDS_PER_READER = 4
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_SPLICE_F_NONBLOCK = 2
_PAGE = mmap.PAGESIZE
#: The pauses while a frame is cut: doubled from the first up to the last.
_PAUSE_FIRST_MS = 1
_PAUSE_LAST_MS = 64
#: After a read of less than a quarter of the FIFO (``_GATHER_PART``), the reader
#: waits this long before it looks again, if the FIFO holds at least
#: ``_GATHER_MIN_PIPE`` bytes. dockerd writes every frame with its own writes, and a
#: reader that looks again at once wakes for a few frames at a time: 12,000 reads
#: of 12 KB for a million 100-byte lines, each with its tee, read, splice, write and
#: the Python around them. A busy writer fills at most a small part of the FIFO
#: meanwhile (42 MB/s, a fast container through dockerd, is 42 KB a millisecond),
#: and a quiet container's line waits a millisecond more.
_GATHER_MS = 1
_GATHER_PART = 4
_GATHER_MIN_PIPE = 64 << 10
#: Seconds before a failed attempt to grow the pipes is made again.
_GROW_RETRY_S = 10.0

_libc = ctypes.CDLL(None, use_errno=True)
_tee = _libc.tee
_tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
_tee.restype = ctypes.c_ssize_t

#: ``on_data(data, final)`` returns ``(used, wanted)``: how many leading bytes
#: of ``data`` it has handled for good, and, when it left a cut frame at
#: ``data[used:]``, that frame's whole length (0 if unknown). ``final`` means
#: nothing more can arrive to complete the rest.
DataHandler = Callable[[bytes, bool], tuple[int, int]]

_sink_fd = -1
_sink_lock = threading.Lock()


def _sink() -> int:
    """The process's one ``/dev/null``, where consumed bytes are spliced to."""
    global _sink_fd
    with _sink_lock:
        if _sink_fd < 0:
            _sink_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return _sink_fd


def _set_pipe_size(fd: int, size: int) -> int:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    return _pipe_size(fd)


def _pipe_size(fd: int) -> int:
    return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))


def _pipe_bytes(fd: int) -> int:
    """Bytes waiting in a pipe."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


class FifoReader:
    """Pumps a FIFO's bytes into ``on_data`` until EOF or :meth:`halt`, then calls ``on_end``."""

    def __init__(
        self,
        path: Path,
        on_data: DataHandler,
        on_end: Callable[[bool], None],
        *,
        name: str = "pylog-fifo",
        chunk: int = READ_CHUNK,
        grow_to: int = PIPE_SIZE,
        peek_size: int = 0,
    ) -> None:
        """``grow_to``: the size both pipes are grown to once the FIFO is busy (0: never).
        ``peek_size``: a size to set the new peek pipe to, as the kernel's quota
        would (tests: 8 KiB is what a pipe gets past the quota)."""
        self.path = path
        self._on_data = on_data
        self._on_end = on_end
        # O_NONBLOCK: opening never waits for a writer; reads are driven by poll().
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._fds = [self._fd]
        # Closing and halt() take turns: halt() must never write to a number
        # the reader has closed and the process may have reused for a log file.
        self._fds_lock = threading.Lock()
        try:
            self._peek_r, self._peek_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._fds += [self._peek_r, self._peek_w]
            if peek_size:
                _set_pipe_size(self._peek_w, peek_size)
            self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._fds.append(self._wake)
            self._sink = _sink()
            self._chunk_limit = chunk
            self._measure()
        except BaseException:
            self._close_fds()
            raise
        self._grow_to = grow_to
        self._next_grow = 0.0
        self._halted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _measure(self) -> None:
        """Size every decision on what the two pipes really hold."""
        self.pipe_size = _pipe_size(self._fd)
        self.peek_size = _pipe_size(self._peek_w)
        shown = min(self.pipe_size, self.peek_size)
        self._chunk = min(self._chunk_limit, shown)
        # The longest frame one tee is sure to show whole: the pipes count pages,
        # and the frame may share its first and last page with other bytes.
        self._window = shown - 2 * _PAGE
        # Reads shorter than this are followed by a pause (0: never, a small FIFO).
        self._gather_below = (
            self.pipe_size // _GATHER_PART if self.pipe_size >= _GATHER_MIN_PIPE else 0
        )

    def _maybe_grow(self, peeked: int) -> None:
        """Grow both pipes once the FIFO is seen at least half full."""
        if not self._grow_to or peeked * 2 < self._chunk:
            return
        if self.pipe_size >= self._grow_to and self.peek_size >= self._grow_to:
            return
        now = time.monotonic()
        if now < self._next_grow:
            return
        fifo = _set_pipe_size(self._fd, self._grow_to)
        _set_pipe_size(self._peek_w, fifo)
        self._measure()
        if self.pipe_size < self._grow_to or self.peek_size < self._grow_to:
            self._next_grow = now + _GROW_RETRY_S
            log.debug(
                "%s: pipes not grown to %d (FIFO %d, peek pipe %d bytes)",
                self.path.name,
                self._grow_to,
                self.pipe_size,
                self.peek_size,
            )

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Stop reading as soon as the current chunk is handled; leave the rest in the pipe."""
        self._halted = True
        with self._fds_lock, contextlib.suppress(OSError):
            if self._fds:
                os.eventfd_write(self._wake, 1)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _close_fds(self) -> None:
        with self._fds_lock:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = []

    def _run(self) -> None:
        eof = False
        try:
            eof = self._pump()
        except Exception:
            log.exception("reading %s failed", self.path)
        finally:
            self._close_fds()
            self._on_end(eof)

    def _peek(self) -> int:
        """Copy what the FIFO holds into the peek pipe; bytes copied, 0 at EOF, -1 if empty."""
        n = _tee(self._fd, self._peek_w, self._chunk, _SPLICE_F_NONBLOCK)
        if n >= 0:
            return int(n)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            return -1
        raise OSError(err, os.strerror(err))

    def _read_peeked(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            data = os.read(self._peek_r, n)
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def _consume(self, n: int) -> None:
        """Take ``n`` handled bytes out of the FIFO."""
        while n > 0:
            try:
                n -= os.splice(self._fd, self._sink, n)
            except InterruptedError:
                continue

    def _take(self, buf: bytearray, n: int) -> int:
        """Read up to ``n`` bytes of the FIFO into ``buf``: bytes read, 0 at EOF, -1 if empty."""
        got = 0
        while got < n:
            try:
                data = os.read(self._fd, n - got)
            except BlockingIOError:
                return got or -1
            except InterruptedError:
                continue
            if not data:
                return got
            buf += data
            got += len(data)
        return got

    def _pump(self) -> bool:
        """Returns True at EOF, False when halted."""
        # An empty FIFO: wait for data, the writer's hang-up or halt().
        idle = select.poll()
        idle.register(self._fd, select.POLLIN)
        idle.register(self._wake, select.POLLIN)
        # A cut frame: the FIFO is readable, so wait for the hang-up or halt() only.
        pausing = select.poll()
        pausing.register(self._fd, 0)
        pausing.register(self._wake, select.POLLIN)
        # Bytes read out of the FIFO but not handled yet: the head of a frame
        # that is read into memory, ``need`` bytes long once complete.
        carry = bytearray()
        need = 0
        pause = _PAUSE_FIRST_MS
        last_rest = -1
        while not self._halted:
            if len(carry) < need:
                got = self._take(carry, need - len(carry))
                if got < 0:
                    idle.poll()
                elif got == 0:
                    self._handle(carry, b"", True)
                    return True
                continue
            n = self._peek()
            if n == 0:
                if carry:
                    self._handle(carry, b"", True)
                return True
            if n < 0 and not carry:
                idle.poll()
                continue
            peeked = self._read_peeked(n) if n > 0 else b""
            if n > 0:
                self._maybe_grow(n)
            hung_up = final = False
            if 0 <= n < self._chunk and _writers_gone(self._fd):
                # The writer may have added the rest of a frame between the peek
                # and its hang-up: look again, now that nothing more can come.
                hung_up = True
                n = max(self._peek(), 0)
                peeked = self._read_peeked(n)
                final = _pipe_bytes(self._fd) == n
            used, rest, wanted = self._handle(carry, peeked, final)
            if used and not hung_up and self._gather_below > n:
                # Little was waiting: let more gather before the next look.
                pausing.poll(_GATHER_MS)
            if not rest or final:
                need, last_rest = 0, -1
                continue
            # A cut frame is pending at the end of what was seen.
            if used or rest != last_rest:
                pause = _PAUSE_FIRST_MS
            last_rest = rest
            if carry or hung_up or wanted > self._window or pause > _PAUSE_LAST_MS:
                need = wanted or rest + 1
                self._take(carry, need - len(carry))
            elif not used:
                # Nothing new since the last look: give the writer time.
                pausing.poll(pause)
                pause *= 2
        return False

    def _handle(self, carry: bytearray, peeked: bytes, final: bool) -> tuple[int, int, int]:
        """Hand ``carry + peeked`` to on_data and drop what it used from both.

        Returns (bytes used, bytes left over, the whole length of the cut
        frame those begin, if known).
        """
        data = bytes(carry) + peeked if carry else peeked
        used, wanted = self._on_data(data, final)
        if used:
            taken = min(used, len(carry))
            del carry[:taken]
            self._consume(used - taken)
        return used, len(data) - used, wanted


def _writers_gone(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))
