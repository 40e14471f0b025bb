import gzip
import stat
from pathlib import Path

import pytest
from pylog.config import RotationPolicy
from pylog.models import Entry
from pylog.shipper.position import (
    PositionUnreadable,
    load_position,
    position_path,
    save_position,
)
from pylog.store import LogFile
from pylog.store.reader import Position, count_records, follow_from
from pylog.store.records import RecordEncoder


def test_position_roundtrip_and_atomic(tmp_path: Path) -> None:
    assert load_position(tmp_path) is None
    save_position(tmp_path, Position(7, 12345))
    assert load_position(tmp_path) == Position(7, 12345)
    save_position(tmp_path, Position(8, 0))
    assert load_position(tmp_path) == Position(8, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kafka.position"]


def test_an_absent_position_is_none_and_a_stored_one_is_private(tmp_path: Path) -> None:
    assert load_position(tmp_path) is None
    save_position(tmp_path, Position(3, 4))
    assert stat.S_IMODE(position_path(tmp_path).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "{",
        "\x00\x00\x00",
        "null",
        "[1, 2]",
        '"x"',
        "{}",
        '{"generation": 1}',
        '{"generation": -1, "offset": 0}',
        '{"generation": 1, "offset": -5}',
        '{"generation": "1", "offset": 2}',
        '{"generation": 1.5, "offset": 2}',
        '{"generation": true, "offset": 2}',
        '{"generation": 1, "offset": null}',
        "[" * 100_000,
    ],
)
def test_an_unreadable_position_is_an_error_not_none(tmp_path: Path, text: str) -> None:
    """Lost is not never-shipped: the manager must not start at the log's end."""
    position_path(tmp_path).write_text(text)
    with pytest.raises(PositionUnreadable):
        load_position(tmp_path)


def test_positions_are_ordered_across_generations() -> None:
    assert Position(1, 10_000) < Position(2, 0) < Position(2, 1)


def test_count_records_plain_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1\n2\n3\n")
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(b"1\n" * 1000)
    assert count_records(tmp_path / "a") == 3
    assert count_records(tmp_path / "b.gz") == 1000


def test_a_stored_position_resumes_reading_after_rotation(tmp_path: Path) -> None:
    """The contract the shipper relies on: a saved Position means the same place later."""
    enc = RecordEncoder()
    log = LogFile(tmp_path, RotationPolicy(200, 10, True))
    recs = [enc.encode(Entry("stdout", i, f"line {i}".encode())) for i in range(30)]
    log.append(b"".join(recs[:10]))
    batches = list(follow_from(log, Position(0, 0), lambda: False))
    mid = batches[0][1]
    log.append(b"".join(recs[10:]))
    log.close()
    reopened = LogFile(tmp_path, RotationPolicy(200, 10, True), writable=False)
    rest = [r for b, _ in follow_from(reopened, mid) for r in b]
    assert rest == recs[len(batches[0][0]) :]
