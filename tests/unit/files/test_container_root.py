"""Files inside a container's root: found by cgroup, opened and globbed without escaping.

The fake container root is a temporary directory, opened ``O_PATH|O_DIRECTORY``
as pylog opens ``/proc/<pid>/root``. Its ``etc/passwd`` and ``etc/shadow`` are
canaries: a hostile path that reads them resolved inside the root, one that
reads the host's files escaped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pylog.files import openat2 as openat2_mod
from pylog.files.container_root import (
    ContainerNotFound,
    RootNotReady,
    container_pids,
    find_container_pid,
    in_container,
    open_container_root,
    open_final_root,
    open_root_of,
    path_names_container,
)
from pylog.files.openat2 import (
    RESOLVE_IN_ROOT,
    NotRegular,
    Openat2Unavailable,
    open_in_root,
    open_regular_in_root,
    openat2,
)
from pylog.files.rootglob import GlobResult, glob_in_root

PASSWD = b"CANARY: the fake root's passwd\n"
SHADOW = b"CANARY: the fake root's shadow\n"


def read_fd(fd: int) -> bytes:
    try:
        return os.pread(fd, 1 << 16, 0)
    finally:
        os.close(fd)


def read_in_root(root_fd: int, path: str) -> bytes:
    return read_fd(open_in_root(root_fd, path))


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    """A container's filesystem with hostile symlinks in var/log."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_bytes(PASSWD)
    (root / "etc/shadow").write_bytes(SHADOW)
    log = root / "var/log"
    log.mkdir(parents=True)
    (log / "abs.log").symlink_to("/etc/passwd")
    (log / "rel.log").symlink_to("../../../../etc/passwd")
    (log / "deep.log").symlink_to("../" * 32 + "etc/passwd")  # enough for any tmp_path
    (log / "magic.log").symlink_to("/proc/1/root/etc/shadow")
    (log / "self.log").symlink_to("/proc/self/root/etc/shadow")
    (log / "up").symlink_to("/../../..")  # a directory symlink that climbs
    (root / "proc").mkdir()
    return root


@pytest.fixture
def root_fd(root_dir: Path) -> Iterator[int]:
    fd = os.open(root_dir, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.fixture
def proc_mounted(root_dir: Path) -> Iterator[Path]:
    """A procfs mounted at the fake root's /proc, as every container has one."""
    target = root_dir / "proc"
    done = subprocess.run(
        ["mount", "-t", "proc", "proc", str(target)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a procfs in the fake root (needs root): {done.stderr}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


# ---------------------------------------------------------------- open_in_root


def test_the_hostile_links_escape_through_a_plain_host_path(root_dir: Path) -> None:
    """What open_in_root prevents: a host path join reads the host's passwd."""
    host = Path("/etc/passwd").read_bytes()
    assert (root_dir / "var/log/abs.log").read_bytes() == host != PASSWD
    assert (root_dir / "var/log/deep.log").read_bytes() == host


def test_absolute_symlink_resolves_inside_the_root(root_fd: int) -> None:
    assert read_in_root(root_fd, "/var/log/abs.log") == PASSWD


def test_relative_symlink_climbing_out_stops_at_the_root(root_fd: int) -> None:
    assert read_in_root(root_fd, "/var/log/rel.log") == PASSWD
    assert read_in_root(root_fd, "/var/log/deep.log") == PASSWD


def test_dotdot_in_the_declared_path_stops_at_the_root(root_fd: int) -> None:
    assert read_in_root(root_fd, "/var/log/../../../../etc/passwd") == PASSWD
    assert read_in_root(root_fd, "var/log/../../../../../etc/shadow") == SHADOW
    assert read_in_root(root_fd, "/var/log/up/etc/passwd") == PASSWD


def test_magic_link_without_a_procfs_is_a_missing_file(root_fd: int) -> None:
    """No procfs in the root: /proc/1/root is a plain path there, and absent."""
    with pytest.raises(FileNotFoundError):
        open_in_root(root_fd, "/var/log/magic.log")


def test_magic_links_through_the_containers_procfs_are_refused(
    root_fd: int, proc_mounted: Path
) -> None:
    # /proc/self/root and /proc/<pid>/root of a process we may trace: the magic
    # link itself is refused (RESOLVE_NO_MAGICLINKS: ELOOP).
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/var/log/self.log")
    assert info.value.errno == errno.ELOOP
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, f"/proc/{os.getpid()}/root/etc/shadow")
    assert info.value.errno == errno.ELOOP
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, f"/proc/self/fd/{root_fd}")
    assert info.value.errno == errno.ELOOP
    # /proc/1/root: refused too. Where pid 1 may not be traced (this machine's
    # pid 1 is outside the test's reach) procfs answers EACCES before the link
    # is even looked at; either way the host's shadow is never read.
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/var/log/magic.log")
    assert info.value.errno in (errno.ELOOP, errno.EACCES)


def test_resolve_in_root_alone_also_refuses_magic_links_today(
    root_fd: int, proc_mounted: Path
) -> None:
    """The kernel's own scoping (EXDEV) is why NO_MAGICLINKS is belt and braces."""
    with pytest.raises(OSError) as info:
        openat2(root_fd, "/var/log/self.log", os.O_RDONLY, RESOLVE_IN_ROOT)
    assert info.value.errno == errno.EXDEV


def test_a_missing_openat2_fails_closed(root_fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A syscall number no kernel has: the real ENOSYS a pre-5.6 kernel gives.
    monkeypatch.setattr(openat2_mod, "SYS_OPENAT2", 1023)
    with pytest.raises(Openat2Unavailable, match="not available"):
        open_in_root(root_fd, "/etc/passwd")


def test_a_null_byte_is_refused_not_cut(root_fd: int) -> None:
    with pytest.raises(ValueError, match="null byte"):
        open_in_root(root_fd, "/etc/passwd\0/../shadow")


def test_descriptors_are_close_on_exec(root_fd: int) -> None:
    fd = open_in_root(root_fd, "/etc/passwd")
    try:
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------- regular files only


@pytest.fixture
def odd_files(root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """app/ with a regular file, a FIFO, a directory, a socket and a device, all *.log."""
    app = root_dir / "app"
    app.mkdir()
    (app / "a.log").write_bytes(b"regular\n")
    os.mkfifo(app / "b.log")
    (app / "c.log").mkdir()
    monkeypatch.chdir(app)  # a unix socket's path is limited to 108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("d.log")
    # A character device like /dev/null (mknod needs CAP_MKNOD: root here).
    with contextlib.suppress(PermissionError):
        os.mknod(app / "e.log", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (app / "f.log").symlink_to("b.log")  # a symlink to the FIFO
    try:
        yield app
    finally:
        sock.close()


@pytest.mark.timeout(20, method="signal")
def test_a_fifo_is_rejected_without_waiting_for_a_writer(root_fd: int, odd_files: Path) -> None:
    started = time.monotonic()
    with pytest.raises(NotRegular) as info:
        open_regular_in_root(root_fd, "/app/b.log")
    assert info.value.kind == "FIFO"
    with pytest.raises(NotRegular, match="FIFO"):
        open_regular_in_root(root_fd, "/app/f.log")
    assert time.monotonic() - started < 5


@pytest.mark.timeout(20, method="signal")
def test_glob_skips_non_regular_files_with_the_reason(root_fd: int, odd_files: Path) -> None:
    with glob_in_root(root_fd, "/app/*.log", limit=10) as result:
        assert [(m.path, read_fd(os.dup(m.fd))) for m in result.files] == [
            ("/app/a.log", b"regular\n")
        ]
        assert [(s.path, s.reason) for s in result.skipped] == [
            ("/app/b.log", "FIFO"),
            ("/app/c.log", "directory"),
            ("/app/d.log", "socket"),
            *([("/app/e.log", "character device")] if (odd_files / "e.log").exists() else []),
            ("/app/f.log", "FIFO"),
        ]
        assert result.more == 0


@pytest.mark.timeout(20, method="signal")
def test_a_fifo_in_the_middle_of_a_glob_is_not_listed(root_fd: int, odd_files: Path) -> None:
    """A directory is opened O_DIRECTORY: a FIFO in its place fails at once (ENOTDIR)."""
    with glob_in_root(root_fd, "/app/b.log/*", limit=10) as result:
        assert (result.files, result.skipped, result.more) == ([], [], 0)
    with glob_in_root(root_fd, "/app/*/x*", limit=10) as result:
        assert (result.files, result.skipped, result.more) == ([], [], 0)


def test_open_regular_gives_a_readable_fd_and_its_stat(root_fd: int, root_dir: Path) -> None:
    fd, st = open_regular_in_root(root_fd, "/var/log/abs.log")
    real = os.stat(root_dir / "etc/passwd")
    assert (st.st_dev, st.st_ino) == (real.st_dev, real.st_ino)
    assert os.get_blocking(fd)
    assert read_fd(fd) == PASSWD


# ------------------------------------------------------------------------- glob


def test_glob_resolves_hostile_matches_inside_the_root(root_fd: int, proc_mounted: Path) -> None:
    with glob_in_root(root_fd, "/var/log/*.log", limit=10) as result:
        # abs.log and rel.log are both the fake passwd: opened once, first path.
        assert [(m.path, read_fd(os.dup(m.fd))) for m in result.files] == [
            ("/var/log/abs.log", PASSWD)
        ]
        reasons = {s.path: s.reason.split(":")[0] for s in result.skipped}
        assert reasons["/var/log/self.log"] == "ELOOP"
        assert reasons["/var/log/magic.log"] in ("ELOOP", "EACCES")
        assert set(reasons) == {"/var/log/self.log", "/var/log/magic.log"}


def test_glob_through_a_climbing_directory_symlink_stays_inside(root_fd: int) -> None:
    with glob_in_root(root_fd, "/var/log/up/etc/pass*", limit=10) as result:
        assert [(m.path, read_fd(os.dup(m.fd))) for m in result.files] == [
            ("/var/log/up/etc/passwd", PASSWD)
        ]


def test_glob_matches_per_component_and_not_hidden_files(root_dir: Path, root_fd: int) -> None:
    logs = root_dir / "srv/logs"
    for day in ("2024-01-01", "2024-01-02"):
        (logs / day).mkdir(parents=True)
        (logs / day / "access.log").write_text(day)
        (logs / day / "error.log").write_text(day)
        (logs / day / ".access.log.swp").write_text(day)
    (logs / "2024-01-0x").mkdir()
    (logs / "deep/2024-01-03").mkdir(parents=True)
    (logs / "deep/2024-01-03/access.log").write_text("deep")

    def paths(pattern: str) -> list[str]:
        with glob_in_root(root_fd, pattern, limit=100) as result:
            return [m.path for m in result.files]

    assert paths("/srv/logs/2024-01-0[0-9]/access.log") == [
        "/srv/logs/2024-01-01/access.log",
        "/srv/logs/2024-01-02/access.log",
    ]
    assert paths("/srv/logs/*/?rror.log") == [
        "/srv/logs/2024-01-01/error.log",
        "/srv/logs/2024-01-02/error.log",
    ]
    assert paths("/srv/logs/2024-01-01/*") == [
        "/srv/logs/2024-01-01/access.log",
        "/srv/logs/2024-01-01/error.log",
    ]
    assert paths("/srv/logs/2024-01-01/.*.swp") == ["/srv/logs/2024-01-01/.access.log.swp"]
    # ** is one component, like *: deep/2024-01-03 is two levels down.
    assert paths("/srv/logs/**/access.log") == paths("/srv/logs/*/access.log")
    assert "/srv/logs/deep/2024-01-03/access.log" not in paths("/srv/logs/**/access.log")
    assert paths("/srv/logs/2024-01-01/access.log") == ["/srv/logs/2024-01-01/access.log"]
    assert paths("/srv/nothing/*.log") == []
    assert paths("/srv/logs/2024-01-01/absent.log") == []


def test_glob_needs_an_absolute_pattern(root_fd: int) -> None:
    with pytest.raises(ValueError, match="absolute"):
        glob_in_root(root_fd, "var/log/*.log", limit=10)


def test_a_glob_matching_thousands_of_files_is_capped_and_counted(
    root_dir: Path, root_fd: int
) -> None:
    many = root_dir / "many"
    many.mkdir()
    for i in range(5000):
        (many / f"f{i:04d}.log").write_bytes(b"x")
    fds_before = len(os.listdir("/proc/self/fd"))
    result: GlobResult = glob_in_root(root_fd, "/many/*.log", limit=100)
    try:
        assert [m.path for m in result.files] == [f"/many/f{i:04d}.log" for i in range(100)]
        assert result.more == 4900
        assert result.skipped == []
        assert len(os.listdir("/proc/self/fd")) == fds_before + 100
    finally:
        result.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


# ---------------------------------------------------------------- cgroup lines

CID = "4f3c1c0f0b7d3b8e2a59a2c1d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
OTHER = "0" * 64

V1_HYBRID = f"""\
12:pids:/docker/{CID}
11:memory:/docker/{CID}
10:cpu,cpuacct:/docker/{CID}
1:name=systemd:/docker/{CID}
0::/docker/{CID}
"""


@pytest.mark.parametrize(
    "text",
    [
        V1_HYBRID,
        f"12:pids:/docker/{CID}\n",
        f"0::/system.slice/docker-{CID}.scope\n",
        f"0::/docker/{CID}\n",
        f"1:name=systemd:/system.slice/docker-{CID}.scope\n",
        f"0::/system.slice/docker-{CID}.scope/init.scope\n",  # systemd inside the container
        f"0::/../../system.slice/docker-{CID}.scope\n",  # seen from another cgroup namespace
        f"0::/kubepods.slice/kubepods-pod1.slice/docker-{CID}.scope\n",
    ],
)
def test_cgroup_lines_that_name_the_container(text: str) -> None:
    assert in_container(text, CID)


@pytest.mark.parametrize(
    "text",
    [
        "0::/\n",
        "12:pids:/\n0::/init.scope\n",
        f"0::/docker/{OTHER}\n",
        f"0::/system.slice/docker-{OTHER}.scope\n",
        f"0::/docker/{CID}x\n",
        f"0::/system.slice/docker-{CID}.scope.bak\n",
        f"0::/dockerd/{CID}\n",
        f"0::/kubepods/burstable/pod1/{CID}\n",  # cgroupfs Kubernetes: not docker's form
        f"0::/docker-{CID}.scop\n",
        f"docker-{CID}.scope\n",  # not a cgroup line
    ],
)
def test_cgroup_lines_that_do_not(text: str) -> None:
    assert not in_container(text, CID)


def test_a_path_with_colons_is_split_at_the_first_two_only() -> None:
    assert path_names_container(f"/a:b/docker/{CID}", CID)
    assert in_container(f"0::/a:b/docker/{CID}\n", CID)


def test_only_full_container_ids_are_looked_for() -> None:
    with pytest.raises(ValueError, match="64 hex"):
        find_container_pid(CID[:12])
    with pytest.raises(ValueError, match="64 hex"):
        find_container_pid("../" + CID[3:])


# ------------------------------------------------------------- a fake /proc


def fake_process(proc: Path, pid: int, ppid: int, start: int, cgroup: str | None) -> None:
    d = proc / str(pid)
    d.mkdir()
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)
        # The command name may hold spaces and parentheses.
        (d / "stat").write_text(
            f"{pid} (a) b) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} "
            "1000 100 18446744073709551615\n"
        )


def test_scan_of_a_proc_tree_finds_the_main_process(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    mine = f"0::/system.slice/docker-{CID}.scope\n"
    fake_process(proc, 100, 1, 50, "0::/\n")  # containerd-shim
    fake_process(proc, 120, 100, 60, mine)  # the container's init
    fake_process(proc, 121, 120, 61, mine)  # its child
    fake_process(proc, 90, 100, 900, mine)  # docker exec: the shim's child, started later
    fake_process(proc, 130, 100, 70, f"0::/system.slice/docker-{OTHER}.scope\n")
    fake_process(proc, 140, 1, 80, None)  # exited during the scan: its files are gone
    (proc / "self").symlink_to("140")
    (proc / "sys").mkdir()
    (proc / "cgroups").write_text("#subsys_name\n")
    assert sorted(container_pids(CID, str(proc))) == [90, 120, 121]
    assert find_container_pid(CID, str(proc)) == 120
    assert find_container_pid("1" * 64, str(proc)) is None


def test_scan_of_a_proc_tree_whose_processes_all_vanished(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "7").mkdir()
    (proc / "7/cgroup").write_text(f"0::/docker/{CID}\n")  # no stat: gone since
    assert container_pids(CID, str(proc)) == [7]
    assert find_container_pid(CID, str(proc)) is None


# ------------------------------------------------------------- real processes


def cgroup_mounts() -> dict[str, Path]:
    """The cgroup2 mount ("v2") and the v1 pids hierarchy ("v1"), where mounted."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3].split(",")
            if fstype == "cgroup2":
                found.setdefault("v2", Path(fields[4]))
            elif fstype == "cgroup" and "pids" in options:
                found.setdefault("v1", Path(fields[4]))
    return found


@contextlib.contextmanager
def docker_like_cgroup(version: str, form: str, container_id: str) -> Iterator[Path]:
    """A cgroup named as dockerd names a container's, under a parent of the test's own."""
    mounts = cgroup_mounts()
    if version not in mounts:
        pytest.skip(f"no cgroup {version} hierarchy is mounted here")
    if os.geteuid() != 0:
        pytest.skip("making cgroups and moving processes into them needs root")
    parent = mounts[version] / f"pylog-test-{secrets.token_hex(4)}"
    leaf = parent / (
        f"docker/{container_id}" if form == "cgroupfs" else f"docker-{container_id}.scope"
    )
    try:
        leaf.mkdir(parents=True)
    except OSError as e:
        pytest.skip(f"cannot make a cgroup under {mounts[version]}: {e}")
    try:
        yield leaf
    finally:
        d = leaf
        while True:
            for _ in range(100):  # a reaped process leaves its cgroup a moment later
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            if d == parent:
                break
            d = d.parent


def move_into(cgroup: Path, pid: int) -> None:
    (cgroup / "cgroup.procs").write_text(str(pid))


@pytest.mark.parametrize(
    ("version", "form"), [("v2", "systemd"), ("v2", "cgroupfs"), ("v1", "cgroupfs")]
)
def test_finds_a_real_process_in_a_docker_named_cgroup(version: str, form: str) -> None:
    cid = secrets.token_hex(32)
    child = 0
    code = (
        "import subprocess, sys; sys.stdin.readline(); "
        "c = subprocess.Popen(['sleep', '60']); print(c.pid, flush=True); c.wait()"
    )
    with (
        docker_like_cgroup(version, form, cid) as cgroup,
        # The "container": a process that starts a child once it is in the cgroup.
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as init,
    ):
        try:
            assert find_container_pid(cid) is None
            move_into(cgroup, init.pid)
            assert init.stdin is not None and init.stdout is not None
            init.stdin.write("go\n")
            init.stdin.flush()
            child = int(init.stdout.readline())
            assert sorted(container_pids(cid)) == sorted([init.pid, child])
            assert find_container_pid(cid) == init.pid  # not its child
            with open_container_root(cid) as root:
                assert os.fstat(root.fd).st_ino == os.stat("/").st_ino
            with pytest.raises(ContainerNotFound):
                open_root_of(os.getpid(), cid)  # a pid that is not the container's
        finally:
            init.kill()
            init.wait()
            if child:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        for _ in range(100):
            if find_container_pid(cid) is None:
                break
            time.sleep(0.02)
        assert find_container_pid(cid) is None
        with pytest.raises(ContainerNotFound):
            open_container_root(cid)


@contextlib.contextmanager
def container_with_a_tmpfs(logs: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A process in a docker-named cgroup and a mount namespace of its own, where
    ``logs`` is a tmpfs holding app.log (not visible on the host)."""
    cid = secrets.token_hex(32)
    logs.mkdir()
    with docker_like_cgroup("v2", "systemd", cid) as cgroup:
        script = (
            f"echo $$ > {cgroup}/cgroup.procs && mount -t tmpfs app {logs} && "
            f"echo written in the container > {logs}/app.log && echo ready && exec sleep 60"
        )
        with subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    pytest.skip("cannot unshare a mount namespace and mount a tmpfs here")
                assert not (logs / "app.log").exists()  # not on the host
                yield cid, proc
            finally:
                proc.kill()
                proc.wait()


def test_files_opened_in_a_container_stay_readable_after_it_exits(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with container_with_a_tmpfs(logs) as (cid, proc), open_container_root(cid) as root:
        result = glob_in_root(root.fd, f"{logs}/*.log", limit=10)
        proc.kill()
        proc.wait()
    with result:
        assert find_container_pid(cid) is None
        assert [(m.path, read_fd(os.dup(m.fd))) for m in result.files] == [
            (f"{logs}/app.log", b"written in the container\n")
        ]


def test_the_containers_mounts_stay_reachable_through_its_root_after_it_exits(
    tmp_path: Path,
) -> None:
    """The tmpfs (a volume, for Docker) lives in the container's mount namespace:
    without the namespace held, it is unmounted when the last process exits, and
    the glob would find only the empty directory beneath."""
    logs = tmp_path / "logs"
    with container_with_a_tmpfs(logs) as (cid, proc):
        root = open_container_root(cid)
        proc.kill()
        proc.wait()
    with root:
        assert find_container_pid(cid) is None
        with glob_in_root(root.fd, f"{logs}/*.log", limit=10) as result:
            assert [read_fd(os.dup(m.fd)) for m in result.files] == [b"written in the container\n"]


def test_a_root_is_taken_only_once_the_process_left_its_parents_root(tmp_path: Path) -> None:
    """runc's init is in the container's cgroup before it pivots into the container's
    root: until then its root is its parent's (the host's), and must not be kept."""
    cid = secrets.token_hex(32)
    new_root = tmp_path / "rootfs"
    new_root.mkdir()
    code = (
        "import os, sys, time; sys.stdin.readline(); "
        f"os.chroot({str(new_root)!r}); print('in', flush=True); time.sleep(60)"
    )
    with (
        docker_like_cgroup("v2", "cgroupfs", cid) as cgroup,
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as init,
    ):
        try:
            with pytest.raises(ContainerNotFound) as not_started:
                open_final_root(cid)
            assert not isinstance(not_started.value, RootNotReady)
            move_into(cgroup, init.pid)
            with pytest.raises(RootNotReady):
                open_final_root(cid)  # in the cgroup, still in the test's root
            assert init.stdin is not None and init.stdout is not None
            init.stdin.write("go\n")
            init.stdin.flush()
            assert init.stdout.readline().strip() == "in"
            with open_final_root(cid) as root:
                assert os.fstat(root.fd).st_ino == new_root.stat().st_ino
        finally:
            init.kill()
            init.wait()
