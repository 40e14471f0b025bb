"""Expanding a declared glob inside a container's root, and opening what it matches.

The pattern is absolute, as the container sees its files
(``/usr/local/tomcat/logs/localhost_access_log.*.txt``). It is expanded one
component at a time: a directory is listed only when its component has
wildcards, and it is opened with :func:`.openat2.open_in_root` from the
container's root, by its path inside the container. No host path is ever
built, so a symlink anywhere in the pattern resolves as the container sees it.

Wildcards, per component, as ``fnmatch``: ``*``, ``?``, ``[...]`` (and
``[!...]``). As in a shell, a name starting with ``.`` is matched only by a
component that starts with ``.`` too. ``**`` is *not* recursive: it is the
same as ``*``, one component. A recursive walk of a tree the container
controls would cost pylog whatever the container chooses to make it cost, and
log-pilot's declarations do not use it.

Every match is opened as :func:`.openat2.open_regular_in_root` opens it:
anything that is not a regular file (FIFO, socket, device, directory) is
reported as skipped, with the reason, and never blocks. The matches are
sorted by path and at most ``limit`` files are opened; the rest are counted,
not opened, so the caller can warn. The same file reached by two paths (a
symlink, ``..``) is opened once, under the first path. The cap bounds the
descriptors, not the listing: a directory with a million entries is still
listed whole (names only) to find and sort the matches.
"""

from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

from .openat2 import NotRegular, open_in_root, open_regular_in_root

_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class Match:
    """A regular file the glob matched: its path inside the container, open for reading."""

    path: str
    fd: int
    stat: os.stat_result


@dataclass(frozen=True)
class Skipped:
    """A path the glob matched that is not read, and why."""

    path: str
    reason: str


@dataclass
class GlobResult:
    """The files opened (the caller owns their fds), the paths skipped, and how many
    more matched than ``limit`` allowed to open."""

    files: list[Match] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    more: int = 0

    def close(self) -> None:
        """Close every file's descriptor (those the caller did not take)."""
        for match in self.files:
            os.close(match.fd)
        self.files.clear()

    def __enter__(self) -> GlobResult:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def has_magic(component: str) -> bool:
    return not _MAGIC.isdisjoint(component)


def component_matches(name: str, pattern: str) -> bool:
    """``fnmatch`` of one name, except that a leading ``.`` must be matched literally."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _list_dir(root_fd: int, path: str) -> list[str]:
    """The names in a directory inside the root; empty if it is not one or is gone."""
    try:
        # O_DIRECTORY: a FIFO (or device) in a directory's place fails (ENOTDIR)
        # before anything is opened, so it cannot block.
        fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return []
    try:
        return os.listdir(fd)
    except OSError:
        return []
    finally:
        os.close(fd)


def _expand(root_fd: int, prefix: str, parts: list[str]) -> Iterator[str]:
    if not parts:
        yield prefix or "/"
        return
    head, rest = parts[0], parts[1:]
    if not has_magic(head):
        yield from _expand(root_fd, f"{prefix}/{head}", rest)
        return
    for name in _list_dir(root_fd, prefix or "/"):
        if component_matches(name, head):
            yield from _expand(root_fd, f"{prefix}/{name}", rest)


def expand(root_fd: int, pattern: str) -> list[str]:
    """The paths inside the root that ``pattern`` names, sorted; not checked to exist
    where the pattern has no wildcards."""
    if not pattern.startswith("/"):
        raise ValueError(f"not an absolute path: {pattern!r}")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    return sorted(_expand(root_fd, "", parts))


def glob_in_root(root_fd: int, pattern: str, limit: int) -> GlobResult:
    """Expand ``pattern`` inside the root and open up to ``limit`` regular files.

    A path that does not exist (a name without wildcards, a dangling symlink,
    a file removed since the listing) is no match. One that cannot be opened
    for another reason (a magic link: ``ELOOP``; permissions) is skipped with
    the error as the reason.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative: {limit}")
    result = GlobResult()
    seen: set[tuple[int, int]] = set()
    paths = expand(root_fd, pattern)
    try:
        for i, path in enumerate(paths):
            if len(result.files) >= limit:
                result.more = len(paths) - i
                break
            try:
                fd, st = open_regular_in_root(root_fd, path)
            except NotRegular as e:
                result.skipped.append(Skipped(path, e.kind))
                continue
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    name = errno.errorcode.get(e.errno or 0, str(e.errno))
                    result.skipped.append(Skipped(path, f"{name}: {e.strerror}"))
                continue
            if (st.st_dev, st.st_ino) in seen:
                os.close(fd)
                continue
            seen.add((st.st_dev, st.st_ino))
            result.files.append(Match(path, fd, st))
    except BaseException:
        result.close()
        raise
    return result
