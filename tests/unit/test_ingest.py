import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pylog import ingest
from pylog.framing import FrameDecoder
from pylog.ingest import FifoReader
from pylog.models import Entry

from ..helpers import encode_entries


def _read_all(
    path: Path, decoder: FrameDecoder | None = None, seen: list[int] | None = None, **kw: Any
) -> tuple[FifoReader, list[Entry], FrameDecoder, threading.Event]:
    """A reader of ``path`` decoding into a list; ``seen`` collects the size of
    each batch of data handed over, ``kw`` goes to FifoReader."""
    dec = decoder or FrameDecoder()
    got: list[Entry] = []
    ended = threading.Event()

    def on_data(data: bytes, final: bool) -> tuple[int, int]:
        if seen is not None:
            seen.append(len(data))
        batch, used = dec.decode(data, final=final)
        got.extend(batch.entries())
        return used, dec.wanted(data, used)

    reader = FifoReader(path, on_data, lambda eof: ended.set(), **kw)
    return reader, got, dec, ended


def _fifo(tmp_path: Path) -> tuple[Path, int]:
    """A FIFO and a writer end opened read-write, the way dockerd opens it."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path, os.open(path, os.O_RDWR)


def _write_all_and_close(fd: int, data: bytes) -> threading.Thread:
    """Write ``data`` with blocking writes on a thread of its own, then hang up."""

    def run() -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_frame_finished_just_before_the_writer_hangs_up_is_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader peeks half a frame; the writer then writes the rest and closes
    before the reader checks for the hang-up. The frame must still be read whole."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR)
    entries = [Entry("stdout", 1, b"first\n"), Entry("stdout", 2, b"last line\n")]
    data = encode_entries(entries)
    cut = len(data) - 5
    real = ingest._writers_gone
    finished: list[bool] = []

    def writer_finishes_first(fd: int) -> bool:
        if not finished:
            finished.append(True)
            os.write(writer, data[cut:])
            os.close(writer)
        return real(fd)

    monkeypatch.setattr(ingest, "_writers_gone", writer_finishes_first)
    reader, got, decoder, ended = _read_all(path)
    os.write(writer, data[:cut])
    reader.start()
    assert ended.wait(10)
    assert finished
    assert got == entries
    assert decoder.errors.truncated == 0


def test_a_stream_cut_mid_frame_is_counted_at_eof(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR)
    reader, got, decoder, ended = _read_all(path)
    data = encode_entries([Entry("stdout", 1, b"whole\n"), Entry("stdout", 2, b"cut\n")])
    os.write(writer, data[:-3])
    reader.start()
    os.close(writer)
    assert ended.wait(10)
    assert got == [Entry("stdout", 1, b"whole\n")]
    assert decoder.errors.truncated == 1


def _lines(n: int, width: int) -> list[Entry]:
    return [Entry("stdout", i, b"%06d" % i + b"x" * (width - 7) + b"\n") for i in range(n)]


@pytest.mark.timeout(60)
def test_frames_longer_than_the_peek_pipe_are_stored(tmp_path: Path) -> None:
    """Past the pipe quota the peek pipe gets 8 KiB and nothing grows: dockerd's
    16 KiB frames can never be peeked whole, and must still all be read."""
    path, writer = _fifo(tmp_path)
    reader, got, decoder, ended = _read_all(path, peek_size=8192, grow_to=0)
    assert reader.peek_size == 8192
    entries = _lines(50, 16 * 1024)
    done = _write_all_and_close(writer, encode_entries(entries))
    reader.start()
    assert ended.wait(30), "the reader never reached EOF"
    done.join(5)
    assert not done.is_alive(), "the writer is still blocked"
    assert got == entries
    assert decoder.errors.total() == 0


@pytest.mark.timeout(60)
def test_a_frame_just_under_max_frame_gets_through_a_smaller_pipe(tmp_path: Path) -> None:
    path, writer = _fifo(tmp_path)
    max_frame = 300_000
    reader, got, decoder, ended = _read_all(path, FrameDecoder(max_frame), grow_to=0)
    assert reader.pipe_size < max_frame
    entries = [Entry("stdout", 1, b"before\n")]
    body = len(encode_entries([Entry("stdout", 2, b"")])) - 4
    # The line field adds its tag and a three-byte length to the empty entry.
    entries.append(Entry("stdout", 2, b"y" * (max_frame - body - 4)))
    entries.append(Entry("stdout", 3, b"after\n"))
    assert len(encode_entries(entries[1:2])) == 4 + max_frame
    data = encode_entries(entries)
    done = _write_all_and_close(writer, data)
    reader.start()
    assert ended.wait(30)
    done.join(5)
    assert got == entries
    assert decoder.errors.total() == 0


@pytest.mark.timeout(60)
def test_a_frame_over_max_frame_is_counted_and_skipped_without_buffering_it(
    tmp_path: Path,
) -> None:
    path, writer = _fifo(tmp_path)
    max_frame = 100_000
    seen: list[int] = []
    reader, got, decoder, ended = _read_all(path, FrameDecoder(max_frame), seen, grow_to=0)
    before, after = Entry("stdout", 1, b"before\n"), Entry("stdout", 3, b"after\n")
    huge = Entry("stdout", 2, b"z" * (4 * max_frame))
    done = _write_all_and_close(writer, encode_entries([before, huge, after]))
    reader.start()
    assert ended.wait(30)
    done.join(5)
    assert got == [before, after]
    assert decoder.errors.oversize == 1
    assert max(seen) <= max_frame + reader.pipe_size


def _thread_cpu_seconds(native_id: int) -> float:
    """utime + stime of one of this process's threads."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(60)
def test_waiting_for_the_rest_of_a_frame_does_not_spin(tmp_path: Path) -> None:
    path, writer = _fifo(tmp_path)
    reader, got, _, ended = _read_all(path)
    entries = [Entry("stdout", 1, b"whole\n"), Entry("stdout", 2, b"finished later\n")]
    data = encode_entries(entries)
    cut = len(encode_entries(entries[:1])) + 4 + 3  # a header and three bytes of body
    os.write(writer, data[:cut])
    reader.start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == entries[:1]
    native_id = reader._thread.native_id
    assert native_id is not None
    cpu = _thread_cpu_seconds(native_id)
    time.sleep(1)
    cpu = _thread_cpu_seconds(native_id) - cpu
    os.write(writer, data[cut:])
    os.close(writer)
    assert ended.wait(10)
    assert got == entries
    assert cpu < 0.2, f"the reader used {cpu:.2f} s of CPU in 1 s of waiting"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fds_per_reader(tmp_path: Path) -> None:
    readers: list[tuple[FifoReader, int]] = []
    counts = [_open_fds()]
    for i in range(3):
        path = tmp_path / f"fifo{i}"
        os.mkfifo(path)
        writer = os.open(path, os.O_RDWR)
        counts.append(_open_fds())
        reader = _read_all(path)[0]
        reader.start()
        readers.append((reader, writer))
        counts.append(_open_fds())
    # The first reader may open the process's one /dev/null sink.
    assert counts[4] - counts[3] == ingest.FDS_PER_READER
    assert counts[6] - counts[5] == ingest.FDS_PER_READER
    assert ingest.FDS_PER_READER <= 4
    for reader, writer in readers:
        os.close(writer)
        assert reader.join(10)
    sink_opened = counts[2] - counts[1] - ingest.FDS_PER_READER
    assert _open_fds() == counts[0] + sink_opened


def test_halt_after_the_end_writes_to_no_reused_descriptor(tmp_path: Path) -> None:
    path, writer = _fifo(tmp_path)
    reader, _, _, ended = _read_all(path)
    reader.start()
    os.close(writer)
    assert ended.wait(10) and reader.join(10)
    # The reader's descriptors are closed: the next files opened may get their numbers.
    victims = [os.open(tmp_path / f"file{i}", os.O_RDWR | os.O_CREAT) for i in range(8)]
    try:
        reader.halt()
        assert all(os.fstat(fd).st_size == 0 for fd in victims)
    finally:
        for fd in victims:
            os.close(fd)


@pytest.mark.timeout(60)
def test_frames_written_one_by_one_are_read_many_at_a_time(tmp_path: Path) -> None:
    """dockerd writes each frame with its own writes; a reader that looked again
    at once after each read would hand them over a few at a time."""
    path, writer = _fifo(tmp_path)
    seen: list[int] = []
    reader, got, _, ended = _read_all(path, seen=seen)
    assert reader._gather_below > 0  # a default FIFO is large enough to gather in
    frames = [encode_entries([Entry("stdout", i, b"line %d\n" % i)]) for i in range(2000)]
    reader.start()
    began = time.monotonic()
    for frame in frames:  # 2,000 writes spread over 0.2 s or more
        os.write(writer, frame)
        time.sleep(0.0001)
    elapsed_ms = (time.monotonic() - began) * 1000
    os.close(writer)
    assert ended.wait(10)
    assert len(got) == 2000
    # Each read that found little is followed by a pause of 1 ms (at most one
    # read a millisecond while the writes last); without it, about one read a write.
    assert len(seen) <= elapsed_ms + 10, f"{len(seen)} reads in {elapsed_ms:.0f} ms"


def test_a_small_fifo_is_read_without_gathering(tmp_path: Path) -> None:
    """In a FIFO that could not grow (the per-user pipe quota), a pause could fill it."""
    path, writer = _fifo(tmp_path)
    ingest._set_pipe_size(writer, 16 << 10)
    reader, _, _, _ = _read_all(path)
    try:
        assert reader.pipe_size < 64 << 10 and reader._gather_below == 0
    finally:
        reader.halt()
        reader._close_fds()
        os.close(writer)
