"""The repair of a state dir an older pylog left.

An older pylog wrote each container's whole Info (its env, passwords included),
0644 in 0755 directories. :func:`repair` runs at startup, before anything reads
the state dir: it rewrites ``info.json`` and the FIFO records as ``keep`` says
(the service passes :func:`pylog.kept_info.kept_info`, which drops the env the
log-opts do not select), removes temp files a crash left (they may hold an old
Info), and makes directories 0700 and files 0600. What it cannot fix is
logged and skipped: pylog must start whatever it finds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import INFO_FILE
from .atomic import DIR_MODE, FILE_MODE, TMP_SUFFIX, write_json

log = logging.getLogger(__name__)

Keep = Callable[[Mapping[str, Any]], dict[str, Any]]


def repair(root: Path, fifos: Path, keep: Keep) -> None:
    """Make everything under ``root`` private and rewrite stored Info as ``keep``
    makes it (see module doc)."""
    _chmod(root, DIR_MODE)
    containers = root / "containers"

    def failed(exc: OSError) -> None:
        log.warning("state dir repair: cannot read %s: %s", exc.filename, exc.strerror)

    for top, dirs, files in os.walk(root, onerror=failed):
        here = Path(top)
        for name in dirs:
            _chmod(here / name, DIR_MODE)
        for name in files:
            path = here / name
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                if name.endswith(TMP_SUFFIX):
                    path.unlink()  # nothing is writing yet: left by a crash
                    continue
                _chmod(path, FILE_MODE)
                if name == INFO_FILE and here.parent == containers:
                    _rewrite(path, keep)
                elif here == fifos and name.endswith(".json"):
                    with contextlib.suppress(ValueError, RecursionError):
                        _rewrite(
                            path, lambda record: _kept_record(record, keep)
                        )  # unreadable: attachments drops it
            except Exception as exc:
                log.warning("state dir repair: cannot fix %s: %r", path, exc)


def _kept_record(record: Mapping[str, Any], keep: Keep) -> dict[str, Any]:
    out = dict(record)
    if isinstance(out.get("Info"), dict):
        out["Info"] = keep(out["Info"])
    return out


def _rewrite(path: Path, keep: Keep) -> None:
    """Rewrite a JSON object file as ``keep`` makes it, if that changes it, keeping
    its times (the cleanup goes by them)."""
    obj = json.loads(path.read_bytes())
    if not isinstance(obj, dict):
        return
    kept = keep(obj)
    if kept == obj:
        return
    st = os.stat(path)
    write_json(path, kept)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    log.info("state dir repair: removed unselected env from %s", path)


def _chmod(path: Path, mode: int) -> None:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
            return
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("state dir repair: cannot make %s private: %s", path, exc.strerror)
