"""The open-file budget: refuse a new container before pylog runs out of descriptors.

Each container being logged holds descriptors for as long as it logs (its FIFO,
the pipes that peek into it, its log file), and pylog's soft ``RLIMIT_NOFILE``
is whatever containerd had: a plugin spec sets no rlimits. At the limit
``accept(2)`` fails and nothing answers any more, not even StopLogging, and the
container that tipped it over is not even recorded for reattachment. So the
server raises the soft limit to the hard one at start, and the service refuses
StartLogging (and a ``docker logs`` stream, which holds a socket and its log
files) while the descriptors left would eat into a reserve kept for serving.
"""

from __future__ import annotations

import os
import resource

from . import ingest
from .models import BusyError

#: Descriptors one container being logged holds: its FIFO reader's, its log
#: file, and the file its Kafka shipper reads.
FDS_PER_CONTAINER = ingest.FDS_PER_READER + 2

#: Descriptors one ``docker logs`` stream holds: its socket and up to three log
#: files (the current one, a rotated one, a gzipped one being read).
FDS_PER_STREAM = 4

#: Descriptors always left for serving: the sockets of StartLogging, StopLogging
#: and Capabilities, the files they write, rotation and compression, and the
#: margin for requests checked at the same time.
SERVING_RESERVE = 128


def open_files_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` (a huge number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 62


def open_files() -> int:
    """Descriptors this process has open now (the listing's own one not counted)."""
    return len(os.listdir("/proc/self/fd")) - 1


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; returns (before, after).

    A hard limit of "unlimited" cannot be the soft one for open files: the
    kernel's ``fs.nr_open`` is the most a process can have then.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            target = int(f.read())
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class FdBudget:
    """Checks that a new container or stream leaves :data:`SERVING_RESERVE` free."""

    def __init__(self, reserve: int = SERVING_RESERVE) -> None:
        self.reserve = reserve

    def check_start(self) -> None:
        self._check(FDS_PER_CONTAINER + self.reserve, "log one more container")

    def check_read(self) -> None:
        # Streams may use half the reserve: a flood of docker logs can never
        # leave StopLogging without a socket.
        self._check(FDS_PER_STREAM + self.reserve // 2, "serve one more docker logs stream")

    def _check(self, needed: int, what: str) -> None:
        limit, used = open_files_limit(), open_files()
        if limit - used < needed:
            raise BusyError(
                f"pylog cannot {what}: it has {used} files open and its open-file limit "
                f"(RLIMIT_NOFILE) is {limit}; each container takes {FDS_PER_CONTAINER} and "
                f"{self.reserve} are kept for serving. Raise the hard limit of containerd "
                "or dockerd (LimitNOFILE), pylog raises its own to it at start, or log "
                "fewer containers through pylog"
            )
