"""What pylog keeps of a container's Info, and the repair of a state dir an older pylog left.

dockerd's Info carries the container's whole environment, passwords included.
pylog needs only the env entries the container's ``env``/``env-regex``
log-opts select: they go into each record's ``attrs`` and Kafka ``env``, and
are all that reattaching or resuming a backlog reads back (json-file keeps no
env at all). :func:`kept_info` is the Info with every other entry removed, and
is what ``info.json`` and the FIFO records hold.

An older pylog wrote the whole Info, 0644 in 0755 directories. :func:`repair`
runs at startup, before anything reads the state dir: it rewrites those records
without the unselected env, removes temp files a crash left (they may hold an
old Info), and makes directories 0700 and files 0600. What it cannot fix is
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

from ..config import parse_log_opts
from . import INFO_FILE
from .atomic import DIR_MODE, FILE_MODE, TMP_SUFFIX, write_json

log = logging.getLogger(__name__)

Keep = Callable[[Mapping[str, Any]], dict[str, Any]]


def kept_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` (dockerd's JSON, valid or not) with only the env its log-opts select."""
    out = dict(info)
    if out.get("ContainerEnv") is not None:
        out["ContainerEnv"] = _kept_env(info.get("Config"), info["ContainerEnv"])
    return out


def _kept_env(config: Any, env: Any) -> list[str]:
    if not isinstance(env, list):
        return []
    pairs: dict[str, str] = {}
    for item in env:  # read as ContainerInfo.env reads it: the last of a key wins
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            if sep:
                pairs[key] = value
    try:
        selected = parse_log_opts(config if config is not None else {}).selected_env(pairs)
    except Exception:
        return []  # log-opts this version rejects: the record is unusable, keep no env
    return [f"{key}={value}" for key, value in selected.items()]


def repair(root: Path, fifos: Path) -> None:
    """Make everything under ``root`` private and scrub stored Info (see module doc)."""
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
                    _rewrite(path, kept_info)
                elif here == fifos and name.endswith(".json"):
                    with contextlib.suppress(ValueError, RecursionError):
                        _rewrite(path, _kept_record)  # unreadable: attachments drops it
            except Exception as exc:
                log.warning("state dir repair: cannot fix %s: %r", path, exc)


def _kept_record(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if isinstance(out.get("Info"), dict):
        out["Info"] = kept_info(out["Info"])
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
