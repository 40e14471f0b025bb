"""Time left before an absolute deadline (``time.monotonic()`` based).

Shutdown passes one deadline down through every stage (FIFO readers, shippers
draining, shippers halting, Kafka producers closing) instead of each stage
adding its own timeout: the stages then add up to the total, whatever each
one takes.
"""

from __future__ import annotations

import time


def left(deadline: float, reserve: float = 0.0) -> float:
    """Seconds until ``deadline - reserve`` (never negative): ``reserve`` is kept
    for the stages that come after."""
    return max(0.0, deadline - reserve - time.monotonic())
