"""ReadLogs bodies: stored records back into framed LogEntry messages (pylog.readback).

The fast path for plain whole lines must give the bytes the record-by-record
path gives (a full JSON decode, one protobuf message per record), on every
record pylog stores and on the odd ones a state directory may hold; whatever it
leaves to the full decode must still come out, or be skipped and counted.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylog import readback, speedups
from pylog.framing import encode_entry
from pylog.models import Entry
from pylog.store.records import RecordEncoder, RecordError, decode_record, split_plain_run
from pylog.wire.entry_pb2 import LogEntry

compiled: Any = speedups.compiled
IMPLS = ["compiled", "reference"]


def record_by_record(batch: list[bytes]) -> tuple[bytes, int]:
    """The specification: a full decode and a LogEntry per record; a record that
    does not decode, or whose time is not an int64 of ns, is skipped."""
    out = []
    bad = 0
    for raw in batch:
        try:
            rec = decode_record(raw)
        except RecordError:
            bad += 1
            continue
        if -(2**63) <= rec.time_ns < 2**63:
            out.append(encode_entry(rec.stream, rec.time_ns, rec.log))
        else:
            bad += 1
    return b"".join(out), bad


def unframe(body: bytes) -> list[tuple[str, int, bytes]]:
    out = []
    i = 0
    while i < len(body):
        (n,) = struct.unpack_from(">I", body, i)
        entry = LogEntry.FromString(body[i + 4 : i + 4 + n])
        out.append((entry.source, entry.time_nano, entry.line))
        i += 4 + n
    assert i == len(body)
    return out


def plain(impl: str, batch: list[bytes]) -> bytes | None:
    """The fast path alone, through the compiled twin or the reference."""
    scanned = split_plain_run(batch)
    assert scanned is not None, batch
    fn = compiled.plain_frames if impl == "compiled" else readback.plain_frames_reference
    result: bytes | None = fn(scanned.records, scanned.marks)
    return result


def rec(text: bytes, time: bytes = b"2023-11-14T22:13:20.5Z", stream: bytes = b"stdout") -> bytes:
    return b'{"log":"' + text + b'\\n","stream":"' + stream + b'","time":"' + time + b'"}\n'


texts = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.lists(
        st.sampled_from([b"a", b"\\", b"n", b'"', b"\t", b"\x00", b"<", b"\xff", b"\xf0\x9f\x98"]),
        max_size=12,
    ).map(b"".join),
)
times = st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.just(0),
    st.integers(min_value=0, max_value=10**9).map(lambda s: 1_700_000_000 * 10**9 + s * 10),
)
entries = st.builds(Entry, st.sampled_from(["stdout", "stderr"]), times, texts, st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, min_size=1, max_size=8), st.booleans())
def test_stored_records_come_back_as_the_full_decode_gives_them(
    batch: list[Entry], attrs: bool
) -> None:
    encoder = RecordEncoder({"path": "/x", "tag": 'a"b'} if attrs else None)
    raws = [encoder.encode(e) for e in batch]
    body, bad = readback.batch_frames(raws)
    assert (body, bad) == record_by_record(raws)
    assert bad == 0
    # Bytes that are not UTF-8 come back as U+FFFD, one per byte, as with json-file.
    assert unframe(body) == [
        (
            e.source,
            e.time_ns,
            e.line.decode(errors="pylog-go-replace").encode() + b"\n" * e.complete,
        )
        for e in batch
    ]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "text",
    [
        b"plain",
        b"",
        b'a\\"b\\\\c\\/d',
        b"\\b\\f\\n\\r\\t",
        b"\\u0000\\u001f\\u00e9\\u20AC\\uffff",
        b"\\ud83d\\ude00 and \\uD83D\\uDE00",
        "caf\u00e9 \U0001f600".encode(),
        b"x" * 126,
        b"x" * 127,
        b"y" * 20_000,
        b"z" * (1 << 21),
    ],
)
def test_escapes_and_lengths_on_the_fast_path(impl: str, text: bytes) -> None:
    raws = [rec(text), rec(text, b"1970-01-01T00:00:00Z", b"stderr")]
    got = plain(impl, raws)
    assert got is not None
    assert got == record_by_record(raws)[0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "text",
    [
        b"\\ud800",  # a lone high surrogate
        b"\\ud800x",
        b"\\ud800\\u0041",
        b"\\udc00",  # a lone low surrogate
        b"\\x41",  # not a JSON escape
        b"\\u12",  # cut short
        b"\\u12g4",
        b"tab\there",  # a raw control byte
        b"\xff",  # not UTF-8
        b"\xc0\x80",  # overlong
        b"\xed\xa0\x80",  # a surrogate in UTF-8
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xe2\x82",  # cut short
    ],
)
def test_what_only_a_full_decode_may_judge_is_left_to_it(impl: str, text: bytes) -> None:
    raws = [rec(b"before"), rec(text), rec(b"after")]
    assert plain(impl, raws) is None
    body, bad = readback.batch_frames(raws)
    assert (body, bad) == record_by_record(raws)
    assert unframe(body)[0][2] == b"before\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (b"\\ud800", "\ufffd"),
        (b"a\\ud800\\u0041", "a\ufffdA"),
        (b"\\udc00\\ud83d\\ude00", "\ufffd\U0001f600"),
    ],
)
def test_a_lone_surrogate_comes_back_as_u_fffd(text: bytes, line: str) -> None:
    """As Go's JSON decoder gives it to json-file's reader; it used to end the stream."""
    raws = [rec(text), rec(b"after")]
    body, bad = readback.batch_frames(raws)
    assert bad == 0
    assert [got for _, _, got in unframe(body)] == [line.encode() + b"\n", b"after\n"]


@pytest.mark.parametrize(
    "time", [b"0001-01-01T00:00:00Z", b"1677-09-21T00:12:43.145224191Z", b"9999-12-31T23:59:59Z"]
)
def test_a_time_no_logentry_holds_is_skipped_not_the_end_of_the_stream(time: bytes) -> None:
    raws = [rec(b"before"), rec(b"odd", time), rec(b"after")]
    for impl in IMPLS:
        assert plain(impl, raws) is None
    body, bad = readback.batch_frames(raws)
    assert bad == 1
    assert [line for _, _, line in unframe(body)] == [b"before\n", b"after\n"]
    # The last time an int64 of ns holds is read.
    edge = [rec(b"edge", b"2262-04-11T23:47:16.854775807Z")]
    assert unframe(readback.batch_frames(edge)[0]) == [("stdout", 2**63 - 1, b"edge\n")]


def test_records_that_are_not_plain_lines_are_read_one_by_one() -> None:
    encoder = RecordEncoder()
    raws = [
        encoder.encode(Entry("stdout", 1, b"chunk", complete=False)),
        b"not json\n",
        encoder.encode(Entry("stderr", 2, b"whole")),
    ]
    body, bad = readback.batch_frames(raws)
    assert bad == 1
    assert unframe(body) == [("stdout", 1, b"chunk"), ("stderr", 2, b"whole\n")]


def test_the_stream_leaves_out_empty_batches_and_logs_skipped_records_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [rec(b"a"), rec(b"b")]
    batches = iter([good, [b"junk\n"], [], [b"junk\n", rec(b"c")]])
    with caplog.at_level(logging.WARNING, logger="pylog.readback"):
        out = list(readback.frames(batches, "abc123"))
    assert [len(unframe(b)) for b in out] == [2, 1]
    assert [m for m in caplog.messages if "unreadable" in m] == [
        "container abc123: skipped 2 unreadable records"
    ]
