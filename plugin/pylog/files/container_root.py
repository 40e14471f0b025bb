"""Finding a container's main process on the host and opening the container's root.

dockerd does not tell a logging driver a container's pid, but the container's
cgroup path names its ID, in one of two forms depending on the cgroup driver:

- cgroupfs: ``/docker/<id>`` (``12:pids:/docker/<id>`` on cgroup v1,
  ``0::/docker/<id>`` on v2);
- systemd: ``docker-<id>.scope`` (``0::/system.slice/docker-<id>.scope``).

So the pid is found by reading ``/proc/<pid>/cgroup`` of every process (pylog
runs in the host's pid namespace for this). The match is on whole path
components, so it also holds below the container's cgroup (a container that
makes cgroups of its own) and when the path is shown relative to a cgroup
namespace (``/../docker-<id>.scope``). The main process is the one whose
parent is not in the container (the container's other processes are its
descendants), the first started if there are several (``docker exec``
processes are children of the shim, outside the container, too).

The root is kept as a directory fd on ``/proc/<pid>/root``, with the
container's mount namespace (see :class:`ContainerRoot`): both stay usable
after the container's processes exit, as long as they are open, so its files
can still be found and read to their end after it stopped. They are opened
through an fd on ``/proc/<pid>`` and the process's cgroup is checked again
through that same fd afterwards: a pid reused between the scan and the open (the container
exited, another process got its pid) is then noticed, not opened.

A process in the container's cgroup does not have the container's root yet
while runc sets it up. Seen on Docker 20.10 (runc 1.1): dockerd sends
StartLogging, then ``runc:[2:INIT]`` joins the cgroup and a new mount
namespace *with the host's root*, mounts the rootfs and volumes, then
``pivot_root``s; only then is its root the container's, the one it keeps
through ``execve`` of the entrypoint (it waits for ``runc start`` in
between). Keeping the root of a process seen before the pivot would resolve
the container's paths in the host's filesystem. :func:`open_final_root`
therefore only takes a root that differs from the root of the process's
parent (runc, then the shim: both in the host's root), and otherwise raises
:class:`RootNotReady`, to be tried again a moment later.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")

#: Bytes read of a ``/proc/<pid>/cgroup`` file: one read is enough for the
#: kernel to produce the whole file (seq_file), and the longest real ones, v1
#: with a dozen hierarchies under long Kubernetes paths, are a few KiB.
CGROUP_READ = 64 * 1024


class ContainerNotFound(LookupError):
    """No process on the host is in the container's cgroup."""


class RootNotReady(ContainerNotFound):
    """The container's process is there but runc has not switched it to the container's
    root yet (see module doc): try again."""


def _check_id(container_id: str) -> str:
    if not _CONTAINER_ID.fullmatch(container_id):
        raise ValueError(f"not a full container ID (64 hex digits): {container_id!r}")
    return container_id


def cgroup_path(line: str) -> str:
    """The path of one ``/proc/<pid>/cgroup`` line (``hierarchy:controllers:path``).

    The path itself may contain colons, so only the first two split.
    """
    parts = line.split(":", 2)
    return parts[2] if len(parts) == 3 else ""


def path_names_container(path: str, container_id: str) -> bool:
    """Whether a cgroup path is the container's, or below it, in either form."""
    parts = path.split("/")
    scope = f"docker-{container_id}.scope"
    for i, part in enumerate(parts):
        if part == scope:
            return True
        if part == container_id and i > 0 and parts[i - 1] == "docker":
            return True
    return False


def in_container(cgroup_text: str, container_id: str) -> bool:
    """Whether the contents of a ``/proc/<pid>/cgroup`` file put it in the container.

    Any line counts: with cgroup v1 and v2 mounted side by side (hybrid), the
    ID shows in every hierarchy's line.
    """
    return any(
        path_names_container(cgroup_path(line), container_id) for line in cgroup_text.splitlines()
    )


def _read_small(path: str, dir_fd: int | None = None) -> bytes | None:
    """The file's first :data:`CGROUP_READ` bytes, or None if it (or its process) is gone."""
    try:
        fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    except OSError:  # ENOENT, ESRCH: the process exited; EACCES: not ours to read
        return None
    try:
        return os.read(fd, CGROUP_READ)
    except OSError:
        return None
    finally:
        os.close(fd)


def _pids(proc: str) -> Iterable[int]:
    with os.scandir(proc) as it:
        for entry in it:
            if entry.name.isdigit():
                yield int(entry.name)


def container_pids(container_id: str, proc: str = "/proc") -> list[int]:
    """Every process in the container's cgroup, in no particular order.

    One ``open``/``read``/``close`` per process; the ID is looked for in the
    raw bytes first, and only a file that holds it is parsed. Processes that
    exit during the scan are skipped.
    """
    _check_id(container_id)
    needle = container_id.encode("ascii")
    found: list[int] = []
    for pid in _pids(proc):
        data = _read_small(f"{proc}/{pid}/cgroup")
        if data is None or needle not in data:
            continue
        if in_container(data.decode("utf-8", "surrogateescape"), container_id):
            found.append(pid)
    return found


def parent_and_start(pid: int, proc: str = "/proc") -> tuple[int, int] | None:
    """The pid's parent and start time (clock ticks after boot), from ``/proc/<pid>/stat``;
    None if it is gone.

    The fields after the command name, which may hold spaces and parentheses,
    start after its last ``)``: ``state ppid ...``, the start time 20th.
    """
    data = _read_small(f"{proc}/{pid}/stat")
    if data is None:
        return None
    fields = data[data.rfind(b")") + 1 :].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def main_pid(pids: Iterable[int], proc: str = "/proc") -> int | None:
    """Of a container's pids, the one whose parent is outside the container.

    ``docker exec`` processes are children of the shim too, so of several
    such processes the one started first (then the lowest pid) is the main
    one. None if none could be read (all exited).
    """
    members = set(pids)
    outside: list[tuple[int, int]] = []
    for pid in members:
        info = parent_and_start(pid, proc)
        if info is not None and info[0] not in members:
            outside.append((info[1], pid))
    return min(outside)[1] if outside else None


def find_container_pid(container_id: str, proc: str = "/proc") -> int | None:
    """The host pid of the container's main process, or None if it has none running."""
    return main_pid(container_pids(container_id, proc), proc)


class ContainerRoot:
    """A container's root directory, held open: ``fd`` is what :mod:`.openat2` opens in.

    It also holds the container's mount namespace (an fd on
    ``/proc/<pid>/ns/mnt``). The root fd alone keeps the root mount, but once
    the container's last process exits the kernel takes down the namespace's
    other mounts (volumes, tmpfs), and paths under them then resolve to the
    empty directories beneath. Holding the namespace keeps them mounted, so a
    glob evaluated after the exit still finds the files. The price: they stay
    mounted (a tmpfs keeps its memory) until :meth:`close`.
    """

    def __init__(self, fd: int, mount_ns_fd: int) -> None:
        self.fd = fd
        self.mount_ns_fd = mount_ns_fd

    def close(self) -> None:
        for fd in (self.fd, self.mount_ns_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.mount_ns_fd = -1

    def __enter__(self) -> ContainerRoot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_root_of(pid: int, container_id: str, proc: str = "/proc") -> ContainerRoot:
    """The root (and mount namespace) of ``pid``, checked to be the container's.

    Raises :class:`ContainerNotFound` if the process is gone or is no longer
    (or never was) in the container.
    """
    _check_id(container_id)
    gone = f"process {pid} of container {container_id} exited"
    try:
        pid_fd = os.open(f"{proc}/{pid}", os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError as e:
        raise ContainerNotFound(gone) from e
    fds: list[int] = []
    try:
        fds.append(os.open("root", os.O_PATH | os.O_DIRECTORY, dir_fd=pid_fd))
        fds.append(os.open("ns/mnt", os.O_RDONLY, dir_fd=pid_fd))
        data = _read_small("cgroup", dir_fd=pid_fd)
        if data is None or not in_container(data.decode("utf-8", "surrogateescape"), container_id):
            raise ContainerNotFound(f"process {pid} is not in container {container_id}")
        root = ContainerRoot(fds[0], fds[1])
        fds.clear()
        return root
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ContainerNotFound(gone) from e
    finally:
        for fd in fds:
            os.close(fd)
        os.close(pid_fd)


def open_container_root(container_id: str, proc: str = "/proc") -> ContainerRoot:
    """Find the container's main process and open its root (see :func:`open_root_of`).

    Tries again if the process found exits before its root is open (the
    container's init was replaced by another of its processes). Raises
    :class:`ContainerNotFound` when no process of the container is running.
    """
    for _ in range(3):
        pid = find_container_pid(container_id, proc)
        if pid is None:
            break
        with contextlib.suppress(ContainerNotFound):
            return open_root_of(pid, container_id, proc)
    raise ContainerNotFound(f"no running process of container {container_id}")


def _root_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone, or not ours to look at
        return None
    return st.st_dev, st.st_ino


def open_final_root(container_id: str, proc: str = "/proc") -> ContainerRoot:
    """:func:`open_container_root`, once the process's root is the container's own.

    The root opened is compared with the root of the process's parent (runc or
    the shim, outside the container): the same root means runc has not pivoted
    into the container's yet, and :class:`RootNotReady` is raised (so is it when
    the parent's root cannot be looked at, as a parent exiting right then). The
    root itself is checked through the fd kept, so it cannot change after the
    check.
    """
    pid = find_container_pid(container_id, proc)
    if pid is None:
        raise ContainerNotFound(f"no running process of container {container_id}")
    info = parent_and_start(pid, proc)
    parent_root = None if info is None else _root_identity(f"{proc}/{info[0]}/root")
    root = open_root_of(pid, container_id, proc)
    try:
        st = os.fstat(root.fd)
    except BaseException:
        root.close()
        raise
    if parent_root is None or parent_root == (st.st_dev, st.st_ino):
        root.close()
        raise RootNotReady(f"container {container_id} is not in its own root yet")
    return root
