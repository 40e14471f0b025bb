"""The garbage collector, set for a process that makes millions of short-lived tuples.

Both processes turn every log line into a few objects (a decoded entry, a record
tuple) that reference counting frees at once: none of them is part of a cycle.
CPython's default collector still runs a young-generation pass every 700 net
allocations, and each pass walks every tracked object allocated since; at
100,000 lines a second that is over a hundred passes a second, for nothing.
Measured on the shipping process shipping 1,000,000 lines: 3.73 CPU s before,
3.44 after (``scripts/bench``, docs/performance.md).

:func:`tune` moves everything alive after startup (modules, settings) out of the
collector's sight (``gc.freeze``) and makes young passes rarer. Cycles are still
collected, later.
"""

from __future__ import annotations

import gc

#: Net allocations between young-generation passes (CPython's default: 700).
YOUNG_THRESHOLD = 100_000


def tune() -> None:
    """Call once, after startup's imports."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
