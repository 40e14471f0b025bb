"""When the unshippable backlog of a stopped container is given up.

A container whose logging has stopped but whose lines Kafka does not take
(broker gone for good, topic deleted, credentials revoked) would otherwise be
retried forever, by every pylog that starts. ``KAFKA_BACKLOG_MAX_AGE`` gives
that an end. The age is measured from the later of

* the last acknowledgement: when ``kafka.position`` last moved (its mtime, so
  the age survives pylog restarts; a shipper that starts without changing the
  position does not rewrite it), and
* the last line written: the mtime of the log's current file, which for a
  stopped container is about when its logging stopped.

Only a closed log (logging stopped, or a backlog resumed at startup) is ever
given up: a running container's lines are never skipped here (rotation is
what bounds those). With a max age of 0 nothing is given up.

The clock is a parameter (wall-clock seconds, like file mtimes), so a test
can move time; nothing here depends on threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class BacklogLimit:
    def __init__(self, max_age: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age = max_age
        self.clock = clock

    def expired(self, *, closed: bool, last_ack: float, last_write: float) -> bool:
        """Whether the backlog is to be given up now."""
        if self.max_age <= 0 or not closed:
            return False
        return self.clock() - max(last_ack, last_write) >= self.max_age


def mtime(path: Path) -> float | None:
    """The file's modification time, or None when it cannot be read."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
