"""What pylog keeps at rest of a container's Info.

dockerd's Info carries the container's whole environment, passwords included.
pylog needs only the env entries the container's ``env``/``env-regex``
log-opts select: they go into each record's ``attrs`` and Kafka ``env``, and
are all that reattaching or resuming a backlog reads back (json-file keeps no
env at all). Env entries that declare logs (``<prefix>_logs_<name>...``, see
config/declarations.py) are kept too: a shipping process and a resumed backlog
read a declared log's target, tags and format from them; they name paths,
topics and formats, not secrets. :func:`kept_info` is the Info with every other entry removed, and
is what ``info.json`` and the FIFO records hold (the store's repair applies it
to what an older pylog wrote).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .config import parse_log_opts

#: An env key that declares a log under some prefix (a superset of the prefixes
#: PYLOG_LOG_PREFIX may name: kept_info does not depend on the settings).
DECLARING_ENV: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]*?_logs_[0-9A-Za-z_-]+")


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
    declaring = {k: v for k, v in pairs.items() if DECLARING_ENV.fullmatch(k)}
    return [f"{key}={value}" for key, value in {**selected, **declaring}.items()]


def stored_name(info: Mapping[str, Any]) -> str:
    """The container's name from its (kept) Info, without the leading ``/``; empty if
    there is none."""
    name = info.get("ContainerName")
    return name.lstrip("/") if isinstance(name, str) else ""
