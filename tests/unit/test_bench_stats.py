"""The benchmark's pure logic (scripts/bench): medians, ratios, percentiles,
targets and the markdown table."""

from __future__ import annotations

import json
import math

import pytest
from bench.ceiling import CeilingError, parse_summary, plugin_env, producer_props
from bench.report import fmt, markdown, table, targets_table, to_json
from bench.stats import TARGETS, Sample, Target, aggregate, median, percentile, ratio, soak_figures
from bench.workloads import DEFAULT_WORKLOADS, QUICK_TITLES, WORKLOADS, interleaved
from pylog.config import KafkaSettings


def test_median_ignores_nan() -> None:
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(median([]))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))


def samples() -> list[Sample]:
    out = []
    for rnd, (j, p) in enumerate([(2.0, 2.4), (2.2, 2.0), (9.0, 3.0)], start=1):
        out.append(Sample("1m", "json-file", rnd, {"wall_s": j}))
        out.append(Sample("1m", "pylog", rnd, {"wall_s": p, "cpu_s_per_mline": 1.0 + rnd}))
    out.append(Sample("paced", "pylog+kafka", 1, {"lat_p99_ms": 120.0}))
    return out


def test_aggregate_takes_medians_and_ratio_to_json_file() -> None:
    rows = aggregate(samples())
    assert [(r.workload, r.driver, r.rounds) for r in rows] == [
        ("1m", "json-file", 3),
        ("1m", "pylog", 3),
        ("paced", "pylog+kafka", 1),
    ]
    assert rows[0].figures == {"wall_s": 2.2, "ratio": 1.0}
    assert rows[1].figures["wall_s"] == 2.4
    assert rows[1].figures["cpu_s_per_mline"] == 3.0
    assert math.isclose(rows[1].figures["ratio"], 2.4 / 2.2)
    assert "ratio" not in rows[2].figures  # no json-file on that workload


def test_targets() -> None:
    rows = aggregate(samples())
    assert Target("", "1m", "pylog", "ratio", "<=", 1.3).check(rows) == (2.4 / 2.2, True)
    assert Target("", "1m", "pylog", "cpu_s_per_mline", "<=", 1.5).check(rows) == (3.0, False)
    value, ok = Target("", "10c", "pylog", "ratio", "<=", 1.3).check(rows)
    assert math.isnan(value) and ok is None
    text = targets_table(rows)
    assert "MISSED" in text and "not run" in text


def test_table_is_aligned_markdown() -> None:
    text = table(["driver", "wall s"], [["none", "1.00"], ["json-file", "12.50"]])
    lines = text.splitlines()
    assert lines[0] == "| driver    | wall s |"
    assert lines[1] == "|-----------|-------:|"
    assert lines[3] == "| json-file |  12.50 |"
    assert len({len(line) for line in lines}) == 1


def test_fmt() -> None:
    assert fmt("kafka_lps", 312345.6) == "312,346"
    assert fmt("ratio", 1.234) == "1.23x"
    assert fmt("wall_s", math.nan) == "-"
    assert fmt("wall_s", None) == "-"


def test_markdown_has_one_table_per_workload_with_only_its_figures() -> None:
    md = markdown(aggregate(samples()), {"1m": "one million"}, "header")
    assert md.startswith("header\n")
    assert "**1m**: one million (median of 3 rounds)" in md
    paced = md.split("**paced**")[1].split("**Targets**")[0]
    assert "p99 ms" in paced and "wall s" not in paced


def test_json_has_no_nan() -> None:
    data = json.loads(to_json(samples(), aggregate(samples()), {"quick": True}))
    assert data["meta"] == {"quick": True}
    assert len(data["samples"]) == 7
    assert any(t["met"] is None and t["measured"] is None for t in data["targets"])


def test_drivers_are_interleaved_and_rotated() -> None:
    assert list(interleaved(["a", "b", "c"], 2)) == [
        (1, "a"), (1, "b"), (1, "c"), (2, "b"), (2, "c"), (2, "a"),
    ]  # fmt: skip


def test_soak_figures_marks_slope_and_growth() -> None:
    # 10 minutes sampled every 10 s: 100 MB up to minute 2, then +1 MB per minute.
    times = [10.0 * i for i in range(61)]
    rss = [100.0 if t <= 120 else 100.0 + (t - 120) / 60 for t in times]
    f = soak_figures(times, rss, 600)
    assert f["rss_start_mb"] == 100.0
    assert f["rss_1min_mb"] == 100.0
    assert f["rss_2min_mb"] == 100.0
    assert f["rss_end_mb"] == 108.0
    assert f["rss_max_mb"] == 108.0
    assert math.isclose(f["rss_slope_mb_min"], 1.0)
    assert f["rss_growth_mb"] == 8.0
    assert math.isclose(f["rss_growth_pct"], 8.0)


def test_soak_marks_scale_with_the_run_and_take_the_next_sample() -> None:
    # A 60 s quick run sampled every 2 s, the last sample a little late (the exit).
    times = [*(2.0 * i for i in range(30)), 61.3]
    rss = [50.0 + t for t in times]
    f = soak_figures(times, rss, 60)
    assert f["rss_1min_mb"] == 56.0  # first sample at or after 6 s
    assert f["rss_2min_mb"] == 62.0  # ... after 12 s
    assert f["rss_end_mb"] == 111.3
    assert math.isclose(f["rss_slope_mb_min"], 60.0)
    assert math.isclose(f["rss_growth_pct"], (111.3 - 62.0) / 62.0 * 100)


def test_soak_end_is_the_last_sample_under_load() -> None:
    # Flat at 80 MB, +6 MB at 250 s, then the containers exit and 3 MB go back.
    times = [10.0 * i for i in range(61)]
    rss = [80.0 if t < 250 else 86.0 for t in times[:-1]] + [83.0]
    loaded = [t < 590 for t in times]
    f = soak_figures(times, rss, 600, loaded)
    assert f["rss_end_mb"] == 86.0
    assert f["rss_exit_mb"] == 83.0
    assert math.isclose(f["rss_growth_pct"], 7.5)
    assert soak_figures(times, rss, 600)["rss_end_mb"] == 83.0  # all taken as loaded


def test_soak_short_series_has_no_slope() -> None:
    f = soak_figures([0.0, 5.0], [80.0, 70.0], 600)
    assert math.isnan(f["rss_slope_mb_min"]) and math.isnan(f["rss_2min_mb"])
    assert math.isnan(f["rss_growth_pct"])
    assert f["rss_max_mb"] == 80.0


def test_soak_target_is_under_5_percent_growth() -> None:
    [target] = [t for t in TARGETS if t.workload == "soak"]
    for pct, ok in ((4.9, True), (-3.0, True), (5.0, False)):
        rows = aggregate([Sample("soak", "pylog+kafka", 1, {"rss_growth_pct": pct})])
        assert target.check(rows) == (pct, ok)


def test_series_reach_the_json_but_not_the_tables() -> None:
    s = Sample("soak", "pylog+kafka", 1, {"rss_end_mb": 90.0},
               {"t_s": [0.0, 10.0], "rss_mb": [80.0, 90.0]})  # fmt: skip
    data = json.loads(to_json([s], aggregate([s]), {}))
    assert data["samples"][0]["series"] == {"t_s": [0.0, 10.0], "rss_mb": [80.0, 90.0]}
    assert "series" not in data["medians"][0]
    assert "RSS at end MB" in markdown(aggregate([s]), {}, "h")


def test_soak_is_not_in_the_default_workloads() -> None:
    assert "soak" in WORKLOADS
    assert "soak" not in DEFAULT_WORKLOADS
    assert set(DEFAULT_WORKLOADS) | {"soak"} == set(WORKLOADS)


# Kafka 4.4's ProducerPerformance, as run by the bench (a progress line, then the summary).
PRODUCER_PERFORMANCE_OUTPUT = """\
1236721 records sent, 247294.4 records/sec (44.76 MB/sec), 98.1 ms avg latency, \
512.0 ms max latency.
1000000 records sent, 412371.134021 records/sec (74.64 MB/sec), 52.31 ms avg latency, \
410.00 ms max latency, 48 ms 50th, 95 ms 95th, 120 ms 99th, 380 ms 99.9th.
"""


def test_parse_producer_performance_takes_the_final_summary() -> None:
    s = parse_summary(PRODUCER_PERFORMANCE_OUTPUT)
    assert s.records == 1_000_000
    assert s.records_per_s == 412371.134021
    assert s.mb_per_s == 74.64
    assert (s.avg_ms, s.max_ms) == (52.31, 410.0)
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == (48.0, 95.0, 120.0)


def test_parse_producer_performance_without_a_summary_fails() -> None:
    progress = PRODUCER_PERFORMANCE_OUTPUT.splitlines()[0]
    with pytest.raises(CeilingError, match="no ProducerPerformance summary"):
        parse_summary(progress)


def test_ceiling_uses_the_plugin_settings() -> None:
    env = plugin_env('["KAFKA_LINGER_MS=5", "KAFKA_BATCH_SIZE=64k", "KAFKA_BROKERS=",'
                     ' "PYLOG_LOG_LEVEL=info"]')  # fmt: skip
    assert env["KAFKA_LINGER_MS"] == "5" and env["KAFKA_BROKERS"] == ""
    props = producer_props(KafkaSettings.from_env(env), "127.0.0.1:9092")
    assert props == [
        "bootstrap.servers=127.0.0.1:9092", "acks=all", "compression.type=lz4", "linger.ms=5",
        "batch.size=65536", "enable.idempotence=true",
    ]  # fmt: skip
    assert plugin_env("null") == {}


def test_kafka_lines_per_second_as_a_fraction_of_the_ceiling() -> None:
    out = []
    for rnd, (c, k) in enumerate([(400_000.0, 80_000.0), (420_000.0, 90_000.0)], start=1):
        out.append(Sample("10c", "ceiling", rnd, {"kafka_lps": c, "record_bytes": 330.0}))
        out.append(Sample("10c", "pylog+kafka", rnd, {"wall_s": 5.0, "kafka_lps": k}))
    out.append(Sample("1m", "pylog+kafka", 1, {"kafka_lps": 80_000.0}))
    rows = aggregate(out)
    ceiling, pk, alone = rows
    assert ceiling.figures["kafka_vs_ceiling"] == 1.0
    assert math.isclose(pk.figures["kafka_vs_ceiling"], 85_000 / 410_000)
    assert "kafka_vs_ceiling" not in alone.figures  # no ceiling on that workload
    [target] = [t for t in TARGETS if t.workload == "10c" and t.figure == "kafka_vs_ceiling"]
    assert target.check(rows) == (pk.figures["kafka_vs_ceiling"], False)
    assert "| ceiling " in markdown(rows, {}, "h")


def test_readback_times_as_ratios_to_json_file() -> None:
    out = [
        Sample("readback", "json-file", 1, {"read_all_s": 4.9, "read_since_s": 3.0}),
        Sample("readback", "pylog", 1, {"read_all_s": 6.8, "read_since_s": 5.1}),
    ]
    rows = aggregate(out)
    assert rows[0].figures["read_all_ratio"] == 1.0
    assert math.isclose(rows[1].figures["read_all_ratio"], 6.8 / 4.9)
    assert math.isclose(rows[1].figures["read_since_ratio"], 1.7)
    assert "ratio" not in rows[1].figures  # no wall time on this workload
    verdicts = {t.figure: t.check(rows)[1] for t in TARGETS if t.workload == "readback"}
    assert verdicts == {"read_all_ratio": False, "read_since_ratio": False}


def test_ceiling_and_readback_run_by_default_and_have_quick_titles() -> None:
    assert {"ceiling", "readback"} <= set(DEFAULT_WORKLOADS)
    assert "readback" in QUICK_TITLES
