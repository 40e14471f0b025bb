import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import Settings
from pylog.service import LoggingService


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    fifo_root = tmp_path / "logging"
    fifo_root.mkdir()
    return Settings(
        state_dir=tmp_path / "state",
        socket_path=tmp_path / "pylog.sock",
        fifo_root=fifo_root,
        retention_seconds=3600,
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[LoggingService]:
    svc = LoggingService(settings)
    svc.startup()
    yield svc
    svc.shutdown()


class Fifo:
    """A FIFO opened the way dockerd opens it: read-write, so it has a writer from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.fd: int | None = os.open(path, os.O_RDWR)

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@pytest.fixture
def make_fifo(settings: Settings) -> Iterator[Callable[[str], Fifo]]:
    made: list[Fifo] = []

    def factory(name: str) -> Fifo:
        f = Fifo(settings.fifo_root / name)
        made.append(f)
        return f

    yield factory
    for f in made:
        f.close()


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def server_env(tmp_path: Path, sock: Path, threads: int) -> dict[str, str]:
    """Environment for a real ``python -m pylog.server`` under ``tmp_path``."""
    return {
        **os.environ,
        "PYLOG_STATE_DIR": str(tmp_path / "state"),
        "PYLOG_SOCKET": str(sock),
        "PYLOG_FIFO_ROOT": str(tmp_path),
        "PYLOG_THREADS": str(threads),
    }
