"""Read positions of a container's log files, kept across restarts of pylog.

``files.registry`` in the container's directory holds, per file identity
(device, inode: :mod:`.identity`), the path it was last followed at and the
offset up to which its lines are safe::

    {"version": 1, "files": [{"path": "/var/log/app.log", "dev": 2049, "inode": 12, "offset": 56}]}

The owner stores a line's offset once the line itself is stored, and the
registry is replaced with the store's atomic write, so after a crash it is
never ahead of the log: a restart resumes at the stored offsets and reads
again, at worst, lines stored after the last save (at least once, nothing
lost).

A registry that cannot be read or holds anything else is warned about and
taken as empty: every file is then read from 0, which duplicates lines but
loses none. A stored identity whose file is now shorter than its offset is a
truncated file or a reused inode; the follower reads it from 0
(``tail.FileFollower``).

Entries of files gone for good (deleted and read to their end, or no longer
declared) are dropped by the owner, with :meth:`Registry.forget` or
:meth:`Registry.keep_only`, so the registry stays small and a reused inode
rarely meets an old offset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

from ..store.atomic import write_atomic
from .identity import FileIdentity, FilePosition

log = logging.getLogger(__name__)

REGISTRY_FILE = "files.registry"
#: Version of the format; a registry of another version is not understood (empty).
VERSION = 1


class RegistryEntry(NamedTuple):
    path: str
    offset: int


class RegistryError(ValueError):
    """The registry file holds no registry."""


class Registry:
    """The read positions of one container's files (see module doc)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / REGISTRY_FILE
        self._entries: dict[FileIdentity, RegistryEntry] = {}
        self._dirty = False

    @classmethod
    def load(cls, directory: Path) -> Registry:
        """The registry stored in ``directory``; empty (and warned about) if it is unreadable."""
        reg = cls(directory)
        try:
            text = reg.path.read_bytes()
        except FileNotFoundError:
            return reg
        except OSError as exc:
            log.warning("cannot read %s, reading every file from its start: %s", reg.path, exc)
            return reg
        try:
            reg._entries = _parse(text)
        except (ValueError, RecursionError) as exc:
            log.warning("%s is corrupt, reading every file from its start: %s", reg.path, exc)
            reg._dirty = True  # replaced at the next save
        return reg

    # -- reading -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[FileIdentity, RegistryEntry]]:
        return iter(list(self._entries.items()))

    def offset(self, identity: FileIdentity) -> int | None:
        entry = self._entries.get(identity)
        return None if entry is None else entry.offset

    def start_for(self, path: str) -> FilePosition | None:
        """Where to resume the file last followed at ``path`` (the entry updated last)."""
        found: FilePosition | None = None
        for identity, entry in self._entries.items():
            if entry.path == path:
                found = FilePosition(identity, entry.offset)
        return found

    # -- changing ------------------------------------------------------------------

    def update(self, path: str, position: FilePosition) -> None:
        """``position.identity``, followed at ``path``, is safe up to ``position.offset``."""
        identity, offset = position
        entry = RegistryEntry(path, offset)
        if self._entries.get(identity) != entry:
            # Re-inserted: the order of the entries is the order of their updates.
            self._entries.pop(identity, None)
            self._entries[identity] = entry
            self._dirty = True

    def forget(self, identity: FileIdentity) -> None:
        if self._entries.pop(identity, None) is not None:
            self._dirty = True

    def keep_only(self, identities: Collection[FileIdentity]) -> None:
        """Drop the entries of every file not in ``identities`` (gone for good)."""
        for identity in [i for i in self._entries if i not in identities]:
            self.forget(identity)

    def save(self, *, durable: bool = True) -> bool:
        """Write the registry if it changed since it was loaded or saved; whether it was written."""
        if not self._dirty:
            return False
        files = [
            {"path": e.path, "dev": i.dev, "inode": i.inode, "offset": e.offset}
            for i, e in self._entries.items()
        ]
        data = json.dumps({"version": VERSION, "files": files}).encode() + b"\n"
        write_atomic(self.path, data, durable=durable)
        self._dirty = False
        return True


def _parse(text: bytes) -> dict[FileIdentity, RegistryEntry]:
    obj = json.loads(text)
    if not isinstance(obj, dict) or obj.get("version") != VERSION:
        raise RegistryError(f"not a version {VERSION} registry: {text[:100]!r}")
    files = obj.get("files")
    if not isinstance(files, list):
        raise RegistryError("no list of files")
    entries: dict[FileIdentity, RegistryEntry] = {}
    for item in files:
        identity, entry = _parse_entry(item)
        if identity in entries:
            raise RegistryError(f"two entries for {identity}")
        entries[identity] = entry
    return entries


def _parse_entry(item: Any) -> tuple[FileIdentity, RegistryEntry]:
    if not isinstance(item, dict):
        raise RegistryError(f"an entry is not an object: {item!r}"[:200])
    path, dev, inode, offset = (item.get(k) for k in ("path", "dev", "inode", "offset"))
    if not isinstance(path, str) or not path:
        raise RegistryError(f"an entry has no path: {item!r}"[:200])
    if not (_count(dev) and _count(inode) and _count(offset)):
        raise RegistryError(f"an entry has no dev, inode and offset: {item!r}"[:200])
    return FileIdentity(dev, inode), RegistryEntry(path, offset)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
