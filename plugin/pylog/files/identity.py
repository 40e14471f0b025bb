"""Which file a log file is, and how far it has been read.

A path is only a name: rotation gives it to another file. A file is known by
its device and inode, as filebeat's registry knows it, so a read position
survives a rename (``access.log`` becoming ``access.log.1``) and a restart.
"""

from __future__ import annotations

import os
from typing import NamedTuple


class FileIdentity(NamedTuple):
    """A file, whatever it is called now: (device, inode)."""

    dev: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino)


class FilePosition(NamedTuple):
    """Everything of ``identity`` before ``offset`` has been read."""

    identity: FileIdentity
    offset: int
