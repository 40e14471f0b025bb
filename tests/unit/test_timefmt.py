import calendar
import time

import pytest
from pylog.timefmt import format_rfc3339nano, parse_go_time, parse_record_time, parse_rfc3339

BASE = calendar.timegm((2024, 2, 29, 23, 59, 58, 0, 0, 0)) * 1_000_000_000


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (BASE, "2024-02-29T23:59:58Z"),
        (BASE + 1, "2024-02-29T23:59:58.000000001Z"),
        (BASE + 120_000_000, "2024-02-29T23:59:58.12Z"),
        (BASE + 999_999_999, "2024-02-29T23:59:58.999999999Z"),
        (BASE + 1_000_000_000, "2024-02-29T23:59:59Z"),
    ],
)
def test_format_matches_go_rfc3339nano(ns: int, text: str) -> None:
    assert format_rfc3339nano(ns) == text
    assert parse_record_time(text) == ns
    assert parse_rfc3339(text) == ns


def test_round_trip_keeps_nanoseconds() -> None:
    now = time.time_ns()
    for delta in range(0, 10_000, 7):
        assert parse_record_time(format_rfc3339nano(now + delta)) == now + delta


def test_offsets_are_converted_to_utc() -> None:
    assert parse_rfc3339("2024-03-01T01:59:58.5+02:00") == BASE + 500_000_000
    assert parse_rfc3339("2024-02-29T20:59:58.5-03:00") == BASE + 500_000_000


def test_go_zero_time_means_unset() -> None:
    assert parse_go_time("0001-01-01T00:00:00Z") is None
    assert parse_go_time(None) is None
    assert parse_go_time("") is None
    assert parse_go_time("2024-02-29T23:59:58Z") == BASE


@pytest.mark.parametrize(
    "bad", ["yesterday", "2024-02-29", "2024-02-29T23:59:58", "2024-02-29T23:59:58.1234567890Z"]
)
def test_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(bad)
