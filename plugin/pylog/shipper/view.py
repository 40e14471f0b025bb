"""A shipping process's view of one container's log: the files on disk, the state by message.

The main process writes the log; a shipping process only reads its files. It
does not watch the directory or poll: the log's state (generation, size of
whole records, closed) comes in :class:`~.ipc.Ship` and :class:`~.ipc.Grew`
messages and is set here (:meth:`LogView.update`), which wakes the task
following the log (:meth:`LogView.next_change`, the
:data:`~pylog.store.reader.AsyncWait` of
:func:`~pylog.store.reader.follow_from_async`). Reads are the store's own
(:mod:`pylog.store.reader`): a :class:`LogView` is a read-only
:class:`~pylog.store.logfile.LogFile` whose state is the last one told.

That state lags behind the disk by the time a message takes. Most of that is
harmless (what was appended since is simply read later), except for one thing:
``json.log`` may already be the file of a later generation than the view's
current one. :meth:`LogView.open_generation` therefore checks the file it
opens as current against the log's ``generation`` file (written before every
rotation), and opens the rotated file of that generation instead when the
current file has moved on, or nothing until the next message says more.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from ..store.logfile import LogFile, LogState, RotationPolicy, Segment


class LogView(LogFile):
    """A read-only :class:`LogFile` whose state is set from messages, not read from disk.

    Used from one asyncio loop only. Its blocking ``wait_for_change`` is not for
    it: a follower awaits :meth:`next_change`.
    """

    def __init__(self, directory: Path, policy: RotationPolicy, state: LogState) -> None:
        super().__init__(directory, policy, writable=False)
        self._woken = asyncio.Event()
        # The told state, not what the base class found on disk.
        self._generation, self._size, self._closed = state.generation, state.size, state.closed

    def update(self, state: LogState) -> None:
        """Take ``state`` as the log's (from a Ship or Grew message) and wake the follower.

        A state never goes back: messages come in order, but a Ship after a
        restart of the container's logging may carry what a Grew already said.
        """
        with self._lock:
            if (state.generation, state.size) < (self._generation, self._size):
                # Only closed -> open (logging restarted) can come with an equal place.
                state = LogState(self._generation, self._size, state.closed)
            self._generation, self._size, self._closed = (
                state.generation,
                state.size,
                state.closed,
            )
        self._woken.set()

    def wake(self) -> None:
        """Wake the follower without a change (its task is halting: it asks then)."""
        self._woken.set()

    async def next_change(self, seen: LogState, timeout: float) -> LogState:
        """Wait until the state moves past ``seen``, :meth:`wake` is called, or ``timeout``."""
        if self.state() == seen:
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
        return self.state()

    def open_generation(self, generation: int) -> Segment | None:
        """The file of ``generation`` or of the oldest later one kept, as
        :meth:`LogFile.open_generation`; None also while the view's current
        generation has been rotated away on disk and its file is not found."""
        seg = super().open_generation(generation)
        if seg is None or seg.size is None:
            return seg  # a rotated file: its name says its generation
        if self._load_generation() == seg.generation:
            # The generation file is written before json.log is renamed: it still
            # named this generation after the open, so the file opened is this one.
            return seg
        seg.close()
        rotated = self._open_rotated(seg.generation)
        if rotated is not None:
            rotated.size = seg.size  # read up to what the view knows, like the current file
        return rotated
