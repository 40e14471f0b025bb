"""Private, crash-safe files in the state directory.

Everything pylog keeps (logs, the containers' Info, FIFO records, Kafka
positions) is readable by pylog only: files 0600, directories 0700. The state
directory is a host mount, and a container's Info or log lines are nobody
else's business.

:func:`write_atomic` is the one way small state files are replaced: a temp file
beside the target, fsynced, renamed over it, then the directory fsynced. A
crash or power cut leaves the old content or the new, never an empty or torn
file. Temp files end in ``.tmp``; a writer that died leaves one behind, which
the next start removes (see logfile's recovery and attachments).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: Mode of every file pylog writes.
FILE_MODE = 0o600
#: Mode of every directory pylog creates.
DIR_MODE = 0o700
#: Suffix of the temp files of :func:`write_atomic`.
TMP_SUFFIX = ".tmp"


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents as 0700; an existing ``path`` is made 0700.

    (``Path.mkdir(parents=True)`` would create the parents with the default mode.)
    """
    missing: list[Path] = []
    p = path
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
    if (os.stat(path).st_mode & 0o7777) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``, 0600, atomically and (unless not ``durable``)
    durably: see the module doc. ``durable=False`` skips both fsyncs, for a file
    whose loss in a power cut is recovered otherwise, written where a flush would
    hold up ingestion."""
    # A unique temp name: two writers of one file (two FIFOs of a container) never
    # write into each other's temp file. mkstemp creates it 0600.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TMP_SUFFIX)
    try:
        with open(fd, "wb", closefd=True) as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(path: Path, obj: Any) -> None:
    """:func:`write_atomic` of ``obj`` as one line of JSON."""
    write_atomic(path, json.dumps(obj).encode() + b"\n")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
