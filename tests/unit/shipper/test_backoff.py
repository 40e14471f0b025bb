"""The retry wait: doubling, capped, and spread so shippers do not retry in lockstep."""

import random

from pylog.shipper.backoff import Backoff
from pylog.shipper.task import BACKOFF_MAX, BACKOFF_MIN


def test_pinned_draws_give_the_bounds_of_each_range() -> None:
    low = Backoff(0.5, 4.0, rand=lambda: 0.0)
    high = Backoff(0.5, 4.0, rand=lambda: 1.0)
    assert [low.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [high.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_reset_starts_again_from_the_lowest_range() -> None:
    b = Backoff(0.5, 30.0, rand=lambda: 1.0)
    for _ in range(10):
        b.next()
    b.reset()
    assert b.next() == 0.5


def test_shippers_failing_together_retry_spread_out() -> None:
    """A hundred shippers that failed at the same moment (one outage), each with its
    own random stream: their retries are spread over the upper half of the range,
    not at the same instants."""
    shippers = [Backoff(BACKOFF_MIN, BACKOFF_MAX, rand=random.Random(i).random) for i in range(100)]
    # Retry instants after four failures each, from the moment of the outage.
    instants = [sum(b.next() for _ in range(4)) for b in shippers]
    lockstep = BACKOFF_MIN * (1 + 2 + 4 + 8)
    assert len({round(t, 3) for t in instants}) > 90
    assert max(instants) - min(instants) > lockstep / 4
    assert all(lockstep / 2 <= t <= lockstep for t in instants)
