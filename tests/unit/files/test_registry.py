"""Registry on real files, and FileFollower resumed from it after a restart."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pylog.files.identity import FileIdentity, FilePosition
from pylog.files.registry import REGISTRY_FILE, Registry, RegistryEntry
from pylog.files.tail import FileFollower, TailLine, open_plain


def identity(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def drain(f: FileFollower) -> list[TailLine]:
    out = f.poll()
    while not f.caught_up:
        out += f.poll()
    return out


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The container's directory in the state dir."""
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


A = FileIdentity(2049, 11)
B = FileIdentity(2049, 12)


def test_no_registry_is_an_empty_one_and_nothing_is_written_for_it(state: Path) -> None:
    reg = Registry.load(state)
    assert len(reg) == 0 and reg.start_for("/x") is None and reg.offset(A) is None
    assert reg.save() is False
    assert list(state.iterdir()) == []


def test_positions_survive_a_save_and_load_in_a_private_file(state: Path) -> None:
    reg = Registry.load(state)
    reg.update("/var/log/a.log", FilePosition(A, 100))
    reg.update("/var/log/b.log", FilePosition(B, 7))
    assert reg.save() is True
    assert [p.name for p in state.iterdir()] == [REGISTRY_FILE]  # no temp file left
    assert stat.S_IMODE((state / REGISTRY_FILE).stat().st_mode) == 0o600
    again = Registry.load(state)
    assert list(again) == [
        (A, RegistryEntry("/var/log/a.log", 100)),
        (B, RegistryEntry("/var/log/b.log", 7)),
    ]
    assert again.offset(A) == 100 and again.start_for("/var/log/b.log") == FilePosition(B, 7)


def test_it_is_written_only_when_it_changed(state: Path) -> None:
    reg = Registry.load(state)
    reg.update("/a", FilePosition(A, 1))
    assert reg.save(durable=False) is True
    reg.update("/a", FilePosition(A, 1))
    assert reg.save() is False
    reg.forget(B)
    assert reg.save() is False
    reg.update("/a", FilePosition(A, 2))
    assert reg.save() is True and Registry.load(state).offset(A) == 2


def test_the_start_for_a_path_is_the_file_followed_there_last(state: Path) -> None:
    """After a rotation both files have entries; the path now names the newer one."""
    reg = Registry.load(state)
    reg.update("/a.log", FilePosition(A, 500))
    reg.update("/a.log", FilePosition(B, 3))
    reg.update("/a.log", FilePosition(A, 600))  # the old file, read to its end later
    reg.save()
    # Order of updates is kept through a save: A was updated last.
    assert Registry.load(state).start_for("/a.log") == FilePosition(A, 600)
    reg.update("/a.log", FilePosition(B, 9))
    assert reg.start_for("/a.log") == FilePosition(B, 9)


def test_entries_of_files_gone_for_good_are_dropped(state: Path) -> None:
    reg = Registry.load(state)
    c = FileIdentity(2050, 1)
    for i, ident in enumerate((A, B, c)):
        reg.update(f"/{i}.log", FilePosition(ident, i))
    reg.forget(A)
    reg.keep_only({c})
    reg.save()
    assert list(Registry.load(state)) == [(c, RegistryEntry("/2.log", 2))]


def test_a_path_that_is_not_utf8_survives(state: Path) -> None:
    path = os.fsdecode(b"/var/log/\xff\xfe.log")
    reg = Registry.load(state)
    reg.update(path, FilePosition(A, 5))
    reg.save()
    assert Registry.load(state).start_for(path) == FilePosition(A, 5)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"\n",
        b"{",
        b"\x00\x00\xff",
        b"null",
        b"[]",
        b'{"files": []}',
        b'{"version": 2, "files": []}',
        b'{"version": 1}',
        b'{"version": 1, "files": {}}',
        b'{"version": 1, "files": [1]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": 1, "inode": 2}]}',
        b'{"version": 1, "files": [{"path": "", "dev": 1, "inode": 2, "offset": 3}]}',
        b'{"version": 1, "files": [{"path": 5, "dev": 1, "inode": 2, "offset": 3}]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": -1, "inode": 2, "offset": 3}]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": 1, "inode": "2", "offset": 3}]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": 1, "inode": 2, "offset": 1.5}]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": 1, "inode": 2, "offset": true}]}',
        b'{"version": 1, "files": [{"path": "/a", "dev": 1, "inode": 2, "offset": 3},'
        b' {"path": "/b", "dev": 1, "inode": 2, "offset": 4}]}',
        b"[" * 100_000,
    ],
)
def test_a_corrupt_registry_is_warned_about_and_every_file_is_read_from_its_start(
    state: Path, log: Path, text: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    log.write_bytes(b"l1\nl2\n")
    (state / REGISTRY_FILE).write_bytes(text)
    reg = Registry.load(state)
    assert len(reg) == 0
    assert "is corrupt, reading every file from its start" in caplog.text
    f = FileFollower(str(log), open_plain, reg.start_for(str(log)))
    assert [line.data for line in drain(f)] == [b"l1", b"l2"]
    f.close()
    # The next save replaces it, even with nothing in it.
    assert reg.save() is True
    assert json.loads((state / REGISTRY_FILE).read_bytes()) == {"version": 1, "files": []}


def test_an_unreadable_registry_is_warned_about_and_empty(
    state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (state / REGISTRY_FILE).mkdir()
    assert len(Registry.load(state)) == 0
    assert "cannot read" in caplog.text


# -- restarts ---------------------------------------------------------------------------


class Owner:
    """What the service will do: store each line, then its position in the registry."""

    def __init__(self, state: Path, path: Path, *, max_line: int = 16384) -> None:
        self.registry = Registry.load(state)
        self.path = str(path)
        self.follower = FileFollower(
            self.path, open_plain, self.registry.start_for(self.path), max_line=max_line
        )
        self.stored: list[TailLine] = []

    def step(self, *, save: bool = True) -> None:
        lines = self.follower.poll()
        self.stored += lines
        for line in lines:
            self.registry.update(self.path, FilePosition(line.identity, line.offset))
        if save:
            self.registry.save()

    def crash(self) -> None:
        """Gone without a last save (the fd is closed only to keep the test clean)."""
        self.follower.close()


def test_a_restart_mid_file_resumes_where_the_registry_says(state: Path, log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"".join(b"line %d\n" % i for i in range(100)) + b"unfin")
    first = Owner(state, log)
    first.step()
    first.crash()
    w.write(b"ished\n" + b"".join(b"line %d\n" % i for i in range(100, 200)))
    second = Owner(state, log)
    second.step()
    second.crash()
    got = [line.data for line in first.stored + second.stored]
    # Nothing lost, nothing twice: the held "unfin" was never stored, so never registered.
    assert got == [b"line %d" % i for i in range(100)] + [b"unfinished"] + [
        b"line %d" % i for i in range(100, 200)
    ]
    w.close()


def test_lines_stored_after_the_last_save_are_read_again_at_least_once(
    state: Path, log: Path
) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"a1\na2\n")
    first = Owner(state, log)
    first.step()
    w.write(b"a3\na4\n")
    first.step(save=False)  # stored, but the registry was not saved before the crash
    first.crash()
    second = Owner(state, log)
    second.step()
    second.crash()
    assert [line.data for line in first.stored] == [b"a1", b"a2", b"a3", b"a4"]
    assert [line.data for line in second.stored] == [b"a3", b"a4"]
    w.close()


def test_a_restart_inside_a_long_line_goes_on_with_its_next_piece(state: Path, log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"x" * 25)
    first = Owner(state, log, max_line=10)
    first.step()
    first.crash()
    w.write(b"y" * 5 + b"\n")
    second = Owner(state, log, max_line=10)
    second.step()
    second.crash()
    pieces = first.stored + second.stored
    assert b"".join(p.data for p in pieces) == b"x" * 25 + b"y" * 5
    # The 5 held bytes were not registered: the resumed follower reads them again.
    assert [(p.data, p.partial) for p in pieces] == [
        (b"x" * 10, True),
        (b"x" * 10, True),
        (b"x" * 5 + b"y" * 5, False),
    ]
    w.close()


def test_a_file_rotated_while_pylog_was_down_is_found_by_its_identity(
    state: Path, log: Path
) -> None:
    """The path names a new file (read from 0); the old one, now ``app.log.1``, resumes
    at its own offset when its follower (the owner's glob) finds its identity."""
    w = log.open("ab", buffering=0)
    w.write(b"a1\na2\n")
    first = Owner(state, log)
    first.step()
    first.crash()
    old = identity(log)
    w.write(b"a3\n")
    rotated = log.with_suffix(".log.1")
    log.rename(rotated)
    w.close()
    log.write_bytes(b"b1\n")
    second = Owner(state, log)
    second.step()
    second.crash()
    assert [line.data for line in second.stored] == [b"b1"]
    reg = Registry.load(state)
    offset = reg.offset(old)
    assert offset == 6
    f = FileFollower(str(rotated), open_plain, FilePosition(old, offset))
    assert [line.data for line in drain(f)] == [b"a3"]
    f.close()


def test_a_reused_inode_below_its_offset_is_read_from_its_start(state: Path, log: Path) -> None:
    """The registry's entry names this (dev, inode), left by a deleted file whose inode
    the new one got: a file shorter than the offset counts as truncated."""
    log.write_bytes(b"new file\n")
    reg = Registry.load(state)
    reg.update(str(log), FilePosition(identity(log), 4096))
    reg.save()
    owner = Owner(state, log)
    owner.step()
    owner.crash()
    assert [line.data for line in owner.stored] == [b"new file"]
    assert owner.follower.truncations == 1
