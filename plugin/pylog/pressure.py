"""Whether ingest is running flat out, so that shipping can stand back.

Ingest (FIFO to local log) and shipping (local log to Kafka) share one
process and therefore one GIL. When a container writes as fast as it can,
every moment the shipper holds the GIL is a moment the FIFO fills, and a full
FIFO stalls the container. Lines wait safely in the local log (the shipper's
write-ahead log), so while ingest is under pressure the shippers take a
smaller share of the process and catch up afterwards. They never stop
entirely: a container logging flat out for good still gets shipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A read of at least this much means the FIFO had filled up behind it.
FULL_READ = 256 * 1024
#: How long one full read counts as pressure.
HOLD = 0.05
#: Under pressure, a shipper rests this many times as long as it worked.
REST_FACTOR = 3.0
#: ... but never longer than this at a time.
REST_MAX = 0.1


class IngestPressure:
    """Set by FIFO readers on full reads; read by shippers between batches."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self.rests = 0
        """How many times a shipper stood back (a metric and a test hook)."""

    def note_read(self, size: int) -> None:
        if size >= FULL_READ:
            self._until = self._clock() + HOLD

    def active(self) -> bool:
        return self._clock() < self._until

    def yield_to_ingest(self, worked: float, sleep: Callable[[float], object] = time.sleep) -> None:
        """After ``worked`` seconds of shipping: if ingest is under pressure, sleep so
        that it gets the GIL (a rest, counted in :attr:`rests`)."""
        if self.active():
            self.rests += 1
            sleep(min(worked * REST_FACTOR, REST_MAX))
