"""Reading one container's FIFO without ever making the container wait on pylog.

The FIFO is read in large chunks (every frame in a chunk is decoded in one go)
on a thread of its own. The pipe is enlarged to 1 MiB where the kernel allows,
so a burst has room while a batch is being written. Reading ends at EOF, which
dockerd causes by closing its end after StopLogging, or at once on
:meth:`FifoReader.halt` (pylog shutting down: what is still in the pipe stays
there for the next pylog process).
"""

from __future__ import annotations

import contextlib
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


class FifoReader:
    """Pumps a FIFO's bytes into ``on_data`` until EOF or :meth:`halt`, then calls ``on_end``."""

    def __init__(
        self,
        path: Path,
        on_data: Callable[[bytes], None],
        on_end: Callable[[bool], None],
        *,
        name: str = "pylog-fifo",
        chunk: int = READ_CHUNK,
    ) -> None:
        self.path = path
        self._on_data = on_data
        self._on_end = on_end
        self._chunk = chunk
        # O_NONBLOCK: opening never waits for a writer; reads are driven by poll().
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError as exc:
            log.debug("could not enlarge pipe %s: %s", path, exc)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
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

    def _run(self) -> None:
        eof = False
        try:
            eof = self._pump()
        except Exception:
            log.exception("reading %s failed", self.path)
        finally:
            for fd in (self._fd, self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._on_end(eof)

    def _pump(self) -> bool:
        """Returns True at EOF, False when halted."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        fd, chunk = self._fd, self._chunk
        while not self._halted:
            try:
                data = os.read(fd, chunk)
            except BlockingIOError:
                poller.poll()
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return True
            self.bytes_read += len(data)
            self._on_data(data)
        return False
