"""Opening a path inside a container's root as the container itself would resolve it.

A container's declared log path is read through the container's root directory
(an fd on ``/proc/<pid>/root``, see :mod:`.container_root`). Joining the path
onto that directory as a host path would let the container point pylog
anywhere: a symlink ``/var/log/app.log -> /etc/shadow`` would be followed
through pylog's root, ``..`` would climb out, and ``/proc/self/root`` inside the
container would hand over pylog's own root. So every path is resolved by the
kernel with ``openat2(2)`` and

- ``RESOLVE_IN_ROOT``: the directory fd is the root of the lookup. Absolute
  symlinks restart there and ``..`` stops there, as in a chroot, so symlinks
  and ``..`` resolve exactly as the container sees them;
- ``RESOLVE_NO_MAGICLINKS``: procfs's magic links (``/proc/<pid>/root``,
  ``/proc/<pid>/cwd``, ``/proc/<pid>/fd/<n>``) are refused (``ELOOP``). Those
  are not resolved by name but jump to whatever the process has open, which no
  root confines. ``RESOLVE_IN_ROOT`` alone refuses them too today (``EXDEV``),
  but the man page says that may change, so they are refused explicitly.

There is no fallback: where openat2 does not exist (a kernel before 5.6, or a
seccomp profile that answers ``ENOSYS``) :class:`Openat2Unavailable` is raised
and nothing is opened. A user-space walk of the path would race the container
renaming things under it.

Python has no binding for openat2, so it is called through ``syscall(2)``; its
number, 437, is the same on every architecture Linux has added it to.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

#: openat2(2)'s syscall number (x86_64, arm64 and the other asm-generic tables).
SYS_OPENAT2 = 437

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

#: How every path inside a container's root is resolved.
IN_CONTAINER = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS

#: Times a lookup is retried when the kernel answers ``EAGAIN``: with
#: ``RESOLVE_IN_ROOT`` it does so when a rename ran during the lookup and it
#: cannot prove that a ``..`` stayed inside the root.
EAGAIN_RETRIES = 16


class Openat2Unavailable(OSError):
    """The kernel (or a seccomp filter) has no openat2: paths cannot be opened safely."""


class _OpenHow(ctypes.Structure):
    # struct open_how { __u64 flags; __u64 mode; __u64 resolve; }
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """``openat2(dir_fd, path, {flags | O_CLOEXEC, mode, resolve})``; raises OSError.

    The descriptor is close-on-exec, as Python's own ``os.open`` makes them.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    if b"\0" in raw:  # C would stop at it and open a shorter path
        raise ValueError(f"embedded null byte in path {path!r}")
    for _ in range(EAGAIN_RETRIES):
        fd = _syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EAGAIN:
            continue
        if err == errno.ENOSYS:
            raise Openat2Unavailable(
                err,
                "openat2(2) is not available (Linux >= 5.6 is needed, and a seccomp "
                "profile that allows it): files inside containers cannot be opened safely",
                path,
            )
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "lookup kept racing a rename inside the root", path)


def open_in_root(root_fd: int, path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` as the container whose root is ``root_fd`` would resolve it.

    ``path`` may be absolute or relative: both start at the root. Symlinks and
    ``..`` never leave the root; magic links fail with ``ELOOP``. The caller
    closes the descriptor.
    """
    return openat2(root_fd, path, flags, IN_CONTAINER)


class NotRegular(Exception):
    """A path that is there but is not a regular file, so it is not read."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind})")
        self.path = path
        self.kind = kind


def file_kind(mode: int) -> str:
    """What ``st_mode`` says a file is, in words for a warning."""
    kinds = (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symlink"),
    )
    for test, name in kinds:
        if test(mode):
            return name
    return f"unknown type {stat.S_IFMT(mode):o}"


def open_regular_in_root(root_fd: int, path: str) -> tuple[int, os.stat_result]:
    """Open a regular file inside the root for reading; returns (fd, its stat).

    The path is first opened ``O_PATH``, which opens nothing: a FIFO does not
    wait for a writer, a device's driver is not called. Only once ``fstat`` says
    it is a regular file is that same inode opened for reading, through
    ``/proc/self/fd`` (our own descriptor, not the container's), so the
    container cannot swap the file between the check and the open (so a
    procfs must be mounted at ``/proc``, as it is in the plugin). Raises
    :class:`NotRegular` for anything else, OSError if it cannot be opened.
    """
    path_fd = open_in_root(root_fd, path, os.O_PATH)
    try:
        st = os.fstat(path_fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, file_kind(st.st_mode))
        fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_NOCTTY)
    finally:
        os.close(path_fd)
    reopened = os.fstat(fd)
    if (reopened.st_dev, reopened.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "file changed while it was opened", path)
    return fd, reopened
