"""The wait between a shipper's retries: capped exponential backoff with equal jitter.

After a broker outage every shipper fails at about the same moment; with a
plain doubling backoff they would all retry in lockstep (every producer
restart, every rewind, at the same instants). Each wait is therefore drawn
from ``[b/2, b]``, ``b`` doubling from ``low`` to ``high`` ("equal jitter").
Equal rather than full jitter (``[0, b]``): half of the wait is kept, so a
broker that is still down is not hit again almost at once by the unlucky
draws, and the cap still means "about this long between attempts".

The random source is a parameter, so a test can pin the sequence; nothing
here depends on threads or clocks.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, low: float, high: float, rand: Callable[[], float] = random.random) -> None:
        self.low = low
        self.high = high
        self._rand = rand
        self._base = low

    def reset(self) -> None:
        """Delivery worked again: the next failure is a fresh one."""
        self._base = self.low

    def next(self) -> float:
        """The wait before the next retry; the one after is drawn from a doubled range."""
        base = self._base
        self._base = min(base * 2, self.high)
        return base / 2 + self._rand() * base / 2
