"""Gzip for rotated log files, through ISA-L.

The files are plain gzip, readable by ``zcat`` and by anything that reads
json-file's rotated logs; ISA-L only makes writing them about six times
cheaper than zlib at level 1, which matters because every byte a container
logs is compressed once.
"""

from __future__ import annotations

import os
from typing import BinaryIO, cast

from isal import igzip
from isal.isal_zlib import error as _isal_error

__all__ = ["IsalError", "open_gzip"]

#: What ISA-L raises on corrupt deflate data (its stubs do not say it is an exception).
IsalError = cast(type[Exception], _isal_error)

#: json-file's level: fast, since logs are written far more than read.
LEVEL = 1


def open_gzip(file: str | os.PathLike[str] | BinaryIO, mode: str = "rb") -> BinaryIO:
    """A gzip stream on ``file`` (a path or an open binary file) for ``mode``."""
    stream = igzip.open(file, mode, compresslevel=LEVEL)  # type: ignore[no-untyped-call]
    return cast(BinaryIO, stream)
