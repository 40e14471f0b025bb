"""Resident memory and CPU time of another process, read from ``/proc/<pid>/stat``.

The shipping processes are children of the main process, which exports their
figures next to its own (prometheus_client's process collector reads only the
process it runs in).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessStat:
    pid: int
    resident_bytes: int
    cpu_seconds: float
    """User and system time."""


def read_stat(pid: int) -> ProcessStat | None:
    """The process's figures now; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return ProcessStat(pid, rss * _PAGE, (utime + stime) / _TICKS)
