import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pylog.framing import FrameDecoder, encode_entry
from pylog.models import Entry
from pylog.wire.entry_pb2 import LogEntry

from ..helpers import BufferedDecoder, encode_entries


def frame(msg: LogEntry) -> bytes:
    body = msg.SerializeToString()
    return struct.pack(">I", len(body)) + body


ENTRIES = [
    Entry("stdout", 1, b"one"),
    Entry("stderr", 2, b"two"),
    Entry("stdout", 3, b""),
    Entry("stdout", 4, "unicod\u00e9 \u2603".encode()),
]


def test_decodes_every_frame_in_a_chunk() -> None:
    dec = BufferedDecoder()
    assert dec.feed(encode_entries(ENTRIES)) == ENTRIES
    assert dec.errors.total() == 0
    assert dec.pending == 0


def test_any_chunking_gives_the_same_entries() -> None:
    data = encode_entries(ENTRIES * 10)
    for step in (1, 2, 3, 5, 7, 64):
        dec = BufferedDecoder()
        out = []
        for i in range(0, len(data), step):
            out += dec.feed(data[i : i + step])
        assert out == ENTRIES * 10


def test_partial_chunks_are_incomplete_until_the_last() -> None:
    chunk = LogEntry(source="stdout", time_nano=5, line=b"a" * 16384, partial=True)
    chunk.partial_log_metadata.id = "x"
    chunk.partial_log_metadata.ordinal = 1
    last = LogEntry(source="stdout", time_nano=5, line=b"tail", partial=True)
    last.partial_log_metadata.id = "x"
    last.partial_log_metadata.ordinal = 2
    last.partial_log_metadata.last = True
    out = BufferedDecoder().feed(frame(chunk) + frame(last))
    assert [e.complete for e in out] == [False, True]
    assert out[0].line == b"a" * 16384


def test_corrupt_body_is_counted_and_skipped_in_place() -> None:
    garbage = b"\xff\xff\xff\xff\xff"
    data = encode_entries(ENTRIES[:1]) + struct.pack(">I", len(garbage)) + garbage
    data += encode_entries(ENTRIES[1:])
    dec = BufferedDecoder()
    assert dec.feed(data) == ENTRIES
    assert dec.errors.corrupt == 1


def test_unknown_source_is_corrupt() -> None:
    data = frame(LogEntry(source="stdin", time_nano=1, line=b"x")) + encode_entries(ENTRIES)
    dec = BufferedDecoder()
    assert dec.feed(data) == ENTRIES
    assert dec.errors.corrupt == 1


def test_oversize_length_resyncs_to_the_next_frame() -> None:
    dec = BufferedDecoder(max_frame=1024)
    data = encode_entries(ENTRIES[:1]) + b"\x7f\xff\xff\xffjunkjunk" + encode_entries(ENTRIES[1:])
    assert dec.feed(data) == ENTRIES
    assert dec.errors.oversize == 1
    assert dec.errors.skipped_bytes >= 12


def test_frame_over_the_bound_is_dropped_not_buffered() -> None:
    dec = BufferedDecoder(max_frame=1024)
    big = encode_entry("stdout", 1, b"x" * 4096)
    out = dec.feed(big + encode_entries(ENTRIES))
    assert out == ENTRIES
    assert dec.errors.oversize == 1
    assert dec.pending < 1024


def test_truncated_stream_is_counted_at_close() -> None:
    data = encode_entries(ENTRIES)
    dec = BufferedDecoder()
    assert dec.feed(data[:-2]) == ENTRIES[:-1]
    dec.close()
    assert dec.errors.truncated == 1


def test_encode_entry_round_trips() -> None:
    data = encode_entry("stderr", 42, b"line\n")
    assert BufferedDecoder().feed(data) == [Entry("stderr", 42, b"line\n")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=1, max_value=512))
def test_garbage_never_crashes_hangs_or_grows(garbage: bytes, step: int) -> None:
    dec = BufferedDecoder(max_frame=1 << 16)
    valid = encode_entries(ENTRIES)
    data = garbage + valid
    out = []
    for i in range(0, len(data), step):
        out += dec.feed(data[i : i + step])
        assert dec.pending <= (1 << 16) + 4
    dec.close()
    assert all(e.source in ("stdout", "stderr") for e in out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["stdout", "stderr"]),
            st.integers(0, 2**62),
            st.binary(max_size=300),
            st.booleans(),
        )
    )
)
def test_valid_streams_decode_exactly(items: list[tuple[str, int, bytes, bool]]) -> None:
    """Whatever mix of streams and chunks a read holds, the batch decoder (and
    its frame-by-frame fallback) gives exactly the entries dockerd wrote."""
    entries = [Entry(s, t, line, complete) for s, t, line, complete in items]
    dec = BufferedDecoder()
    assert dec.feed(encode_entries(entries)) == entries
    assert dec.errors.total() == 0


def test_long_frames_and_one_stream_batches() -> None:
    entries = [Entry("stderr", i, bytes([65 + i % 26]) * (i * 9_000)) for i in range(12)]
    batch, used = FrameDecoder().decode(encode_entries(entries))
    assert batch.sources == "stderr" and not batch.incomplete
    assert batch.entries() == entries
    assert used == len(encode_entries(entries))


def test_one_corrupt_frame_costs_only_itself() -> None:
    body = b"\x0a\x06stdout\x1a\xff"  # line length runs past the body
    bad = struct.pack(">I", len(body)) + body
    dec = BufferedDecoder()
    data = encode_entries(ENTRIES[:2]) + bad + encode_entries(ENTRIES[2:])
    assert dec.feed(data) == ENTRIES
    assert dec.errors.corrupt == 1


def test_resync_mode_starts_at_the_first_whole_frame() -> None:
    data = encode_entries(ENTRIES)
    dec = BufferedDecoder(resync=True)
    assert dec.feed(data[5:]) == ENTRIES[1:]
    assert dec.errors.skipped_bytes > 0
    dec = BufferedDecoder(resync=True)
    assert dec.feed(data) == ENTRIES
    assert dec.errors.skipped_bytes == 0


def _decode_all(data: bytes) -> tuple[list[Entry], int]:
    batch, used = FrameDecoder().decode(data)
    return batch.entries(), used


@pytest.fixture
def columns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything but the column parse decodes."""

    def refuse(*args: object) -> None:
        raise AssertionError("the entry path was used")

    monkeypatch.setattr(FrameDecoder, "_decode_run", refuse)
    monkeypatch.setattr(FrameDecoder, "_decode_frames", refuse)


@pytest.mark.usefixtures("columns_only")
def test_blank_lines_keep_the_columns_in_step() -> None:
    # proto3 leaves an empty line out of the frame: the column parse must still
    # give every entry its own line.
    entries = [
        Entry("stdout", 1, b""),
        Entry("stdout", 2, b"a"),
        Entry("stdout", 3, b""),
        Entry("stdout", 4, b""),
        Entry("stdout", 5, b"b"),
        Entry("stdout", 6, b""),
    ]
    data = encode_entries(entries)
    assert _decode_all(data) == (entries, len(data))


def test_mixed_sources_and_zero_times_decode_in_order() -> None:
    # time 0 is left out of a frame too: the time column is then short, and the
    # entry-by-entry path takes over.
    entries = [Entry("stderr" if i % 3 else "stdout", i * 7, b"line %d" % i) for i in range(50)]
    data = encode_entries(entries)
    assert _decode_all(data) == (entries, len(data))


@pytest.mark.usefixtures("columns_only")
def test_the_column_parse_alone_decodes_plain_runs() -> None:
    entries = [Entry("stdout", 10 + i, b"x" * (i % 300)) for i in range(1000)]
    data = encode_entries(entries)
    assert _decode_all(data) == (entries, len(data))
    cut = data[:-7]  # a frame cut at the end stays for the next read
    got, used = _decode_all(cut)
    assert got == entries[:-1] and used == len(data) - len(encode_entries(entries[-1:]))


def test_wanted_is_the_whole_length_of_the_cut_frame() -> None:
    decoder = FrameDecoder(max_frame=1000)
    data = encode_entries([Entry("stdout", 1, b"a\n"), Entry("stdout", 2, b"b" * 500)])
    first = len(encode_entries([Entry("stdout", 1, b"a\n")]))
    for cut in (first + 2, first + 4, len(data) - 1):
        _, used = decoder.decode(data[:cut])
        assert used == first
        assert decoder.wanted(data[:cut], used) == (4 if cut < first + 4 else len(data) - first)
    _, used = decoder.decode(data)
    assert decoder.wanted(data, used) == 0


def test_nothing_is_wanted_past_the_bound_or_while_resynchronising() -> None:
    data = encode_entries([Entry("stdout", 1, b"c" * 2000)])
    assert FrameDecoder(max_frame=1000).wanted(data[:100], 0) == 0
    assert FrameDecoder(max_frame=4000, resync=True).wanted(data[:100], 0) == 0
