"""The compiled fast path (pylog._speedups) against its Python twins, which specify it.

Every input goes through both; they must agree exactly: the same marks (or the
same None) from the scan, the same Kafka records from the values. Inputs are
records as pylog stores them and the same records damaged in every way the
state directory may hold them (cut, bytes flipped, dates that do not exist,
odd escapes).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylog import speedups
from pylog.driver import whole_records_reference
from pylog.framing import FrameDecoder, decode_whole_reference
from pylog.models import Entry
from pylog.readback import plain_frames_reference
from pylog.shipper.schema import plain_values_reference
from pylog.store.records import (
    PLAIN_MARK,
    RecordEncoder,
    encode_lines_reference,
    scan_plain_reference,
)
from pylog.wire.entry_pb2 import LogEntry, PartialLogEntryMetadata

compiled: Any = speedups.compiled

HEADERS = ([("stream", b"stdout")], [("stream", b"stderr")])
PARTS: tuple[Any, ...] = (
    (b'{"v":1,"message":"', b'{"v":1,"m":"'),
    (b'","stream":"stdout","time":"', b'","s":"stderr","t":"'),
    b'","container":{"id":"c"}}',
    HEADERS,
)


def test_the_extension_is_built() -> None:
    """The test environment is installed as documented, so the compiled twins run."""
    assert speedups.COMPILED and compiled is not None


def both(batch: list[bytes]) -> Any:
    want = scan_plain_reference(batch)
    got = compiled.scan_plain(batch)
    assert got == want, batch
    if want is not None:
        marks = want[0]
        assert compiled.plain_values(batch, marks, *PARTS) == plain_values_reference(
            batch, marks, *PARTS
        )
        assert compiled.plain_frames(batch, marks) == plain_frames_reference(batch, marks)
    return want


texts = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=40).map(str.encode),
    st.lists(
        st.sampled_from([b"a", b"\\", b"n", b'"', b"\n", b"\t", b"<", b"\xff", b"\xe2\x82"]),
        max_size=12,
    ).map(b"".join),
)
times = st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.integers(min_value=0, max_value=10**6).map(lambda s: s * 10**9),  # no fraction
    st.integers(min_value=0, max_value=10**9).map(lambda s: 1_700_000_000 * 10**9 + s * 10),
)
entries = st.builds(Entry, st.sampled_from(["stdout", "stderr"]), times, texts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, min_size=1, max_size=6), st.booleans())
def test_stored_records_agree(batch: list[Entry], attrs: bool) -> None:
    encoder = RecordEncoder({"path": "/x"} if attrs else None)
    both([encoder.encode(e) for e in batch])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries, st.data())
def test_damaged_records_agree(entry: Entry, data: st.DataObject) -> None:
    raw = bytearray(RecordEncoder().encode(entry))
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[pos] = data.draw(st.sampled_from(b'"\\n\n0123456789.:-TZ}{x'))
        elif kind == "cut":
            del raw[pos:]
        elif kind == "insert":
            raw[pos:pos] = data.draw(st.sampled_from([b"\\", b'"', b"\n", b"0", b".", b"\\n"]))
        elif raw:
            del raw[pos]
    ok = RecordEncoder().encode(Entry("stdout", 1, b"ok\n"))
    both([bytes(raw)])
    both([ok, bytes(raw)])
    both([bytes(raw), ok])


@pytest.mark.parametrize(
    "time",
    [
        "2024-02-29T23:59:59Z",
        "2023-02-29T00:00:00Z",  # no such day
        "2023-04-31T00:00:00Z",
        "0000-01-01T00:00:00Z",  # no year 0
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:61Z",  # leap seconds, as strptime takes them
        "2023-01-01T00:00:62Z",
        "2023-01-01T24:00:00Z",
        "2023-01-01T00:60:00Z",
        "2023-13-01T00:00:00Z",
        "2023-01-01T00:00:00.Z",
        "2023-01-01T00:00:00.1234567890Z",
        "2023-01-01T00:00:00.123456789Z",
        "2023-01-01T00:00:00.5Z",
        "2023-01-01 00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "1900-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
    ],
)
def test_times_agree(time: str) -> None:
    raw = b'{"log":"x\\n","stream":"stdout","time":"' + time.encode() + b'"}\n'
    both([raw])


@pytest.mark.parametrize(
    "raw",
    [
        # a backslash, then n
        b'{"log":"x\\\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\\\\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"\\n","stream":"stderr","time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdin","time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdout","attrs":{},"time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdout","attrs":{"a":"}"},"time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdout","attrs":{"a":"b"}x,"time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdout","attrs":{"a":"\n"},"time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}',
        b'{"log":"x\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n\n',
        b'{"log":"x\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"} \n',
        b'{"log":"x\\n"}\n',
        b'{"log":"x\\n","stream":"stdout","time":"Z"}\n',
        b"",
        b"\n",
    ],
)
def test_edge_records_agree(raw: bytes) -> None:
    both([raw])
    both([raw, raw])


def test_a_record_without_its_newline_is_plain_only_at_the_end() -> None:
    raw = b'{"log":"x\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}'
    assert both([raw + b"\n", raw]) is not None
    assert both([raw, raw + b"\n"]) is None


def test_values_and_marks_as_specified() -> None:
    raw = b'{"log":"a\\"b\\n","stream":"stderr","time":"2023-11-14T22:13:20.5Z"}\n'
    scanned = both([raw])
    assert scanned is not None
    marks, longest = scanned
    assert longest == len(b'a\\"b')
    text_end, time_start, stream, frac_len, ms = PLAIN_MARK.unpack(marks)
    assert (raw[8:text_end], stream, frac_len) == (b'a\\"b', 1, 1)
    assert raw[time_start : time_start + 19] == b"2023-11-14T22:13:20"
    assert ms == 1_700_000_000_500
    ((value, headers, ts),) = compiled.plain_values([raw], marks, *PARTS)
    assert value == (
        b'{"v":1,"m":"a\\"b","s":"stderr","t":"2023-11-14T22:13:20.500000000Z",'
        b'"container":{"id":"c"}}'
    )
    assert headers is HEADERS[1] and ts == 1_700_000_000_500


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_marks_that_do_not_fit_the_batch_are_refused(impl: str) -> None:
    raw = b'{"log":"x\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n'
    scanned = scan_plain_reference([raw])
    assert scanned is not None
    fn = compiled.plain_values if impl == "compiled" else plain_values_reference
    frames = compiled.plain_frames if impl == "compiled" else plain_frames_reference
    with pytest.raises(ValueError, match="marks do not match"):
        fn([raw, raw], scanned[0], *PARTS)
    with pytest.raises(ValueError, match="marks do not match"):
        frames([raw, raw], scanned[0])
    if impl == "compiled":
        bad = PLAIN_MARK.pack(10_000, 20_000, 0, 0, 0)
        with pytest.raises(ValueError, match="marks do not match"):
            fn([raw], bad, *PARTS)
        with pytest.raises(ValueError, match="marks do not match"):
            frames([raw], bad)


line_bytes = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=30).map(str.encode),
    st.lists(
        st.sampled_from(
            [
                b"a",
                b'"',
                b"\\",
                b"\n",
                b"\r",
                b"\t",
                b"\b",
                b"\f",
                b"\x00",
                b"\x1f",
                b"\x7f",
                b"<&>",
                b"\xe2\x80\xa8",
                b"\xff",
                b"\xc0\x80",
                b"\xed\xa0\x80",
                b"\xf0\x9f\x98",
                b"\xf4\x90\x80\x80",
                "\u00e9".encode(),
            ]
        ),
        max_size=10,
    ).map(b"".join),
)
int64_times = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=10**9).map(lambda s: 1_700_000_000 * 10**9 + s * 10),
    st.sampled_from([0, -1, 10**9, -(10**9), 2**63 - 1, -(2**63)]),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), int64_times, line_bytes), max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_ingest_records_agree(
    rows: list[tuple[str, int, bytes]], one_source: bool, attrs: bool
) -> None:
    """encode_lines against its twin, and both against RecordEncoder.encode per line."""
    encoder = RecordEncoder({"tag": 'x"y', "path": "/p"} if attrs else None)
    lines = [line for _, _, line in rows]
    times = [t for _, t, _ in rows]
    sources: str | list[str] = [s for s, _, _ in rows]
    if one_source:
        sources = "stderr"
        rows = [("stderr", t, line) for _, t, line in rows]
    tails = encoder.whole_tails
    want = encode_lines_reference(lines, times, sources, tails)
    assert compiled.encode_lines(lines, times, sources, tails) == want
    assert want == b"".join(encoder.encode(Entry(s, t, line)) for s, t, line in rows)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_encode_lines_leaves_what_it_cannot_hold_to_the_caller(impl: str) -> None:
    fn = compiled.encode_lines if impl == "compiled" else encode_lines_reference
    tails = RecordEncoder().whole_tails
    assert fn([b"a"], [2**63], "stdout", tails) is None
    assert fn([b"a"], [-(2**63) - 1], "stdout", tails) is None
    assert fn([b"a", b"b"], [1, 2], ["stdout", "journal"], tails) is None
    assert fn([], [], "stdout", tails) == b""


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


log_entries = st.builds(
    lambda source, time_ns, line, partial, last: LogEntry(
        source=source,
        time_nano=time_ns,
        line=line,
        partial=partial,
        partial_log_metadata=PartialLogEntryMetadata(last=last, id="i", ordinal=1)
        if last
        else None,
    ),
    st.sampled_from(["stdout", "stderr", "stdout", "", "journal"]),
    int64_times,
    st.binary(max_size=40),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([False, False, False, True]),
)


def _decode_agrees(buf: bytes, max_frame: int, final: bool) -> None:
    want = decode_whole_reference(buf, max_frame, final)
    for tails in (RecordEncoder().whole_tails, RecordEncoder({"tag": "t"}).whole_tails):
        fused = whole_records_reference(buf, max_frame, final, tails)
        assert compiled.whole_records(buf, max_frame, final, tails) == fused, buf
        assert (fused is None) == (want is None)
    if want is None:
        return
    # What the twins accept, protobuf's parse (the careful path) reads alike.
    entries, used = FrameDecoder(max_frame)._decode_frames(buf, final)
    lines, times, sources, want_used = want
    assert used == want_used
    assert [(e.source, e.time_ns, e.line, e.complete) for e in entries] == [
        (sources if isinstance(sources, str) else sources[i], t, line, True)
        for i, (line, t) in enumerate(zip(lines, times, strict=True))
    ]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(log_entries, max_size=6), st.integers(0, 8), st.booleans(), st.data())
def test_ingest_frames_agree(
    entries: list[Any], cut: int, final: bool, data: st.DataObject
) -> None:
    buf = b"".join(_frame(e.SerializeToString()) for e in entries)
    _decode_agrees(buf, 1 << 20, final)
    _decode_agrees(buf[: max(0, len(buf) - cut)], 1 << 20, final)
    _decode_agrees(buf, 16, final)
    damaged = bytearray(buf)
    for _ in range(data.draw(st.integers(1, 3))):
        if damaged:
            pos = data.draw(st.integers(0, len(damaged) - 1))
            damaged[pos] = data.draw(st.integers(0, 255))
    _decode_agrees(bytes(damaged), 1 << 20, final)


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x06stdout\x10\x01\x1a\x01a",  # as dockerd writes it
        b"\x1a\x01a\x10\x01\x0a\x06stderr",  # any order
        b"\x0a\x06stdout",  # empty line, time 0
        b"\x0a\x06stdout\x20\x00",  # partial false, written out
        b"\x0a\x06stdout\x10" + b"\xff" * 9 + b"\x01",  # time -1 (ten bytes)
        b"\x0a\x06stdout\x10" + b"\xff" * 9 + b"\x02",  # above 64 bits: refused
        b"\x0a\x06stdout\x10" + b"\xff" * 10,  # cut varint
        b"\x0a\x06stdout\x0a\x06stdout",  # a field twice
        b"\x0a\x06stdout\x20\x01",  # partial
        b"\x0a\x06stdout\x2a\x00",  # metadata
        b"\x0a\x06stdout\x38\x01",  # an unknown field
        b"\x0a\x06stdin_",
        b"\x0a\x07stdout_",
        b"\x1a\x05abc",  # a length past the end
        b"",
    ],
)
def test_frame_edges_agree(body: bytes) -> None:
    for final in (False, True):
        _decode_agrees(_frame(body), 1 << 20, final)
        _decode_agrees(_frame(body) * 2, 1 << 20, final)
        _decode_agrees(_frame(body) + b"\x00\x00", 1 << 20, final)


@pytest.mark.parametrize(
    "special", [b'"', b"\\", b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xff", b"\xc3\xa9"]
)
def test_escapes_are_found_at_every_place_in_a_word(special: bytes) -> None:
    """The C escaper skips eight plain bytes at a time: a byte to escape is
    found wherever it sits in those eight, and in the bytes after them."""
    tails = RecordEncoder().whole_tails
    lines = [b"a" * k + special + b"b" * (19 - k) for k in range(20)]
    times = list(range(len(lines)))
    assert compiled.encode_lines(lines, times, "stdout", tails) == encode_lines_reference(
        lines, times, "stdout", tails
    )
