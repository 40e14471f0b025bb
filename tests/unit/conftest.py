"""Fixtures of the unit tests: settings and a started service under tmp_path, FIFOs."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import Settings
from pylog.service import LoggingService

from ..helpers import Fifo, make_settings, running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def service(settings: Settings) -> Iterator[LoggingService]:
    with running(settings) as svc:
        yield svc


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


def server_env(tmp_path: Path, sock: Path, threads: int) -> dict[str, str]:
    """Environment for a real ``python -m pylog.server`` under ``tmp_path``."""
    return {
        **os.environ,
        "PYLOG_STATE_DIR": str(tmp_path / "state"),
        "PYLOG_SOCKET": str(sock),
        "PYLOG_FIFO_ROOT": str(tmp_path),
        "PYLOG_THREADS": str(threads),
    }
