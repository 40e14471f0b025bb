"""A rate limit on pylog's own log, which dockerd copies into its log.

A flapping broker (aiokafka logs every failed connection attempt), or 200
containers starting at once, must not flood dockerd's log. :class:`RateLimitFilter`
sits on the stderr handler and keys records by (logger, message template): in each
window a key lets ``burst`` records through, counts the rest, and when the window
ends writes one summary line -- how many were suppressed and the last of them.

So a key writes at most ``burst + 1`` lines per window, whatever happens, and the
first lines of a new kind of trouble always get through.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Records per (logger, template) let through in a window.
BURST = 10
#: The window, seconds.
WINDOW = 60.0
#: Keys tracked at most; beyond (templates built at run time), a logger shares one key.
MAX_KEYS = 1000

#: Marks a summary record, which the filter lets through.
SUMMARY_ATTR = "pylog_rate_summary"

Schedule = Callable[[float, Callable[[], None]], None]
"""``schedule(delay_seconds, callback)``: call back later, on any thread."""


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    level: int = logging.NOTSET
    last: logging.LogRecord | None = None


def timer_schedule(delay: float, callback: Callable[[], None]) -> None:
    """The default :data:`Schedule`: a daemon timer thread."""
    t = threading.Timer(delay, callback)
    t.daemon = True
    t.name = "pylog-log-summary"
    t.start()


class RateLimitFilter(logging.Filter):
    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        burst: int = BURST,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule | None = timer_schedule,
    ) -> None:
        """``emit`` writes a summary record (the handler's ``handle``); ``schedule``
        (None: only on the next record or :meth:`flush`) makes summaries come out when
        their window ends even if nothing else is logged."""
        super().__init__()
        self.emit = emit
        self.burst = burst
        self.window = window
        self.clock = clock
        self.schedule = schedule
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._next_end: float | None = None  # earliest end of a window with suppressions
        self._timer_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        now = self.clock()
        due = self._next_end is not None and now >= self._next_end
        with self._lock:
            summaries = self._expire(now) if due else []
            key = self._key(record)
            w = self._windows.get(key)
            if w is None or now - w.start >= self.window:
                if w is not None and w.suppressed:
                    summaries.append(self._summary(key, w, now))
                w = self._windows[key] = _Window(now)
            if w.passed < self.burst:
                w.passed += 1
                keep, later = True, None
            else:
                w.suppressed += 1
                w.level = max(w.level, record.levelno)
                w.last = record
                keep, later = False, self._need_flush(w.start + self.window)
        self._emit(summaries)
        if later is not None and self.schedule is not None:
            self.schedule(max(0.0, later - now), self.flush)
        return keep

    def flush(self) -> None:
        """Write the summaries of the windows that have ended (called by the timer)."""
        now = self.clock()
        with self._lock:
            self._timer_at = None
            summaries = self._expire(now)
            later = self._need_flush(self._next_end) if self._next_end is not None else None
        self._emit(summaries)
        if later is not None and self.schedule is not None:
            self.schedule(max(0.0, later - now), self.flush)

    # -- internals (under the lock) ----------------------------------------------------

    def _key(self, record: logging.LogRecord) -> tuple[str, str]:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, template)
        if key not in self._windows and len(self._windows) >= MAX_KEYS:
            return (record.name, "*")
        return key

    def _need_flush(self, at: float) -> float | None:
        """Note a window ending at ``at`` with suppressions; the time to schedule, if new."""
        if self._next_end is None or at < self._next_end:
            self._next_end = at
        if self._timer_at is not None and self._timer_at <= at:
            return None
        self._timer_at = at
        return at

    def _expire(self, now: float) -> list[logging.LogRecord]:
        out: list[logging.LogRecord] = []
        next_end: float | None = None
        for key, w in list(self._windows.items()):
            end = w.start + self.window
            if now >= end:
                if w.suppressed:
                    out.append(self._summary(key, w, now))
                del self._windows[key]
            elif w.suppressed and (next_end is None or end < next_end):
                next_end = end
        self._next_end = next_end
        return out

    def _summary(self, key: tuple[str, str], w: _Window, now: float) -> logging.LogRecord:
        last = key[1]
        if w.last is not None:
            # A bad format: the handler reported it when it was logged.
            with contextlib.suppress(Exception):
                last = w.last.getMessage()
        record = logging.LogRecord(
            key[0],
            w.level,
            __file__,
            0,
            "%d similar messages suppressed in %.0f s, the last: %s",
            (w.suppressed, now - w.start, last),
            None,
        )
        setattr(record, SUMMARY_ATTR, True)
        return record

    def _emit(self, summaries: list[logging.LogRecord]) -> None:
        for r in summaries:
            self.emit(r)


def log_to_stderr(
    level: str, name: str = "pylog", schedule: Schedule | None = timer_schedule
) -> None:
    """Send this process's log to stderr, which dockerd copies into its log, each line
    starting with ``name`` and rate-limited (:class:`RateLimitFilter`; ``schedule`` as
    there: None sends a summary with the next line of its kind, no timer thread)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{name} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RateLimitFilter(handler.handle, schedule=schedule))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
