"""Nanosecond timestamps in the two text forms the protocol uses.

Python's ``datetime`` stops at microseconds, but Docker keeps nanoseconds: the
json-file record's ``time`` field is Go's ``RFC3339Nano`` in UTC (fraction with
trailing zeros trimmed), and ReadLogs' ``Since``/``Until`` arrive as Go
``time.Time`` JSON (RFC 3339 with an optional fraction and any UTC offset).
Everything here works on integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

NS_PER_SECOND = 1_000_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


@lru_cache(maxsize=4096)
def _second_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_rfc3339nano(ns: int) -> str:
    """Format like Go's ``t.UTC().Format(time.RFC3339Nano)``."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    prefix = _second_prefix(seconds)
    if frac == 0:
        return prefix + "Z"
    return prefix + "." + f"{frac:09d}".rstrip("0") + "Z"


def format_rfc3339_fixed(ns: int) -> str:
    """RFC 3339 UTC with all nine fraction digits (fixed width, sorts as text)."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    return _second_prefix(seconds) + f".{frac:09d}Z"


@lru_cache(maxsize=4096)
def seconds_of_prefix(prefix: bytes) -> int | None:
    """Epoch seconds of a stored time's ``YYYY-MM-DDTHH:MM:SS`` part; None if invalid."""
    try:
        return calendar.timegm(time.strptime(prefix.decode(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _seconds_from_prefix(prefix: str) -> int:
    seconds = seconds_of_prefix(prefix.encode())
    if seconds is None:
        raise ValueError(f"not a time: {prefix!r}")
    return seconds


def parse_record_time(text: str) -> int:
    """Parse the ``time`` field pylog itself writes (UTC, ``Z``, 0-9 fraction digits).

    A fast path for the store's own records; anything else goes through
    :func:`parse_rfc3339`.
    """
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T":
        seconds = _seconds_from_prefix(text[:19])
        if len(text) == 20:
            return seconds * NS_PER_SECOND
        if text[19] == "." and len(text) <= 30:
            digits = text[20:-1]
            if digits.isdigit():
                return seconds * NS_PER_SECOND + int(digits.ljust(9, "0"))
    return parse_rfc3339(text)


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 timestamp with up to nanosecond precision.

    Raises ``ValueError`` for anything else.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = int((m.group(7) or "0").ljust(9, "0"))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    return seconds * NS_PER_SECOND + frac


def parse_go_time(text: str | None) -> int | None:
    """Parse a Go ``time.Time`` from JSON; ``None`` for Go's zero time or absent."""
    if not text:
        return None
    ns = parse_rfc3339(text)
    if text.startswith("0001-01-01T00:00:00"):
        return None
    return ns
