"""One declared file log of a container: its files followed, their lines stored.

A :class:`FileLog` is what ``pylog.logs.<name>=/path/glob`` becomes once the
container's root is open: a :class:`~.tail.FileFollower` per file the glob
matches, a :class:`~pylog.store.LogFile` the lines go to (json-file records,
as the stdout log's) and a :class:`~.registry.Registry` of how far each file
was read, both in ``containers/<id>/files/<name>/``.

It owns nothing of its own thread: the container's collector
(:mod:`.collector`) calls :meth:`FileLog.scan` (the glob again, every few
seconds), :meth:`FileLog.collect` (one bounded round over the files) and
:meth:`FileLog.finish` or :meth:`FileLog.halt` at the end, all from its one
thread. :meth:`FileLog.counters` may be read from another (plain ints).

Order of the writes (at least once, nothing lost): a round's lines are
appended to the log first and only then are their files' offsets put in the
registry, which is saved after the round. A crash between the two reads those
lines again after the restart; never the other way round.

Each record is a json-file record of stream ``stdout``, timed when it was
read, with the path inside the container in its ``attrs`` (``{"path": ...}``)
so a reader can tell which file a line came from. A piece of a line longer
than 16 KiB is stored as dockerd stores a chunk of a long stdout line: without
the trailing ``\\n``, so the shipper's assembler joins the pieces the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Declaration
from ..models import STDOUT, EntryBatch
from ..store import LogFile, StoreError
from ..store.records import RecordEncoder
from .identity import FileIdentity, FilePosition
from .openat2 import NotRegular, open_regular_in_root
from .registry import Registry
from .rootglob import glob_in_root
from .tail import FileFollower, NotARegularFile, TailLine

log = logging.getLogger(__name__)

#: Most files followed per declared log; matches past it are counted and warned about.
MAX_FILES = 1024
#: Most bytes read from one file per round, so one busy file cannot starve the others.
ROUND_READ = 256 * 1024


@dataclass
class FileLogStats:
    """Counters of one declared log (one writer: the collector's thread)."""

    lines: int = 0
    """Lines (and pieces of long lines) stored."""
    bytes: int = 0
    """Bytes of those lines, as read (without newlines)."""
    lines_dropped_store: int = 0
    """Lines read but refused by the store (disk full)."""
    files_open: int = 0
    truncations: int = 0
    """Files seen shorter than what was read of them (copytruncate)."""
    rotations: int = 0
    """Paths seen naming a new file (rename and create)."""
    skipped: dict[str, int] = field(default_factory=lambda: {"not_regular": 0, "cap": 0})
    """Matches of the last glob not followed: ``not_regular`` (FIFO, device, socket,
    directory, or not openable) and ``cap`` (past :data:`MAX_FILES`)."""


@dataclass
class _Followed:
    follower: FileFollower
    encoder: RecordEncoder
    truncations: int = 0
    rotations: int = 0


class FileLog:
    """The files of one declared log, followed into its own log (see module doc)."""

    def __init__(
        self,
        declaration: Declaration,
        root_fd: int,
        logfile: LogFile,
        registry: Registry,
        *,
        short_id: str,
        max_files: int = MAX_FILES,
        round_read: int = ROUND_READ,
        clock: Callable[[], int] = time.time_ns,
        stats: FileLogStats | None = None,
    ) -> None:
        if declaration.path is None:
            raise ValueError(f"{declaration.name} is not a file log")
        self.declaration = declaration
        self.name = declaration.name
        self.pattern = declaration.path
        self.logfile = logfile
        self.registry = registry
        self.stats = FileLogStats() if stats is None else stats
        self._root_fd = root_fd
        self._short_id = short_id
        self._max_files = max_files
        self._round_read = round_read
        self._clock = clock
        self._followed: dict[str, _Followed] = {}
        self._warned: set[str] = set()
        self._capped_warned = False
        self._store_failing = False

    # -- the glob ----------------------------------------------------------------

    def _open(self, path: str) -> int:
        """The followers' opener: the path resolved inside the container's root."""
        try:
            fd, _ = open_regular_in_root(self._root_fd, path)
        except NotRegular as exc:
            raise NotARegularFile(0, f"not a regular file ({exc.kind})", path) from None
        return fd

    def scan(self) -> None:
        """Evaluate the glob again: follow the files that newly match it.

        A new path whose file is already followed under another path (the
        rotated name of a file still being read to its end) is left for a later
        scan; a file the registry knows is resumed where it was stored up to.
        """
        busy = self._identities()
        with glob_in_root(self._root_fd, self.pattern, self._max_files) as result:
            matched: set[FileIdentity] = set()
            for match in result.files:
                identity = FileIdentity.of(match.stat)
                matched.add(identity)
                if match.path in self._followed or identity in busy:
                    continue
                offset = self.registry.offset(identity)
                start = None if offset is None else FilePosition(identity, offset)
                follower = FileFollower(match.path, self._open, start, read_size=self._round_read)
                self._followed[match.path] = _Followed(follower, self._encoder(match.path))
                busy.add(identity)
            skipped, more = result.skipped, result.more
        for item in skipped:
            if item.path not in self._warned:
                self._warned.add(item.path)
                log.warning(
                    "container %s: log %s: skipping %s: %s",
                    self._short_id,
                    self.name,
                    item.path,
                    item.reason,
                )
        if more and not self._capped_warned:
            self._capped_warned = True
            log.warning(
                "container %s: log %s: %s matches more than %d files; %d are not followed",
                self._short_id,
                self.name,
                self.pattern,
                self._max_files,
                more,
            )
        self.stats.skipped = {"not_regular": len(skipped), "cap": more}
        # Positions of files neither followed nor matched any more are dropped
        # (renamed out of the glob, deleted): the registry stays small.
        self.registry.keep_only(matched | self._identities())
        self.stats.files_open = len(self._followed)

    @property
    def following(self) -> int:
        """Files followed now."""
        return len(self._followed)

    def _identities(self) -> set[FileIdentity]:
        found: set[FileIdentity] = set()
        for followed in self._followed.values():
            position = followed.follower.position
            if position is not None:
                found.add(position.identity)
        return found

    def _encoder(self, path: str) -> RecordEncoder:
        return RecordEncoder({"path": path})

    # -- reading -----------------------------------------------------------------

    def collect(self) -> bool:
        """One round: at most ``round_read`` bytes of each file, stored. Whether any
        file has more to read now (the caller goes round again at once)."""
        more = False
        for path, followed in list(self._followed.items()):
            follower = followed.follower
            self._store(followed, follower.poll())
            self._count(followed)
            if follower.ended:  # only deletion ends a follower that is polled
                self._drop(path, followed, deleted=True)
            elif not follower.caught_up and follower.error is None:
                more = True
        self._save(durable=False)
        return more

    def finish(self) -> None:
        """The container exited: every file read to its end, its last line without a
        newline taken, the followers closed, the registry saved."""
        while self.collect():
            pass
        for path, followed in list(self._followed.items()):
            self._store(followed, followed.follower.close())
            self._count(followed)
            self._drop(path, followed, deleted=False)
        self._save(durable=True)

    def halt(self) -> None:
        """pylog is stopping, the container is not: save where each file was read up
        to, and close the files without taking unfinished lines (the next pylog
        reads them whole)."""
        for followed in self._followed.values():
            follower = followed.follower
            position = follower.position
            follower.close()  # its held bytes are after `position`: read again later
            if position is not None:
                self.registry.update(follower.path, position)
        self._followed.clear()
        self.stats.files_open = 0
        self._save(durable=True)

    def _drop(self, path: str, followed: _Followed, *, deleted: bool) -> None:
        """Stop following ``path``. The position of a file deleted and read to its
        end is forgotten; one closed at the container's exit is kept, for a
        ``docker restart`` to continue from."""
        del self._followed[path]
        position = followed.follower.position
        if deleted and position is not None:
            self.registry.forget(position.identity)
        self.stats.files_open = len(self._followed)

    def _count(self, followed: _Followed) -> None:
        follower = followed.follower
        self.stats.truncations += follower.truncations - followed.truncations
        self.stats.rotations += follower.rotations - followed.rotations
        followed.truncations, followed.rotations = follower.truncations, follower.rotations

    def _store(self, followed: _Followed, lines: list[TailLine]) -> None:
        if not lines:
            return
        now = self._clock()
        batch = EntryBatch(
            lines=[line.data for line in lines],
            times=[now] * len(lines),
            sources=STDOUT,
            incomplete=frozenset(i for i, line in enumerate(lines) if line.partial),
        )
        records = followed.encoder.encode_batch(batch)
        stats = self.stats
        try:
            self.logfile.append(records)
        except StoreError as exc:
            stats.lines_dropped_store += len(lines)
            if not self._store_failing:
                self._store_failing = True
                log.error(
                    "container %s: log %s: cannot store lines, dropping until the store "
                    "recovers: %s",
                    self._short_id,
                    self.name,
                    exc,
                )
            return
        self._store_failing = False
        stats.lines += len(lines)
        stats.bytes += sum(len(line.data) for line in lines)
        # The last line of each file read this round: stored, so safe up to there.
        last: dict[FileIdentity, int] = {}
        for line in lines:
            last[line.identity] = line.offset
        path = followed.follower.path
        for identity, offset in last.items():
            self.registry.update(path, FilePosition(identity, offset))

    def _save(self, *, durable: bool) -> None:
        try:
            self.registry.save(durable=durable)
        except OSError as exc:
            log.warning(
                "container %s: log %s: cannot save read positions: %s",
                self._short_id,
                self.name,
                exc,
            )
