from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import RotationPolicy
from pylog.models import Entry
from pylog.store.logfile import LogFile
from pylog.store.records import RecordEncoder

T0 = 1_700_000_000_000_000_000


def make_records(n: int, start: int = 0, width: int = 40) -> list[bytes]:
    enc = RecordEncoder()
    return [
        enc.encode(
            Entry(
                "stdout" if i % 3 else "stderr",
                T0 + i * 1000,
                f"line {i:06d} ".ljust(width, "x").encode(),
            )
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def open_log(tmp_path: Path) -> Iterator[Callable[..., LogFile]]:
    opened: list[LogFile] = []

    def factory(max_size: int = -1, max_files: int = 1, compress: bool = False) -> LogFile:
        lf = LogFile(tmp_path / "c1", RotationPolicy(max_size, max_files, compress))
        opened.append(lf)
        return lf

    yield factory
    for lf in opened:
        lf.close()
