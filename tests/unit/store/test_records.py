import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pylog.models import Entry, EntryBatch
from pylog.store import records
from pylog.store.records import (
    RecordEncoder,
    decode_record,
    match_plain,
    plain_time_ns,
    record_time,
    split_plain_run,
)

from ...helpers import unescape_log


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
    assert json.loads(raw)["attrs"] == {"app": "a", "tag": "t"}


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


SECOND = 1_790_000_000 * 1_000_000_000
#: Fractions with every count of trailing zeros, including none at all.
FRACTIONS = st.one_of(
    st.integers(0, 999_999_999), st.sampled_from([0, 100_000_000, 120_000, 5_000, 10, 999_999_990])
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["stdout", "stderr"]),
            st.integers(0, 1),
            FRACTIONS,
            st.one_of(
                st.binary(max_size=40),
                st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
            ),
            st.booleans(),
        ),
        max_size=30,
    ),
    st.sampled_from([{}, {"tag": "100%d %s"}, {"app": "<a&b>", "env": "x"}]),
)
def test_batch_encoding_is_record_by_record_encoding(
    items: list[tuple[str, int, int, bytes | str, bool]], attrs: dict[str, str]
) -> None:
    """The one-template path for a plain batch writes the very bytes
    :meth:`RecordEncoder.encode` writes, whatever the batch holds."""
    entries = [
        Entry(
            src,
            SECOND + sec * 1_000_000_000 + frac,
            line if isinstance(line, bytes) else line.encode(),
            complete,
        )
        for src, sec, frac, line, complete in items
    ]
    enc = RecordEncoder(attrs)
    expected = b"".join(enc.encode(e) for e in entries)
    assert RecordEncoder(attrs).encode_batch(EntryBatch.of(entries)) == expected
    plain = [e._replace(source="stdout", complete=True) for e in entries]
    assert RecordEncoder(attrs).encode_batch(EntryBatch.of(plain)) == b"".join(
        enc.encode(e) for e in plain
    )


def test_plain_lines_are_split_into_their_fields_without_decoding() -> None:
    enc = RecordEncoder({"app": "a"})
    entries = [
        Entry("stdout", 1_700_000_000_123_456_789, b"one"),
        Entry("stderr", 1_700_000_000_100_000_000, b'say "\\n" \xc3\xa9'),
        Entry("stdout", 1_700_000_001_000_000_000, b""),
    ]
    raws = [enc.encode(e) for e in entries]
    plain = split_plain_run(raws)
    assert plain is not None and len(plain) == 3
    assert [(unescape_log(e), s, plain_time_ns(sec, n)) for e, s, sec, n in plain.fields()] == [
        (e.line.decode(), e.source.encode(), e.time_ns) for e in entries
    ]
    assert [n for *_, n in plain.fields()] == [b"123456789", b"100000000", b"000000000"]
    for raw, fields in zip(raws, plain.fields(), strict=True):
        assert match_plain(raw) == (fields, decode_record(raw).time_ns)


@pytest.mark.parametrize(
    "raw",
    [
        RecordEncoder().encode(Entry("stdout", 1, b"chunk", complete=False)),
        b'{"log":"x\\n","stream":"stdout","time":"2023-02-30T00:00:00Z"}\n',
        b'{"stream":"stdout","log":"x\\n","time":"2023-01-01T00:00:00Z"}\n',
        b'{"log":"x\\\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n',
    ],
)
def test_anything_but_a_plain_whole_line_is_left_to_the_decoder(raw: bytes) -> None:
    ok = RecordEncoder().encode(Entry("stdout", 1, b"fine"))
    assert match_plain(raw) is None
    assert split_plain_run([ok, raw]) is None
    assert split_plain_run([ok]) is not None


def test_no_other_module_reads_the_stored_format() -> None:
    """records.py is the one place that knows the record's layout (its keys in order)."""
    root = Path(records.__file__).parent.parent
    readers = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if '{"log":"' in p.read_text() or "_PLAIN_RECORD" in p.read_text()
    ]
    assert readers == ["store/records.py"]


def test_a_lone_surrogate_escape_decodes_to_u_fffd() -> None:
    """As Go's JSON decoder reads it; encoding the line used to raise (and end a
    docker logs stream or a shipping task)."""
    raw = b'{"log":"a\\ud800b\\udc00\\n","stream":"stdout","time":"2023-01-01T00:00:00Z"}\n'
    assert decode_record(raw).log == "a\ufffdb\ufffd\n".encode()
