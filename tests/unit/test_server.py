"""The real plugin process: gunicorn serving the API on its unix socket."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, float]]:
    sock = tmp_path / "run" / "pylog.sock"
    env = server_env(tmp_path, sock, threads=8)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylog.server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
    assert ready is not None, "the server did not answer"
    yield proc, sock, ready
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


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
