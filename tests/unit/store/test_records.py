import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pylog.models import Entry
from pylog.store.records import RecordEncoder, decode_record, record_time


def test_record_is_json_file_format() -> None:
    raw = RecordEncoder().encode(Entry("stdout", 1_700_000_000_123_000_000, b"hello"))
    assert raw == b'{"log":"hello\\n","stream":"stdout","time":"2023-11-14T22:13:20.123Z"}\n'
    assert json.loads(raw) == {
        "log": "hello\n",
        "stream": "stdout",
        "time": "2023-11-14T22:13:20.123Z",
    }


def test_unfinished_chunk_has_no_newline() -> None:
    raw = RecordEncoder().encode(Entry("stderr", 1, b"chunk", complete=False))
    assert json.loads(raw)["log"] == "chunk"


def test_attrs_sorted_like_go_maps() -> None:
    raw = RecordEncoder({"tag": "t", "app": "a"}).encode(Entry("stdout", 1, b"x"))
    assert b'"attrs":{"app":"a","tag":"t"}' in raw
    assert decode_record(raw).attrs == {"app": "a", "tag": "t"}


def test_invalid_utf8_becomes_one_replacement_per_bad_byte() -> None:
    raw = RecordEncoder().encode(Entry("stdout", 1, b"a\xffb\xe2\x82c\x00"))
    assert decode_record(raw).log == "a\ufffdb\ufffd\ufffdc\x00\n".encode()


def test_round_trip_and_fast_time() -> None:
    enc = RecordEncoder({"k": "v"})
    for line in [b"", b"tab\there", b'quote " back \\ slash', "\u2603 \U0001f600".encode(), b"<&>"]:
        raw = enc.encode(Entry("stdout", 1_234_567_890_123_456_789, line))
        rec = decode_record(raw)
        assert rec.log == line + b"\n"
        assert rec.time_ns == record_time(raw) == 1_234_567_890_123_456_789
        assert raw.count(b"\n") == 1


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.integers(0, 2**62))
def test_any_bytes_round_trip_as_valid_json(line: bytes, complete: bool, t: int) -> None:
    raw = RecordEncoder({"a": "b"}).encode(Entry("stderr", t, line, complete))
    obj = json.loads(raw)
    expected = line.decode("utf-8", "pylog-go-replace") + ("\n" if complete else "")
    assert obj["log"] == expected
    assert obj["stream"] == "stderr"
    assert decode_record(raw).time_ns == t
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
