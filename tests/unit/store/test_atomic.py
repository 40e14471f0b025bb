import os
import stat
from pathlib import Path

import pytest
from pylog.store.atomic import private_dir, write_atomic, write_json


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_atomic_replaces_the_file_private_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    write_json(target, {"a": 1})
    assert target.read_text() == '{"a": 1}\n'
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_atomic_syncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "f", b"x")
    assert synced == ["file", "dir"]
    synced.clear()
    write_atomic(tmp_path / "f", b"y", durable=False)
    assert synced == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "kafka.position"
    target.write_text("old")

    def fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["kafka.position"]


def test_private_dir_creates_missing_parents_0700_and_fixes_an_existing_one(
    tmp_path: Path,
) -> None:
    private_dir(tmp_path / "a" / "b" / "c")
    for d in ("a", "a/b", "a/b/c"):
        assert mode(tmp_path / d) == 0o700, d
    os.chmod(tmp_path / "a" / "b", 0o755)
    private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a" / "b") == 0o700
