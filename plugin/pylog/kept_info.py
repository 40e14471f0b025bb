"""What pylog keeps at rest of a container's Info.

dockerd's Info carries the container's whole environment, passwords included.
pylog needs only the env entries the container's ``env``/``env-regex``
log-opts select: they go into each record's ``attrs`` and Kafka ``env``, and
are all that reattaching or resuming a backlog reads back (json-file keeps no
env at all). :func:`kept_info` is the Info with every other entry removed, and
is what ``info.json`` and the FIFO records hold (the store's repair applies it
to what an older pylog wrote).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import parse_log_opts


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
