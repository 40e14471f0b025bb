"""FrameDecoder's three decoders agree on every stream dockerd can write.

``decode`` tries the column decode, then the run decode, and falls back to the
frame-by-frame decode; each fast path must give exactly what the careful one gives
(entries, completeness and bytes used) wherever it does not decline. The streams
are what dockerd writes: stdout and stderr lines, empty ones, any bytes, lines over
16 KiB cut into chunks with partial metadata, a last line without a newline, all
read back in arbitrary cuts with a frame left over between reads.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pylog.framing import FrameDecoder
from pylog.models import Entry
from pylog.wire.entry_pb2 import LogEntry

CHUNK = 16 * 1024  # dockerd's cut of a long line


def frame(msg: LogEntry) -> bytes:
    body = msg.SerializeToString()
    return struct.pack(">I", len(body)) + body


def long_line(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


LINES = st.one_of(
    st.just(b""),
    st.binary(max_size=80),
    st.binary(max_size=80).map(lambda b: b"\x0a\x06stdout" + b + b"\x20\x01"),  # lookalikes
    st.builds(long_line, st.integers(CHUNK + 1, 3 * CHUNK + 7), st.integers(0, 2**32)),
)


@st.composite
def dockerd_stream(draw: st.DrawFn) -> tuple[bytes, list[Entry]]:
    """Framed LogEntries as dockerd writes them, and the entries they decode to."""
    data: list[bytes] = []
    want: list[Entry] = []
    lines = draw(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), LINES), max_size=12))
    t = draw(st.integers(-(10**9), 2**62))
    for n, (source, line) in enumerate(lines):
        t += draw(st.integers(0, 10**6))
        if len(line) <= CHUNK:
            data.append(frame(LogEntry(source=source, time_nano=t, line=line)))
            want.append(Entry(source, t, line))
            continue
        chunks = [line[i : i + CHUNK] for i in range(0, len(line), CHUNK)]
        for ordinal, chunk in enumerate(chunks, 1):
            last = ordinal == len(chunks)
            msg = LogEntry(source=source, time_nano=t, line=chunk, partial=True)
            msg.partial_log_metadata.id = f"id{n}"
            msg.partial_log_metadata.ordinal = ordinal
            msg.partial_log_metadata.last = last
            data.append(frame(msg))
            want.append(Entry(source, t, chunk, last))
    if draw(st.booleans()):  # the container exited mid-line
        source = draw(st.sampled_from(["stdout", "stderr"]))
        line = draw(st.binary(min_size=1, max_size=40))
        msg = LogEntry(source=source, time_nano=t + 1, line=line, partial=True)
        data.append(frame(msg))
        want.append(Entry(source, t + 1, line, False))
    return b"".join(data), want


def decode_all_ways(buf: bytes, final: bool) -> tuple[list[Entry], int]:
    """The frame-by-frame decode of ``buf``, after checking the fast paths against it."""
    careful, used = FrameDecoder()._decode_frames(buf, final)
    for fast in (FrameDecoder()._decode_columns, FrameDecoder()._decode_run):
        got = fast(buf, final)
        if got is not None:
            batch, fast_used = got
            assert (batch.entries(), fast_used) == (careful, used), fast.__name__
    return careful, used


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(dockerd_stream(), st.lists(st.integers(0, 4 * CHUNK), max_size=6))
def test_the_three_decoders_agree(stream: tuple[bytes, list[Entry]], cuts: list[int]) -> None:
    data, want = stream
    ends = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    got: list[Entry] = []
    left = b""
    start = 0
    for end in ends:
        buf = left + data[start:end]
        start = end
        entries, used = decode_all_ways(buf, final=end == len(data))
        got += entries
        left = buf[used:]
    assert left == b""
    assert got == want
