"""FileFollower on real files: rotation kinds, truncation, deletion, long and hostile lines."""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from pylog.files.identity import FileIdentity, FilePosition
from pylog.files.tail import (
    DEFAULT_MAX_LINE,
    DEFAULT_READ_SIZE,
    FileFollower,
    NotARegularFile,
    TailLine,
    open_plain,
)


def follower(
    path: Path,
    start: FilePosition | None = None,
    *,
    max_line: int = DEFAULT_MAX_LINE,
    read_size: int = DEFAULT_READ_SIZE,
) -> FileFollower:
    return FileFollower(str(path), open_plain, start, max_line=max_line, read_size=read_size)


def drain(f: FileFollower) -> list[TailLine]:
    """Poll until the follower has caught up with the file."""
    out = f.poll()
    while not f.caught_up:
        out += f.poll()
    return out


def read_all(
    path: Path, *, max_line: int = DEFAULT_MAX_LINE, read_size: int = DEFAULT_READ_SIZE
) -> list[TailLine]:
    """Everything in the file at ``path`` now, and the follower closed."""
    f = follower(path, max_line=max_line, read_size=read_size)
    return drain(f) + f.close()


def data(lines: list[TailLine]) -> list[bytes]:
    return [line.data for line in lines]


def identity(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


@pytest.fixture
def fds() -> Iterator[None]:
    """The test leaves no fd open."""
    before = open_fds()
    yield
    assert open_fds() == before


# -- new files, lines and offsets ---------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_a_file_that_is_not_there_yet_is_read_from_its_start_once_it_is(log: Path) -> None:
    f = follower(log)
    assert f.poll() == [] and f.error is None and f.position is None
    log.write_bytes(b"one\ntwo\n")
    lines = f.poll()
    ident = identity(log)
    assert lines == [TailLine(b"one", ident, 4), TailLine(b"two", ident, 8)]
    assert f.caught_up and f.position == FilePosition(ident, 8)
    with log.open("ab") as w:
        w.write(b"three\n")
    assert f.poll() == [TailLine(b"three", ident, 14)]
    assert f.poll() == []
    assert f.close() == [] and f.ended and f.poll() == []


@pytest.mark.usefixtures("fds")
def test_each_offset_is_just_after_its_line(log: Path) -> None:
    content = b"".join(b"x" * random.Random(i).randrange(0, 300) + b"\n" for i in range(500))
    log.write_bytes(content)
    lines = read_all(log, read_size=1000)
    assert b"".join(line.data + b"\n" for line in lines) == content
    ends = [i + 1 for i, byte in enumerate(content) if byte == ord("\n")]
    assert [line.offset for line in lines] == ends


@pytest.mark.usefixtures("fds")
def test_a_last_line_without_newline_is_held_until_it_ends_or_the_file_is_closed(
    log: Path,
) -> None:
    log.write_bytes(b"whole\nhal")
    f = follower(log)
    assert data(f.poll()) == [b"whole"]
    assert f.position == FilePosition(identity(log), 6)  # the held bytes are not read yet
    with log.open("ab") as w:
        w.write(b"f a line")
    assert f.poll() == []
    with log.open("ab") as w:
        w.write(b"\nlast, no newline")
    assert data(f.poll()) == [b"half a line"]
    assert f.poll() == []
    assert f.close() == [TailLine(b"last, no newline", identity(log), 34)]
    assert f.ended and f.close() == []


@pytest.mark.usefixtures("fds")
def test_hostile_bytes_pass_as_they_are(log: Path) -> None:
    lines = [b"nul\x00inside\x00", b"\xff\xfe\xc3(invalid utf-8\xed\xa0\x80", b"crlf\r", b"", b"\r"]
    log.write_bytes(b"\n".join(lines) + b"\n" + b"\x00\x00")
    f = follower(log)
    assert data(f.poll()) == lines
    assert data(f.close()) == [b"\x00\x00"]


# -- rename and create ----------------------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"a1\na2\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1", b"a2"]
    old = identity(log)
    w.write(b"a3\n")  # after the last poll, before the rotation
    log.rename(log.with_suffix(".log.1"))
    w.write(b"a4\nheld")  # the app still writes to the old file, then reopens
    w.close()
    w = log.open("ab", buffering=0)
    w.write(b"b1\n")
    new = identity(log)
    lines = f.poll()
    assert lines == [
        TailLine(b"a3", old, 9),
        TailLine(b"a4", old, 12),
        TailLine(b"held", old, 16),  # rotation takes the unfinished line
        TailLine(b"b1", new, 3),
    ]
    assert f.rotations == 1 and f.truncations == 0
    w.write(b"b2\n")
    assert f.poll() == [TailLine(b"b2", new, 6)]
    w.close()
    f.close()


@pytest.mark.usefixtures("fds")
def test_between_rename_and_create_the_old_file_is_still_followed(log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"a1\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1"]
    log.rename(log.with_suffix(".log.1"))
    w.write(b"a2\n")
    assert data(f.poll()) == [b"a2"]
    assert f.caught_up and not f.ended and f.error is None and f.rotations == 0
    w.write(b"a3\n")
    assert data(f.poll()) == [b"a3"]
    w.close()
    log.write_bytes(b"b1\n")
    assert data(f.poll()) == [b"b1"] and f.rotations == 1
    f.close()


@pytest.mark.usefixtures("fds")
def test_a_rotation_seen_when_the_read_budget_is_spent_is_finished_at_the_next_poll(
    log: Path,
) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"x" * 99 + b"\n")
    f = follower(log, read_size=250)
    assert len(f.poll()) == 1
    w.write(b"y" * 99 + b"\n")
    log.rename(log.with_suffix(".log.1"))
    w.write(b"z" * 99 + b"\n" + b"w" * 99 + b"\n")
    w.close()
    log.write_bytes(b"new\n")
    first = f.poll()
    assert not f.caught_up and f.rotations == 0
    rest = drain(f)
    assert data(first + rest) == [b"y" * 99, b"z" * 99, b"w" * 99, b"new"]
    assert f.rotations == 1
    f.close()


def numbered(i: int) -> bytes:
    return b"line %d %s" % (i, b"p" * (i % 50))


class RotatingWriter(threading.Thread):
    """Writes numbered lines in random slices (a line often spans two writes),
    rotating by rename and create, or by copytruncate, every ``per_file`` lines.
    Before each rotation it waits until the follower has read some of the
    file, and after it until the follower has noticed it: two rotations
    between two polls hide the middle file (rename), and a truncation of a
    file the follower has not read, or one grown back past its offset, is not
    one for it (copytruncate)."""

    def __init__(
        self,
        path: Path,
        lines: int,
        per_file: int,
        copytruncate: bool,
        started: threading.Event,
        noticed: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.lines, self.per_file = path, lines, per_file
        self.copytruncate, self.started, self.noticed = copytruncate, started, noticed
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            rng = random.Random(7)
            w: BinaryIO = self.path.open("ab", buffering=0)
            for first in range(0, self.lines, self.per_file):
                if first:
                    w = self._rotate(w, first // self.per_file)
                last = min(first + self.per_file, self.lines)
                chunk = b"".join(numbered(i) + b"\n" for i in range(first, last))
                pos = 0
                while pos < len(chunk):
                    n = rng.randrange(1, 400)
                    w.write(chunk[pos : pos + n])
                    pos += n
            w.close()
        except BaseException as exc:
            self.error = exc

    def _rotate(self, w: BinaryIO, n: int) -> BinaryIO:
        assert self.started.wait(30), "the follower read nothing"
        self.noticed.clear()
        rotated = self.path.with_name(f"{self.path.name}.{n}")
        if self.copytruncate:
            shutil.copyfile(self.path, rotated)
            os.truncate(self.path, 0)
        else:
            self.path.rename(rotated)
            w.close()
            w = self.path.open("ab", buffering=0)
        assert self.noticed.wait(30), "the follower did not see the rotation"
        self.started.clear()  # set again only by a read of the file after the rotation
        return w


def follow_rotations(log: Path, total: int, per_file: int, copytruncate: bool) -> list[bytes]:
    started, noticed = threading.Event(), threading.Event()
    log.touch()
    f = follower(log, read_size=4096)
    writer = RotatingWriter(log, total, per_file, copytruncate, started, noticed)
    writer.start()
    got: list[bytes] = []
    seen = 0
    while writer.is_alive():
        got += data(f.poll())
        if f.position is not None and f.position.offset > 0:
            started.set()
        if f.rotations + f.truncations != seen:
            seen = f.rotations + f.truncations
            noticed.set()
    got += data(drain(f) + f.close())
    writer.join()
    assert writer.error is None
    assert seen == (total - 1) // per_file
    return got


@pytest.mark.usefixtures("fds")
def test_rename_rotations_while_writing_lose_and_repeat_nothing(log: Path) -> None:
    got = follow_rotations(log, 3000, 700, copytruncate=False)
    assert got == [numbered(i) for i in range(3000)]


@pytest.mark.usefixtures("fds")
def test_copytruncate_while_writing_repeats_nothing_and_misses_only_what_the_copies_hold(
    log: Path,
) -> None:
    """Lines written after the last read before a copy are only in the copy, and a
    line half read then is taken as the fragment read (module doc)."""
    total = 3000
    got = follow_rotations(log, total, 700, copytruncate=True)
    in_copies = b"".join(p.read_bytes() for p in log.parent.glob("app.log.*")).splitlines()
    index = {numbered(i): i for i in range(total)}
    last = -1
    for line in got:
        i = index.get(line)
        if i is None:  # a fragment: the start of the next line, whose rest is in a copy
            assert numbered(last + 1).startswith(line) and numbered(last + 1) in in_copies
            continue
        assert i > last
        last = i
    whole = {index[line] for line in got if line in index}
    assert whole | {index[line] for line in in_copies} == set(range(total))
    assert numbered(total - 1) in got


# -- copytruncate -----------------------------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_copytruncate_starts_again_at_zero_and_is_counted(log: Path) -> None:
    w = log.open("ab", buffering=0)  # O_APPEND, as copytruncate requires of the writer
    w.write(b"a1\na2\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1", b"a2"]
    w.write(b"a3\nheld")
    assert data(f.poll()) == [b"a3"]
    shutil.copyfile(log, log.with_suffix(".log.1"))
    os.truncate(log, 0)
    w.write(b"b1\nb2\n")
    lines = f.poll()
    ident = identity(log)
    # The held line is taken (its bytes were read before the truncation).
    assert lines == [
        TailLine(b"held", ident, 13),
        TailLine(b"b1", ident, 3),
        TailLine(b"b2", ident, 6),
    ]
    assert f.truncations == 1 and f.rotations == 0
    os.truncate(log, 0)
    assert f.poll() == [] and f.truncations == 2
    w.write(b"c1\n")
    assert data(f.poll()) == [b"c1"] and f.truncations == 2
    w.close()
    f.close()


@pytest.mark.usefixtures("fds")
def test_lines_written_between_a_poll_and_the_copy_are_only_in_the_copy(log: Path) -> None:
    """What copytruncate costs a follower of the path, documented in tail's module doc."""
    w = log.open("ab", buffering=0)
    w.write(b"a1\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1"]
    w.write(b"a2\n")
    shutil.copyfile(log, log.with_suffix(".log.1"))
    os.truncate(log, 0)
    w.write(b"b\n")
    assert data(f.poll()) == [b"b"]
    assert log.with_suffix(".log.1").read_bytes() == b"a1\na2\n"
    # Truncated and grown back past the offset between two polls: the size does not
    # tell, the bytes before the offset ("b\n" gone) do.
    os.truncate(log, 0)
    w.write(b"c1\n")
    assert data(f.poll()) == [b"c1"] and f.truncations == 2
    w.close()
    f.close()
    w.close()
    f.close()


# -- deletion ---------------------------------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_a_deleted_file_is_read_to_its_end_and_the_follower_ends(log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"a1\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1"]
    w.write(b"a2\nlast")
    log.unlink()
    w.write(b" words\n")  # still written through the open fd
    w.write(b"tail")
    w.close()
    assert data(f.poll()) == [b"a2", b"last words", b"tail"]
    assert f.ended and f.caught_up and f.error is None
    assert f.poll() == [] and f.close() == []


@pytest.mark.usefixtures("fds")
def test_a_file_deleted_and_created_again_is_a_rotation(log: Path) -> None:
    log.write_bytes(b"a1\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1"]
    with log.open("ab") as w:
        w.write(b"a2\n")
    log.unlink()
    log.write_bytes(b"b1\n")
    assert data(f.poll()) == [b"a2", b"b1"] and f.rotations == 1 and not f.ended
    f.close()


# -- long lines and bounded memory ---------------------------------------------------------


@pytest.mark.usefixtures("fds")
@pytest.mark.parametrize(
    ("length", "pieces"),
    [(9, [9]), (10, [10]), (11, [10, 1]), (20, [10, 10]), (25, [10, 10, 5])],
)
def test_a_line_longer_than_max_line_is_cut_into_pieces(
    log: Path, length: int, pieces: list[int]
) -> None:
    line = bytes(ord("a") + i % 26 for i in range(length))
    log.write_bytes(line + b"\nnext\n")
    lines = read_all(log, max_line=10)
    assert [len(p.data) for p in lines[:-1]] == pieces
    assert b"".join(data(lines[:-1])) == line and lines[-1].data == b"next"
    assert [p.partial for p in lines] == [True] * (len(pieces) - 1) + [False, False]
    assert [p.offset for p in lines[:-1]] == [
        sum(pieces[: i + 1]) for i in range(len(pieces) - 1)
    ] + [length + 1]


@pytest.mark.usefixtures("fds")
def test_the_default_piece_is_dockerds_16k_chunk(log: Path) -> None:
    assert DEFAULT_MAX_LINE == 16 * 1024
    log.write_bytes(b"z" * 40_000 + b"\n")
    lines = read_all(log)
    assert [(len(p.data), p.partial) for p in lines] == [
        (16384, True),
        (16384, True),
        (40_000 - 2 * 16384, False),
    ]


@pytest.mark.usefixtures("fds")
def test_pieces_never_split_a_utf8_character(log: Path) -> None:
    text = "é€😀" * 50  # 2-, 3- and 4-byte characters
    log.write_bytes(text.encode() + b"\n")
    for limit in range(4, 20):
        lines = read_all(log, max_line=limit)
        assert all(len(p.data) <= limit for p in lines)
        assert "".join(p.data.decode() for p in lines) == text  # each piece decodes alone


@pytest.mark.usefixtures("fds")
def test_a_long_line_written_slowly_is_shipped_in_pieces_as_it_comes(log: Path) -> None:
    w = log.open("ab", buffering=0)
    f = follower(log, max_line=10)
    w.write(b"a" * 15)
    assert [(p.data, p.partial, p.offset) for p in f.poll()] == [(b"a" * 10, True, 10)]
    w.write(b"b" * 3)
    assert f.poll() == []
    w.write(b"c" * 10)
    assert [(p.data, p.partial) for p in f.poll()] == [(b"a" * 5 + b"b" * 3 + b"cc", True)]
    w.write(b"\n")
    assert [(p.data, p.partial, p.offset) for p in f.poll()] == [(b"c" * 8, False, 29)]
    w.write(b"d" * 12)
    w.close()
    assert [(p.data, p.partial) for p in f.poll()] == [(b"d" * 10, True)]
    assert [(p.data, p.partial) for p in f.close()] == [(b"dd", False)]


@pytest.mark.usefixtures("fds")
def test_a_poll_reads_at_most_read_size_bytes(log: Path) -> None:
    log.write_bytes(b"".join(b"%099d\n" % i for i in range(100)))  # 100 lines of 100 bytes
    f = follower(log, read_size=1000)
    seen: list[bytes] = []
    polls = 0
    while not f.caught_up:
        lines = f.poll()
        polls += 1
        assert len(lines) <= 10
        seen += data(lines)
    assert seen == [b"%099d" % i for i in range(100)] and polls in (10, 11)
    f.close()


@pytest.mark.usefixtures("fds")
def test_a_huge_line_without_newline_holds_at_most_max_line_bytes(log: Path) -> None:
    """A 4 MiB line with no newline comes out in pieces as it is read, never whole."""
    log.write_bytes(b"q" * (4 << 20))
    f = follower(log, read_size=1 << 16)
    total = 0
    while not f.caught_up:
        pieces = f.poll()
        assert sum(len(p.data) for p in pieces) <= (1 << 16) + DEFAULT_MAX_LINE
        total += sum(len(p.data) for p in pieces)
    assert total >= (4 << 20) - DEFAULT_MAX_LINE
    total += sum(len(p.data) for p in f.close())
    assert total == 4 << 20


# -- start position -----------------------------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_a_start_position_of_this_file_resumes_there(log: Path) -> None:
    log.write_bytes(b"a1\na2\na3\n")
    f = follower(log, FilePosition(identity(log), 3))
    assert data(f.poll()) == [b"a2", b"a3"] and f.truncations == 0
    f.close()


@pytest.mark.usefixtures("fds")
def test_a_start_beyond_the_end_of_this_file_is_a_truncation(log: Path) -> None:
    """A truncated file or a reused inode: read from 0."""
    log.write_bytes(b"a1\n")
    f = follower(log, FilePosition(identity(log), 1000))
    assert data(f.poll()) == [b"a1"] and f.truncations == 1
    f.close()


@pytest.mark.usefixtures("fds")
def test_a_start_position_of_another_file_reads_this_one_from_zero(log: Path) -> None:
    log.write_bytes(b"a1\na2\n")
    other = identity(log)._replace(inode=identity(log).inode + 1)
    f = follower(log, FilePosition(other, 3))
    assert data(f.poll()) == [b"a1", b"a2"] and f.truncations == 0
    f.close()


# -- what is not a regular file, and errors ---------------------------------------------------


@pytest.mark.usefixtures("fds")
def test_a_fifo_or_directory_is_never_read_and_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        f = follower(path)
        assert f.poll() == []
        assert isinstance(f.error, NotARegularFile) and not f.ended
        f.close()


@pytest.mark.usefixtures("fds")
def test_a_fifo_put_at_the_path_is_an_error_and_the_old_file_stays_followed(log: Path) -> None:
    w = log.open("ab", buffering=0)
    w.write(b"a1\n")
    f = follower(log)
    assert data(f.poll()) == [b"a1"]
    log.rename(log.with_suffix(".log.1"))
    os.mkfifo(log)
    w.write(b"a2\n")
    assert data(f.poll()) == [b"a2"] and isinstance(f.error, NotARegularFile)
    log.unlink()
    log.write_bytes(b"b1\n")
    assert data(f.poll()) == [b"b1"] and f.error is None and f.rotations == 1
    w.close()
    f.close()


@pytest.mark.usefixtures("fds")
def test_an_unreadable_path_is_an_error_not_an_exception(log: Path) -> None:
    def refuse(path: str) -> int:
        raise PermissionError(13, "Permission denied", path)

    f = FileFollower(str(log), refuse)
    assert f.poll() == [] and isinstance(f.error, PermissionError)
    f.close()


def test_max_line_and_read_size_must_be_positive(log: Path) -> None:
    with pytest.raises(ValueError):
        follower(log, max_line=0)
    with pytest.raises(ValueError):
        follower(log, read_size=0)


def test_a_file_truncated_and_regrown_past_the_offset_between_polls_is_read_again(
    tmp_path: Path,
) -> None:
    """copytruncate, then more written than was read before, all before the next poll:
    the size alone says the file grew; the bytes before the offset say it did not."""
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"old %d\n" % i for i in range(10)))
    f = follower(log)
    assert len(drain(f)) == 10
    with open(log, "r+b") as w:
        w.truncate(0)
        w.write(b"".join(b"new line %d\n" % i for i in range(20)))  # longer than before
    assert data(drain(f)) == [b"new line %d" % i for i in range(20)]
    assert f.truncations == 1
    with open(log, "ab") as w:
        w.write(b"appended\n")
    assert data(drain(f)) == [b"appended"]  # growth alone is no truncation
    assert f.truncations == 1
