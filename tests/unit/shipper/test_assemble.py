import json
from collections.abc import Iterable

import pytest
from pylog.config import UserRegex, parse_log_opts
from pylog.models import Entry
from pylog.shipper.assemble import Item, LineAssembler
from pylog.shipper.schema import Line, PlainRun
from pylog.store.reader import Position
from pylog.store.records import RecordEncoder

from ...helpers import plain_run_lines, unescape_log

ENC = RecordEncoder()


def lines_only(items: Iterable[Item]) -> list[Line]:
    """The lines of an assembler's output, runs taken apart."""
    out: list[Line] = []
    for item, _ in items:
        if isinstance(item, PlainRun):
            out += plain_run_lines(item)
        else:
            out.append(item)
    return out


def text_of(line: Line) -> str:
    """A line's message, whichever way it is held (``escaped`` on the fast path)."""
    return line.message if line.escaped is None else unescape_log(line.escaped)


def recs(*entries: Entry) -> list[bytes]:
    return [ENC.encode(e) for e in entries]


def feed(
    a: LineAssembler, batch: list[bytes], gen: int = 0, base: int = 0, now: float = 0.0
) -> list[Item]:
    end = Position(gen, base + sum(map(len, batch)))
    return a.feed(batch, end, now)


def test_whole_lines_pass_through_with_commit_after_each() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    batch = recs(Entry("stdout", 1, b"one"), Entry("stderr", 2, b"two"))
    out = feed(a, batch)
    assert all(x.escaped is not None for x in lines_only(out))  # the no-decode path
    assert [(x.stream, x.time_ns, text_of(x)) for x in lines_only(out)] == [
        ("stdout", 1, "one"),
        ("stderr", 2, "two"),
    ]
    ends = [Position(0, len(batch[0])), Position(0, len(batch[0]) + len(batch[1]))]
    # fast path: the batch is one run of plain lines with the position after it
    assert len(out) == 1 and isinstance(out[0][0], PlainRun) and out[0][1] == ends[1]
    slow = LineAssembler(Position(0, 0), max_line=1000, raw_text=False)
    assert [c for _, c in feed(slow, batch)] == ends
    assert a.commit_position() == Position(0, len(batch[0]) + len(batch[1]))


def test_chunks_are_joined_and_hold_the_commit_at_their_start() -> None:
    a = LineAssembler(Position(3, 100), max_line=1 << 20)
    first = recs(Entry("stdout", 5, b"a" * 16384, complete=False))
    out = feed(a, first, gen=3, base=100)
    assert out == []
    assert a.commit_position() == Position(3, 100)  # restart re-reads the chunk
    # an stderr line in between does not disturb the stdout line being joined
    mid = recs(Entry("stderr", 6, b"err"))
    out = feed(a, mid, gen=3, base=100 + len(first[0]))
    assert lines_only(out)[0].message == "err"
    assert out[0][1] == Position(3, 100)
    last = recs(Entry("stdout", 5, b"b" * 10))
    out = feed(a, last, gen=3, base=100 + len(first[0]) + len(mid[0]))
    (line,) = lines_only(out)
    assert text_of(line) == "a" * 16384 + "b" * 10 and line.time_ns == 5
    assert (
        out[0][1]
        == a.commit_position()
        == Position(3, 100 + len(first[0]) + len(mid[0]) + len(last[0]))
    )


def test_over_long_lines_ship_in_numbered_pieces() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    chunks = [Entry("stdout", 9, b"x" * 700, complete=False) for _ in range(3)]
    chunks.append(Entry("stdout", 9, b"y" * 50))
    out = feed(a, recs(*chunks))
    lines = lines_only(out)
    assert [(x.part, x.last) for x in lines] == [(1, False), (2, False), (3, True)]
    assert "".join(text_of(x) for x in lines) == "x" * 2100 + "y" * 50
    assert all(len(text_of(x)) <= 1000 for x in lines)
    assert out[0][1] == Position(0, 0) and out[-1][1] == a.commit_position()


def test_pieces_never_split_a_utf8_character() -> None:
    a = LineAssembler(Position(0, 0), max_line=1001)
    text = "é" * 1500  # 2 bytes each: 1001 falls inside a character
    out = feed(a, recs(Entry("stdout", 1, text.encode())))
    assert "".join(text_of(x) for x in lines_only(out)) == text
    assert "\ufffd" not in "".join(text_of(x) for x in lines_only(out))


def test_unfinished_line_is_flushed_at_finish() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    batch = recs(Entry("stdout", 1, b"partial", complete=False))
    assert feed(a, batch) == []
    out = a.finish()
    assert [text_of(x) for x in lines_only(out)] == ["partial"]
    assert out[0][1] == Position(0, len(batch[0]))


def regex(pattern: str) -> UserRegex:
    """A multiline pattern compiled as the log-opt is."""
    compiled = parse_log_opts({"kafka-multiline-pattern": pattern}).kafka.multiline_pattern
    assert compiled is not None
    return compiled


def test_multiline_merges_until_the_next_first_line() -> None:
    a = LineAssembler(
        Position(0, 0), max_line=10_000, multiline=regex(r"^\S"), multiline_timeout=2.0
    )
    text = ["Exception: x", "  at a", "  at b", "next", "  more"]
    batch = recs(*(Entry("stdout", i, t.encode()) for i, t in enumerate(text)))
    out = feed(a, batch, now=10.0)
    assert [(text_of(x), x.lines, x.time_ns) for x in lines_only(out)] == [
        ("Exception: x\n  at a\n  at b", 3, 0)
    ]
    # the commit stops before "next", which is held in the open group
    assert out[0][1] == Position(0, sum(map(len, batch[:3])))
    assert a.commit_position() == Position(0, sum(map(len, batch[:3])))
    assert a.expire(11.999) == []
    out = a.expire(12.0)
    assert [(text_of(x), x.lines) for x in lines_only(out)] == [("next\n  more", 2)]
    assert out[0][1] == a.commit_position() == Position(0, sum(map(len, batch)))


def test_multiline_max_lines() -> None:
    a = LineAssembler(Position(0, 0), max_line=10_000, multiline=regex("^S"), multiline_max_lines=2)
    batch = recs(*(Entry("stdout", i, t.encode()) for i, t in enumerate(["S", "a", "b", "c"])))
    out = feed(a, batch)
    assert [text_of(x) for x in lines_only(out)] == ["S\na", "b\nc"]


@pytest.mark.timeout(5)
def test_multiline_pattern_takes_linear_time_on_hostile_lines() -> None:
    """(a+)+$ against a's and a "!" backtracks exponentially in Python's re."""
    a = LineAssembler(Position(0, 0), max_line=200_000, multiline=regex("(a+)+$"))
    hostile = "a" * 100_000 + "!"
    text = ["aaa", hostile, "a" * 30 + "!", "aaaa"]
    batch = recs(*(Entry("stdout", i, t.encode()) for i, t in enumerate(text)))
    out = feed(a, batch) + a.finish()
    assert [text_of(x) for x in lines_only(out)] == [
        "\n".join(["aaa", hostile, "a" * 30 + "!"]),
        "aaaa",
    ]


def test_multiline_pattern_on_non_ascii_lines() -> None:
    """Lines are matched as text: ``.`` is one character, ``\\pL`` any letter."""
    a = LineAssembler(Position(0, 0), max_line=10_000, multiline=regex(r"^\pL.:"))
    text = ["Ét: x", "  à", "ü:", "Ωé: y", "  ñ"]
    batch = recs(*(Entry("stdout", i, t.encode()) for i, t in enumerate(text)))
    out = feed(a, batch) + a.finish()
    assert [text_of(x) for x in lines_only(out)] == ["Ét: x\n  à\nü:", "Ωé: y\n  ñ"]


def test_unreadable_records_are_counted_and_skipped() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    batch = [b"not json\n", *recs(Entry("stdout", 1, b"ok"))]
    out = feed(a, batch)
    assert [text_of(x) for x in lines_only(out)] == ["ok"]
    assert a.bad_records == 1
    assert json.loads(batch[1])["log"] == "ok\n"


TRICKY = [
    "plain",
    'quote " and backslash \\ end',
    "ends with a backslash-n literal \\n",
    "ends with a backslash \\",
    "tab\there \u0001 control, <html> & 'single'",
    "unicode h\u00e9llo \u2713 \U0001f389",
    "",
    "\\\\n",
]


def test_no_decode_path_gives_the_same_values_as_decoding() -> None:
    from pylog.models import ContainerInfo
    from pylog.shipper.schema import ValueBuilder

    b = ValueBuilder(ContainerInfo(container_id="c" * 64), tag="t", labels={}, env={}, host="h")
    # times with 0 to 9 fraction digits once Go's format trims the zeros
    t0 = 1_700_000_000_000_000_000
    times = [t0, t0 + 1, t0 + 10, t0 + 120, t0 + 3_000_000, t0 + 450_000_000, t0 + 999_999_999]
    times.append(t0 + 100_000_000)
    entries = [Entry("stderr", times[i], t.encode()) for i, t in enumerate(TRICKY)]
    batch = recs(*entries)
    fast = lines_only(feed(LineAssembler(Position(0, 0), max_line=1000), batch))
    slow = lines_only(feed(LineAssembler(Position(0, 0), max_line=1000, raw_text=False), batch))
    assert all(x.escaped is not None for x in fast)
    assert all(x.escaped is None for x in slow)
    assert [text_of(x) for x in fast] == [text_of(x) for x in slow] == TRICKY
    for f, s in zip(fast, slow, strict=True):
        assert json.loads(b.value(f)) == json.loads(b.value(s))
        assert f.time_ns == s.time_ns
        assert b.headers(f) == b.headers(s)
    # ... and the same records when the batch is made in one pass as a run
    ((run, _),) = feed(LineAssembler(Position(0, 0), max_line=1000), batch)
    assert isinstance(run, PlainRun)
    records = b.plain_records(run)
    assert [json.loads(v) for v, _, _ in records] == [json.loads(b.value(s)) for s in slow]
    assert [h for _, h, _ in records] == [b.headers(s) for s in slow]
    assert [ts for _, _, ts in records] == [s.time_ns // 1_000_000 for s in slow]


def test_a_batch_with_a_chunk_takes_plain_lines_one_by_one() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    batch = recs(
        Entry("stdout", 1, b"one"),
        Entry("stdout", 2, b"long ", complete=False),
        Entry("stdout", 2, b"line"),
        Entry("stderr", 3, b"three"),
    )
    out = feed(a, batch)
    assert not any(isinstance(item, PlainRun) for item, _ in out)
    assert [(x.stream, text_of(x)) for x in lines_only(out)] == [
        ("stdout", "one"),
        ("stdout", "long line"),
        ("stderr", "three"),
    ]
    assert lines_only(out)[0].escaped is not None  # plain lines still skip decoding
    assert out[-1][1] == Position(0, sum(map(len, batch)))


def test_records_with_attrs_are_plain_too() -> None:
    enc = RecordEncoder({"app": "shop", "time": '"x"}'})
    batch = [enc.encode(Entry("stdout", 7, b"with attrs")), enc.encode(Entry("stdout", 8, b"b"))]
    out = feed(LineAssembler(Position(0, 0), max_line=1000), batch)
    assert isinstance(out[0][0], PlainRun)
    assert [(text_of(x), x.time_ns) for x in lines_only(out)] == [("with attrs", 7), ("b", 8)]


def test_a_line_longer_than_max_line_leaves_the_fast_path() -> None:
    a = LineAssembler(Position(0, 0), max_line=10)
    out = feed(a, recs(Entry("stdout", 1, b"short"), Entry("stdout", 2, b"x" * 25)))
    assert not any(isinstance(item, PlainRun) for item, _ in out)
    assert [text_of(x) for x in lines_only(out)] == ["short", "x" * 10, "x" * 10, "x" * 5]


def test_a_chunk_ending_in_a_literal_backslash_n_is_not_taken_for_a_line() -> None:
    a = LineAssembler(Position(0, 0), max_line=1000)
    batch = recs(Entry("stdout", 1, b"abc\\n", complete=False), Entry("stdout", 1, b"def"))
    out = feed(a, batch)
    assert [text_of(x) for x in lines_only(out)] == ["abc\\ndef"]
