import os
import threading
from pathlib import Path

import pytest
from pylog import ingest
from pylog.framing import FrameDecoder, encode_entries
from pylog.ingest import FifoReader
from pylog.models import Entry


def _read_all(path: Path) -> tuple[FifoReader, list[Entry], FrameDecoder, threading.Event]:
    decoder = FrameDecoder()
    got: list[Entry] = []
    ended = threading.Event()

    def on_data(data: bytes, final: bool) -> int:
        batch, used = decoder.decode(data, final=final)
        got.extend(batch.entries())
        return used

    reader = FifoReader(path, on_data, lambda eof: ended.set())
    return reader, got, decoder, ended


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
