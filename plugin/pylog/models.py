"""Plain data passed between the layers: container info, read requests, entries.

These mirror the JSON dockerd sends (Go field names, see
docs/logdriver-protocol.md) but are validated on the way in, so nothing
below the API layer handles raw request dictionaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .timefmt import parse_go_time

#: A container ID is used as a directory name: allow Docker's 64-hex IDs and
#: anything equally harmless, never a path separator or a leading dot. Matched
#: with ``fullmatch``: ``$`` alone also matches before a final newline.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

STDOUT = "stdout"
STDERR = "stderr"


class RequestError(ValueError):
    """A request from dockerd that pylog cannot accept; the message goes back in ``Err``."""


class BusyError(RequestError):
    """A request refused for want of a resource (reader slots, file descriptors), not
    for what it asks: the same request can succeed later."""


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(f"{key} must be a string")
    return value


def _str_map(obj: dict[str, Any], key: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise RequestError(f"{key} must be a map of strings")
    return dict(value)


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{key} must be a list of strings")
    return list(value)


def validate_container_id(container_id: str) -> str:
    if not _CONTAINER_ID.fullmatch(container_id) or ".." in container_id:
        raise RequestError(f"invalid ContainerID {container_id!r}")
    return container_id


@dataclass(frozen=True)
class ContainerInfo:
    """dockerd's ``logger.Info`` for one container."""

    container_id: str
    config: dict[str, str] = field(default_factory=dict)
    container_name: str = ""
    container_entrypoint: str = ""
    container_args: list[str] = field(default_factory=list)
    container_image_id: str = ""
    container_image_name: str = ""
    container_created: str = ""
    container_env: list[str] = field(default_factory=list)
    container_labels: dict[str, str] = field(default_factory=dict)
    daemon_name: str = ""

    @classmethod
    def from_json(cls, obj: Any) -> ContainerInfo:
        if not isinstance(obj, dict):
            raise RequestError("Info must be an object")
        return cls(
            container_id=validate_container_id(_str(obj, "ContainerID")),
            config=_str_map(obj, "Config"),
            container_name=_str(obj, "ContainerName"),
            container_entrypoint=_str(obj, "ContainerEntrypoint"),
            container_args=_str_list(obj, "ContainerArgs"),
            container_image_id=_str(obj, "ContainerImageID"),
            container_image_name=_str(obj, "ContainerImageName"),
            container_created=_str(obj, "ContainerCreated"),
            container_env=_str_list(obj, "ContainerEnv"),
            container_labels=_str_map(obj, "ContainerLabels"),
            daemon_name=_str(obj, "DaemonName"),
        )

    def to_json(self) -> dict[str, Any]:
        """The inverse of :meth:`from_json` (Go field names)."""
        return {
            "ContainerID": self.container_id,
            "Config": self.config,
            "ContainerName": self.container_name,
            "ContainerEntrypoint": self.container_entrypoint,
            "ContainerArgs": self.container_args,
            "ContainerImageID": self.container_image_id,
            "ContainerImageName": self.container_image_name,
            "ContainerCreated": self.container_created,
            "ContainerEnv": self.container_env,
            "ContainerLabels": self.container_labels,
            "DaemonName": self.daemon_name,
        }

    @property
    def name(self) -> str:
        """The container name without dockerd's leading ``/``."""
        return self.container_name.removeprefix("/")

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def image_short_id(self) -> str:
        return self.container_image_id.removeprefix("sha256:")[:12]

    @property
    def env(self) -> dict[str, str]:
        """``ContainerEnv`` as a map; entries without ``=`` are ignored, as dockerd does."""
        out: dict[str, str] = {}
        for item in self.container_env:
            key, sep, value = item.partition("=")
            if sep:
                out[key] = value
        return out


@dataclass(frozen=True)
class ReadConfig:
    """``logger.ReadConfig`` of a ReadLogs request; times in Unix nanoseconds."""

    since_ns: int | None = None
    until_ns: int | None = None
    tail: int = -1
    follow: bool = False

    @classmethod
    def from_json(cls, obj: Any) -> ReadConfig:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise RequestError("Config must be an object")
        try:
            since = parse_go_time(obj.get("Since"))
            until = parse_go_time(obj.get("Until"))
        except (TypeError, ValueError) as exc:
            raise RequestError(f"bad Since/Until: {exc}") from None
        tail = obj.get("Tail", -1)
        follow = obj.get("Follow", False)
        if not isinstance(tail, int) or isinstance(tail, bool):
            raise RequestError("Tail must be an integer")
        if not isinstance(follow, bool):
            raise RequestError("Follow must be a boolean")
        return cls(since_ns=since, until_ns=until, tail=tail, follow=follow)


class Entry(NamedTuple):
    """One decoded ``LogEntry``: a line or a 16 KiB chunk of one.

    ``complete`` is false for every chunk of a split line but the last, and for
    a final line the container wrote without a newline. (A tuple: millions are
    made per second on the ingest path.)
    """

    source: str
    time_ns: int
    line: bytes
    complete: bool = True


@dataclass(slots=True)
class EntryBatch:
    """Entries decoded from one read of a FIFO, held by column.

    The ingest path handles lists, not one object per line: ``sources`` is a
    single string when every entry came from that stream (the common case), and
    ``incomplete`` holds the indexes of the entries that are not whole lines.
    """

    lines: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    sources: str | list[str] = STDOUT
    incomplete: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.lines)

    def source_of(self, index: int) -> str:
        sources = self.sources
        return sources if isinstance(sources, str) else sources[index]

    def entries(self) -> list[Entry]:
        incomplete = self.incomplete
        return [
            Entry(self.source_of(i), t, line, i not in incomplete)
            for i, (line, t) in enumerate(zip(self.lines, self.times, strict=True))
        ]

    @classmethod
    def of(cls, entries: list[Entry]) -> EntryBatch:
        """A batch holding ``entries`` (slow path and tests)."""
        sources = [e.source for e in entries]
        uniform = len(set(sources)) == 1
        return cls(
            lines=[e.line for e in entries],
            times=[e.time_ns for e in entries],
            sources=sources[0] if uniform else sources,
            incomplete=frozenset(i for i, e in enumerate(entries) if not e.complete),
        )
