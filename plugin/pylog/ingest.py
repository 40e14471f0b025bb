"""Reading one container's FIFO without ever making the container wait on pylog,
and without losing what it read if pylog is killed.

Bytes are *peeked* with ``tee(2)`` (copied out of the pipe without consuming
them), handed to ``on_data``, and only the bytes it reports as handled (whole
frames, stored) are then taken out of the pipe. So when pylog dies at any point,
everything not yet stored is still in the FIFO for the next pylog process,
which reattaches to it (see store.attachments); at worst the last batch is seen
twice, which the driver recognises. A frame cut by the end of what is in the
pipe stays there until the rest arrives.

The pipe is enlarged to 1 MiB where the kernel allows, so a burst has room
while a batch is being written. Reading ends at EOF, which dockerd causes by
closing its end after StopLogging, or at once on :meth:`FifoReader.halt`
(pylog shutting down: what is still in the pipe stays there).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_SPLICE_F_NONBLOCK = 2
#: How long to wait for the rest of a frame that is only partly in the pipe.
_PARTIAL_WAIT_MS = 5

_libc = ctypes.CDLL(None, use_errno=True)
_tee = _libc.tee
_tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
_tee.restype = ctypes.c_ssize_t

#: ``on_data(data, final)`` returns how many leading bytes of ``data`` it has
#: handled for good; ``final`` means nothing more can arrive to complete the rest.
DataHandler = Callable[[bytes, bool], int]


def _set_pipe_size(fd: int, size: int) -> int:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))


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
    ) -> None:
        self.path = path
        self._on_data = on_data
        self._on_end = on_end
        # O_NONBLOCK: opening never waits for a writer; reads are driven by poll().
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._fds = [self._fd]
        try:
            self.pipe_size = _set_pipe_size(self._fd, PIPE_SIZE)
            self._peek_r, self._peek_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._fds += [self._peek_r, self._peek_w]
            _set_pipe_size(self._peek_w, self.pipe_size)
            self._sink = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            self._fds.append(self._sink)
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._fds += [self._wake_r, self._wake_w]
        except BaseException:
            self._close_fds()
            raise
        self._chunk = min(chunk, self.pipe_size)
        self._halted = False
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Stop reading as soon as the current chunk is handled; leave the rest in the pipe."""
        self._halted = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _close_fds(self) -> None:
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

    def _pump(self) -> bool:
        """Returns True at EOF, False when halted."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        waiting_for_more = False
        while not self._halted:
            if waiting_for_more:
                # Part of a frame is in the pipe: the writer is finishing it.
                poller.poll(_PARTIAL_WAIT_MS)
                waiting_for_more = False
            n = self._peek()
            if n < 0:
                poller.poll()
                continue
            if n == 0:
                return True
            data = self._read_peeked(n)
            hung_up = False
            if n < self._chunk and _writers_gone(self._fd):
                # The writer may have added the rest of a frame between the peek
                # and its hang-up: look again, now that nothing more can come.
                n = self._peek()
                data = self._read_peeked(n)
                hung_up = n < self._chunk
            used = self._on_data(data, hung_up)
            if used == 0 and n >= self.pipe_size:
                # The pipe is full of one frame that can never fit: let it be skipped.
                used = self._on_data(data, True)
            if used:
                self.bytes_read += used
                self._consume(used)
            if used < n:
                waiting_for_more = True
        return False


def _writers_gone(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))
