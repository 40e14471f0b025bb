"""The real plugin process: gunicorn serving the API on its unix socket."""

import contextlib
import json
import os
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import SHUTDOWN_DEADLINE
from pylog.models import Entry

from ..helpers import encode_entries
from .conftest import server_env


def http(sock_path: Path, method: str, body: bytes = b"") -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        head = (
            f"POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/vnd.docker.plugins.v1.2+json\r\n"
            "Connection: close\r\n\r\n"
        )
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, _, payload = data.partition(b"\r\n\r\n")
    return int(status.split()[1]), payload


@contextlib.contextmanager
def running_server(
    tmp_path: Path,
    threads: int = 8,
    preexec_fn: Callable[[], object] | None = None,
    **env: str,
) -> Iterator[tuple[subprocess.Popen[bytes], Path, float]]:
    """``python -m pylog.server`` under ``tmp_path``, once it answers."""
    sock = tmp_path / "run" / "pylog.sock"
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylog.server"],
        preexec_fn=preexec_fn,
        env={**server_env(tmp_path, sock, threads=threads), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = None
    while time.monotonic() - start < 20:
        if sock.exists():
            try:
                http(sock, "LogDriver.Capabilities")
                ready = time.monotonic() - start
                break
            except OSError:
                pass
        time.sleep(0.02)
    try:
        assert ready is not None, "the server did not answer"
        yield proc, sock, ready
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, float]]:
    with running_server(tmp_path) as running:
        yield running


def test_answers_quickly_and_only_to_root(
    server: tuple[subprocess.Popen[bytes], Path, float],
) -> None:
    _, sock, ready = server
    # dockerd disables a plugin that is not listening within about 9.5 s.
    assert ready < 9.5
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    assert mode & 0o077 == 0, f"socket mode {mode:o} lets others in"
    assert http(sock, "LogDriver.Capabilities") == (200, b'{"Cap":{"ReadLogs":true},"Err":""}\n')


def test_bad_requests_leave_the_process_unharmed(
    server: tuple[subprocess.Popen[bytes], Path, float],
) -> None:
    proc, sock, _ = server
    for body in [
        b"{",
        b"\xff\xfe",
        b"[]",
        json.dumps({"File": "/etc/passwd", "Info": {"ContainerID": "x"}}).encode(),
    ]:
        status, payload = http(sock, "LogDriver.StartLogging", body)
        assert status == 200 and json.loads(payload)["Err"]
    assert proc.poll() is None
    assert http(sock, "Plugin.Activate")[1] == b'{"Implements":["LogDriver"]}\n'


def test_sigterm_is_a_clean_shutdown(
    tmp_path: Path, server: tuple[subprocess.Popen[bytes], Path, float]
) -> None:
    proc, _, _ = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


CID = "c" * 64


def request_bytes(method: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {len(data)}\r\n"
        "Content-Type: application/vnd.docker.plugins.v1.2+json\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + data


def open_follow(sock_path: Path, cid: str = CID) -> tuple[socket.socket, bytes]:
    """A ``docker logs -f`` as dockerd sends it; returns the socket and the reply head."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(sock_path))
    body = {"Info": {"ContainerID": cid}, "Config": {"Follow": True, "Tail": -1}}
    s.sendall(request_bytes("LogDriver.ReadLogs", body))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "connection closed before the reply head"
        data += chunk
    return s, data


def read_to_eof(*socks: socket.socket, timeout: float = 10) -> list[bytes]:
    """Read each socket until the server's FIN, all at once, and close each at its
    FIN, as dockerd would: gunicorn's main loop lingers (up to 2 s) on a closing
    connection until the peer closes it too."""
    data = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + timeout
    while open_:
        readable, _, _ = select.select(list(open_), [], [], deadline - time.monotonic())
        assert readable, f"{len(open_)} of {len(socks)} streams did not end"
        for s in readable:
            chunk = s.recv(65536)
            data[s] += chunk
            if not chunk:
                s.close()
                open_.discard(s)
    return [data[s] for s in socks]


def timed_http(sock: Path, method: str, body: object) -> tuple[int, dict[str, object], float]:
    start = time.monotonic()
    status, payload = http(sock, method, json.dumps(body).encode())
    return status, json.loads(payload), time.monotonic() - start


@pytest.mark.timeout(60)
def test_followers_over_the_cap_are_refused_and_control_requests_still_answer(
    tmp_path: Path,
) -> None:
    # Every follower holds a thread; once they held all of them, StartLogging,
    # StopLogging and Capabilities queued forever (and the followers end only
    # after StopLogging).
    fifo, other = tmp_path / "f1", tmp_path / "f2"
    os.mkfifo(fifo)
    os.mkfifo(other)
    fds = [os.open(fifo, os.O_RDWR), os.open(other, os.O_RDWR)]
    followers: list[socket.socket] = []
    try:
        with running_server(tmp_path, threads=4, PYLOG_MAX_READERS="6") as (_, sock, _):
            start = {"File": str(fifo), "Info": {"ContainerID": CID}}
            assert timed_http(sock, "LogDriver.StartLogging", start)[:2] == (200, {"Err": ""})
            # A stream's head goes out with its first frames: give it some.
            os.write(fds[0], encode_entries([Entry("stdout", 1, b"hi")]))
            for _ in range(6):
                s, head = open_follow(sock)
                followers.append(s)
                assert head.startswith(b"HTTP/1.1 200"), head
            s, reply = open_follow(sock)
            followers.append(s)
            assert reply.startswith(b"HTTP/1.1 503"), reply
            err = json.loads((reply + read_to_eof(s)[0]).partition(b"\r\n\r\n")[2])["Err"]
            assert "PYLOG_MAX_READERS" in err
            # The control endpoints answer at once (the 10 s socket timeout is the bound;
            # a queued request would never be answered).
            other_start = {"File": str(other), "Info": {"ContainerID": "d" * 64}}
            for method, body in [
                ("LogDriver.Capabilities", {}),
                ("LogDriver.StartLogging", other_start),
                ("LogDriver.StopLogging", {"File": str(other)}),
            ]:
                status, reply_body, took = timed_http(sock, method, body)
                assert status == 200 and reply_body.get("Err") == "", (method, reply_body)
                assert took < 5, (method, took)
            # Stopping the followed container ends every follow stream.
            assert timed_http(sock, "LogDriver.StopLogging", {"File": str(fifo)})[0] == 200
            os.close(fds.pop(0))  # dockerd closes the FIFO after StopLogging
            for data in read_to_eof(*followers[:6]):
                assert data.endswith(b"0\r\n\r\n")  # the stream's proper end
            # The slots are free again.
            s, head = open_follow(sock)
            followers.append(s)
            assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        for s in followers:
            s.close()
        for fd in fds:
            os.close(fd)


def nofile_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit")


@pytest.mark.timeout(120)
def test_open_file_limit_is_raised_and_start_refused_before_it_runs_dry(tmp_path: Path) -> None:
    # pylog inherits containerd's soft limit and holds a few descriptors per container
    # (fdlimit.FDS_PER_CONTAINER); at the limit it stopped answering altogether.

    hard = 400

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    fds: list[int] = []
    try:
        with running_server(tmp_path, threads=4, preexec_fn=low_limit) as (proc, sock, _):
            assert nofile_limits(proc.pid) == (hard, hard)
            started, err = 0, ""
            for i in range(hard):
                fifo = tmp_path / f"fifo{i}"
                os.mkfifo(fifo)
                fds.append(os.open(fifo, os.O_RDWR))
                body = {"File": str(fifo), "Info": {"ContainerID": f"{i:064x}"}}
                status, reply, _ = timed_http(sock, "LogDriver.StartLogging", body)
                assert status == 200
                if err := str(reply["Err"]):
                    break
                started += 1
            # Refused with a message naming the limit, after a fair share of it.
            assert "open-file limit" in err and str(hard) in err, err
            assert started >= 20, started
            # Every other endpoint still answers.
            assert timed_http(sock, "LogDriver.Capabilities", {})[:2] == (
                200,
                {"Cap": {"ReadLogs": True}, "Err": ""},
            )
            read = {"Info": {"ContainerID": f"{0:064x}"}, "Config": {"Tail": -1}}
            assert http(sock, "LogDriver.ReadLogs", json.dumps(read).encode())[0] == 200
            stop = {"File": str(tmp_path / "fifo0")}
            assert timed_http(sock, "LogDriver.StopLogging", stop)[:2] == (200, {"Err": ""})
            os.close(fds.pop(0))
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.timeout(60)
def test_sigterm_with_followers_open_stops_within_the_deadline(tmp_path: Path) -> None:
    """dockerd kills a plugin that has not stopped 10 s after SIGTERM. Follow streams
    end only when pylog shuts down, and gunicorn waited for them (15 s) before it even
    started to: every `docker plugin disable` with a `docker logs -f` open was a kill."""
    fifo = tmp_path / "f1"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    followers: list[socket.socket] = []
    try:
        with running_server(tmp_path, threads=4) as (proc, sock, _):
            start = {"File": str(fifo), "Info": {"ContainerID": CID}}
            assert timed_http(sock, "LogDriver.StartLogging", start)[:2] == (200, {"Err": ""})
            os.write(fd, encode_entries([Entry("stdout", 1, b"hi")]))
            for _ in range(3):
                s, head = open_follow(sock)
                followers.append(s)
                assert head.startswith(b"HTTP/1.1 200"), head
            told = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for data in read_to_eof(*followers, timeout=SHUTDOWN_DEADLINE):
                assert data.endswith(b"0\r\n\r\n")  # each stream ended properly
            assert proc.wait(20) == 0
            took = time.monotonic() - told
            assert took < SHUTDOWN_DEADLINE + 1, f"stopped {took:.1f} s after SIGTERM"
    finally:
        for s in followers:
            s.close()
        os.close(fd)
