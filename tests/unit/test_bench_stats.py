"""The benchmark's pure logic (scripts/bench): medians, ratios, percentiles,
targets and the markdown table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.ceiling import (
    CeilingError,
    Payload,
    command,
    parse_summary,
    payload_file,
    plugin_env,
    producer_props,
)
from bench.engine import processes_cpu_seconds, stat_cpu_ticks
from bench.report import fmt, markdown, table, targets_table, to_json
from bench.stats import (
    CEILING,
    CEILING_RANDOM,
    TARGETS,
    Sample,
    Target,
    aggregate,
    burst_figures,
    median,
    percentile,
    ratio,
    soak_figures,
)
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


# ------------------------------------------------------------------ burst
def test_burst_after_is_the_first_sample_at_60_s_and_its_ratio_to_before() -> None:
    times = [0.1 + 5 * k for k in range(13)]  # 0.1 .. 60.1 s
    rss = [400.0 - 20 * k for k in range(13)]  # 400 .. 160 MB
    figs = burst_figures(100.0, times, rss, peak_mb=420.0)
    assert figs["rss_before_mb"] == 100.0
    assert figs["rss_peak_mb"] == 420.0
    assert figs["rss_after_60s_mb"] == 160.0
    assert figs["rss_after_ratio"] == 1.6


def test_burst_peak_is_never_below_a_sample_and_a_short_series_has_no_after() -> None:
    figs = burst_figures(80.0, [0.0, 5.0], [300.0, 90.0], peak_mb=0.0)
    assert figs["rss_peak_mb"] == 300.0
    assert math.isnan(figs["rss_after_60s_mb"]) and math.isnan(figs["rss_after_ratio"])
    with pytest.raises(ValueError):
        burst_figures(80.0, [0.0, 5.0], [300.0], peak_mb=0.0)


def test_burst_targets_are_within_20_percent_for_both_pylog_drivers() -> None:
    out = []
    for driver, after in (("pylog", 115.0), ("pylog+kafka", 125.0)):
        figs = burst_figures(100.0, [0.0, 60.0], [300.0, after], peak_mb=350.0)
        out.append(Sample("burst", driver, 1, figs))
    rows = aggregate(out)
    verdicts = {t.driver: t.check(rows) for t in TARGETS if t.workload == "burst"}
    assert verdicts == {"pylog": (1.15, True), "pylog+kafka": (1.25, False)}
    text = markdown(rows, {}, "h")
    assert "| RSS before MB | pylog peak RSS MB | RSS 60 s after MB | after / before |" in text


def test_burst_runs_by_default_and_has_a_quick_title() -> None:
    assert "burst" in DEFAULT_WORKLOADS and "burst" in QUICK_TITLES


def test_the_issue_targets_are_in_the_targets_table() -> None:
    have = {(t.workload, t.driver, t.figure, t.op, t.limit) for t in TARGETS}
    assert {
        ("1m", "pylog+kafka", "kafka_vs_ceiling", ">=", 0.5),
        ("10c", "pylog+kafka", "kafka_vs_ceiling", ">=", 0.6),
        ("1m", "pylog+kafka", "cpu_s_per_mline", "<=", 4.0),
        ("1m", "pylog", "cpu_s_per_mline", "<=", 1.5),
        ("1m", "pylog+kafka", "ratio", "<=", 1.1),
        ("10c", "pylog", "ratio", "<=", 1.2),
        ("10c", "pylog+kafka", "ratio", "<=", 1.5),
        ("readback", "pylog", "read_all_ratio", "<=", 1.0),
        ("readback", "pylog", "read_since_ratio", "<=", 1.0),
        ("burst", "pylog", "rss_after_ratio", "<=", 1.2),
        ("burst", "pylog+kafka", "rss_after_ratio", "<=", 1.2),
    } <= have


# ------------------------------------------------------------------ ceiling payloads
def test_payload_file_has_one_value_a_line() -> None:
    values = [b'{"v":1,"line":"a"}', '{"v":1,"line":"\u00e9"}'.encode()]
    assert payload_file(values) == values[0] + b"\n" + values[1] + b"\n"


@pytest.mark.parametrize("bad", [b"", b'{"line":"a\nb"}', b"\xff\xfe"])
def test_payload_file_refuses_what_producer_performance_would_split_or_garble(
    bad: bytes,
) -> None:
    with pytest.raises(CeilingError):
        payload_file([b'{"v":1}', bad])
    with pytest.raises(CeilingError):
        payload_file([])


def test_producer_performance_gets_the_payload_file_or_a_record_size() -> None:
    libs, props = Path("/libs"), ["acks=all"]
    real = command(libs, "t", 10, Payload(461, Path("/tmp/p.txt")), props)
    assert real[real.index("--payload-file") + 1] == "/tmp/p.txt"
    assert "--record-size" not in real
    rand = command(libs, "t", 10, Payload(461), props)
    assert rand[rand.index("--record-size") + 1] == "461"
    assert "--payload-file" not in rand
    assert real[-2:] == rand[-2:] == ["--command-property", "acks=all"]


def test_the_random_ceiling_is_compared_with_the_real_one_not_used_as_it() -> None:
    rows = aggregate([
        Sample("1m", CEILING, 1, {"kafka_lps": 300_000.0}),
        Sample("1m", CEILING_RANDOM, 1, {"kafka_lps": 200_000.0}),
        Sample("1m", "pylog+kafka", 1, {"kafka_lps": 150_000.0}),
    ])  # fmt: skip
    assert [r.figures["kafka_vs_ceiling"] for r in rows] == [1.0, 200 / 300, 0.5]


# ------------------------------------------------------------------ CPU of the plugin
def test_cpu_ticks_count_reaped_children() -> None:
    """The fallback's CPU of a process includes its children once it waited for them:
    a respawned worker or a restarted shipping process still counts."""
    me = [os.getpid()]
    own0 = _own_ticks()
    before = processes_cpu_seconds(me)
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    grew = processes_cpu_seconds(me) - before
    own = (_own_ticks() - own0) / os.sysconf("SC_CLK_TCK")
    assert grew - own >= 0.25


def _own_ticks() -> int:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_cpu_ticks_of_a_stat_line() -> None:
    # pid (comm with ") " in it) state ppid ... utime stime cutime cstime ...
    line = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 11 5 20 0 1 0 99 0 0"
    assert stat_cpu_ticks(line) == 7 + 3 + 11 + 5
    assert processes_cpu_seconds([2**22 + 12345]) == 0.0  # no such process
