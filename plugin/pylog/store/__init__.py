"""The local store: one json-file format log per container, found by container ID.

Layout under the state directory (a host mount, so it survives plugin restarts
and upgrades)::

    containers/<container id>/json.log[.N[.gz]]   the log files (see logfile)
    containers/<container id>/info.json           the container's Info, last seen, without
                                                  the env the log-opts do not select
    containers/<container id>/files/<name>/       a log file the container declared
                                                  (``pylog.logs.<name>=/path``): the same
                                                  layout as the stdout log, plus the read
                                                  positions (``files.registry``)

Everything is private to pylog: directories 0700, files 0600 (see atomic).

Several writers can share one container's log (a dockerd restart with
live-restore starts a new FIFO before the old one reaches EOF), so logs are
reference counted: the first :meth:`Store.acquire` opens the files, the last
:meth:`Store.release` closes them, which ends every follower. A declared file
log has one writer (the container's collector, ``files.collector``):
:meth:`Store.acquire_file_log` opens it, :meth:`Store.release_file_log` closes it,
and while it is open the container counts as active (never cleaned up).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..models import validate_container_id
from .atomic import private_dir, write_json
from .logfile import LogFile, RotationPolicy, StoreError

__all__ = ["INFO_FILE", "LogFile", "RotationPolicy", "Store", "StoreError"]

INFO_FILE = "info.json"
#: The directory of a container's declared file logs, one directory per log name.
FILES_DIR = "files"


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.containers_dir = root / "containers"
        self._lock = threading.Lock()
        self._open: dict[str, tuple[LogFile, int]] = {}
        self._file_logs: dict[tuple[str, str], LogFile] = {}

    def setup(self) -> None:
        """Create the state directory and ``containers/``, both private (0700)."""
        private_dir(self.root)
        private_dir(self.containers_dir)

    def directory(self, container_id: str) -> Path:
        return self.containers_dir / validate_container_id(container_id)

    def acquire(self, container_id: str, policy: RotationPolicy) -> LogFile:
        """The container's log opened for writing, shared with any other writer."""
        with self._lock:
            entry = self._open.get(container_id)
            if entry is not None:
                logfile, refs = entry
                self._open[container_id] = (logfile, refs + 1)
                return logfile
            logfile = LogFile(self.directory(container_id), policy)
            self._open[container_id] = (logfile, 1)
            return logfile

    def release(self, container_id: str) -> None:
        with self._lock:
            entry = self._open.get(container_id)
            if entry is None:
                return
            logfile, refs = entry
            if refs > 1:
                self._open[container_id] = (logfile, refs - 1)
                return
            del self._open[container_id]
        logfile.close()

    def file_log_directory(self, container_id: str, name: str) -> Path:
        """Where the declared file log ``name`` of the container is kept.

        ``name`` is a declared log's name (``[0-9A-Za-z_-]+``, checked by
        ``config.declarations``); anything else is refused here too.
        """
        if not name or not all(c.isalnum() or c in "_-" for c in name) or not name.isascii():
            raise ValueError(f"not a declared log name: {name!r}")
        return self.directory(container_id) / FILES_DIR / name

    def file_log_names(self, container_id: str) -> list[str]:
        """The declared file logs stored for the container, by name."""
        try:
            return sorted(
                p.name for p in (self.directory(container_id) / FILES_DIR).iterdir() if p.is_dir()
            )
        except (FileNotFoundError, NotADirectoryError):
            return []

    def acquire_file_log(self, container_id: str, name: str, policy: RotationPolicy) -> LogFile:
        """The declared file log opened for writing; one writer at a time (ValueError
        if it is open already)."""
        key = (container_id, name)
        with self._lock:
            if key in self._file_logs:
                raise ValueError(f"file log {name!r} of {container_id} is open already")
            logfile = LogFile(self.file_log_directory(container_id, name), policy)
            self._file_logs[key] = logfile
            return logfile

    def release_file_log(self, container_id: str, name: str) -> None:
        with self._lock:
            logfile = self._file_logs.pop((container_id, name), None)
        if logfile is not None:
            logfile.close()

    def reader(self, container_id: str, policy: RotationPolicy) -> LogFile:
        """The live log if the container is being logged, else a read-only view of its files."""
        with self._lock:
            entry = self._open.get(container_id)
        if entry is not None:
            return entry[0]
        return LogFile(self.directory(container_id), policy, writable=False)

    def is_active(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._open or any(
                cid == container_id for cid, _ in self._file_logs
            )

    def write_info(self, container_id: str, info: Mapping[str, Any]) -> None:
        """Record the container's Info atomically (also marks the container as recently used).

        The caller passes the Info as it may be kept (see :mod:`.scrub`): no env
        beyond what the log-opts select.
        """
        directory = self.directory(container_id)
        private_dir(directory)
        write_json(directory / INFO_FILE, info)

    def touch(self, container_id: str) -> None:
        path = self.directory(container_id) / INFO_FILE
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)

    def containers(self) -> list[str]:
        try:
            return sorted(p.name for p in self.containers_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def last_used(self, container_id: str) -> float:
        """Newest modification time of anything in the container's directory."""
        newest = 0.0
        directory = self.directory(container_id)
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        newest = max(newest, entry.stat().st_mtime)
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            return 0.0
        return newest

    def remove_unused(self, retention_seconds: float, now: float | None = None) -> list[str]:
        """Delete the logs of containers not logged to or read for ``retention_seconds``.

        Containers being logged are never touched. Returns the IDs removed.
        """
        if retention_seconds <= 0:
            return []
        now = time.time() if now is None else now
        removed: list[str] = []
        for container_id in self.containers():
            if self.is_active(container_id):
                continue
            if now - self.last_used(container_id) < retention_seconds:
                continue
            with self._lock:
                if container_id in self._open or any(c == container_id for c, _ in self._file_logs):
                    continue
                shutil.rmtree(self.directory(container_id), ignore_errors=True)
            removed.append(container_id)
        return removed
