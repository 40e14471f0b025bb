"""Pure logic: samples per round, medians, percentiles, ratios and the targets.

A *sample* is the figures of one run of one driver on one workload (one round).
The report shows, per (workload, driver), the median of each figure over the
rounds, and the wall time's ratio to json-file's median on the same workload (and
likewise the read-back times'). Where Kafka's own producer benchmark ran (driver
``ceiling``), acknowledged lines/s are also shown as a fraction of its records/s.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Figures, in table order: key -> (column heading, format).
FIGURES: dict[str, tuple[str, str]] = {
    "wall_s": ("wall s", "{:.2f}"),
    "ratio": ("vs json-file", "{:.2f}x"),
    "stored_lps": ("stored lines/s", "{:,.0f}"),
    "kafka_lps": ("Kafka acked lines/s", "{:,.0f}"),
    "kafka_vs_ceiling": ("vs ceiling", "{:.2f}x"),
    "record_bytes": ("record bytes", "{:.0f}"),
    "kafka_missing": ("lines missing in Kafka", "{:,.0f}"),
    "cpu_s_per_mline": ("pylog CPU s / M lines", "{:.2f}"),
    "cpu_s_per_gb": ("pylog CPU s / GB", "{:.1f}"),
    "rss_before_mb": ("RSS before MB", "{:.0f}"),
    "rss_peak_mb": ("pylog peak RSS MB", "{:.0f}"),
    "rss_after_60s_mb": ("RSS 60 s after MB", "{:.0f}"),
    "rss_after_ratio": ("after / before", "{:.2f}x"),
    "lat_p50_ms": ("p50 ms", "{:.0f}"),
    "lat_p99_ms": ("p99 ms", "{:.0f}"),
    "tail_s": ("logs --tail 100 s", "{:.3f}"),
    "read_all_s": ("docker logs s", "{:.2f}"),
    "read_all_ratio": ("docker logs vs json-file", "{:.2f}x"),
    "read_since_s": ("logs --since s", "{:.2f}"),
    "read_since_ratio": ("--since vs json-file", "{:.2f}x"),
    "rate_lps": ("offered lines/s", "{:,.0f}"),
    "enable_s": ("plugin enable s", "{:.2f}"),
    "listen_s": ("start->listening s", "{:.2f}"),
    "ready_s": ("start->ready s", "{:.2f}"),
    "rss_idle_mb": ("pylog idle RSS MB", "{:.0f}"),
    "rss_start_mb": ("RSS at go MB", "{:.1f}"),
    "rss_1min_mb": ("RSS at 1 min MB", "{:.1f}"),
    "rss_2min_mb": ("RSS at 2 min MB", "{:.1f}"),
    "rss_end_mb": ("RSS at end MB", "{:.1f}"),
    "rss_max_mb": ("RSS max MB", "{:.1f}"),
    "rss_slope_mb_min": ("RSS slope 2 min->end MB/min", "{:+.2f}"),
    "rss_growth_mb": ("RSS end - 2 min MB", "{:+.1f}"),
    "rss_growth_pct": ("RSS growth 2 min->end", "{:+.1f}%"),
    "rss_exit_mb": ("RSS after exit MB", "{:.1f}"),
}

REFERENCE = "json-file"
#: Figures shown as a ratio to the reference driver's median: figure -> ratio's key.
RATIOS = {"wall_s": "ratio", "read_all_s": "read_all_ratio", "read_since_s": "read_since_ratio"}
#: The driver name of Kafka's own producer benchmark (bench.ceiling): its
#: ``kafka_lps`` is the records/s ProducerPerformance reported.
CEILING = "ceiling"
#: The same benchmark with its own random payloads of pylog's record size (which lz4
#: barely compresses): shown beside the ceiling, not a reference for any ratio.
CEILING_RANDOM = "ceiling-random"
#: How long after a burst the plugin's RSS should be back near its level before it.
BURST_AFTER_S = 60.0


@dataclass
class Sample:
    workload: str
    driver: str
    round: int
    figures: dict[str, float] = field(default_factory=dict)
    # Time series measured during the run (e.g. the soak's RSS every 10 s), saved in
    # results.json and plotted; not in the tables.
    series: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Row:
    """Medians over the rounds of one driver on one workload."""

    workload: str
    driver: str
    rounds: int
    figures: dict[str, float]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan
    return float(statistics.median(vals))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was measured, never
    an interpolation between two. NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def soak_figures(times_s: Sequence[float], rss_mb: Sequence[float], duration_s: float,
                 loaded: Sequence[bool] | None = None) -> dict[str, float]:  # fmt: skip
    """The soak's RSS figures from its series (seconds since go, MB).

    ``loaded`` tells, per sample, whether every container was still writing; only
    those samples count for the marks, the end, the slope and the growth (after the
    first exit, readers and shippers go away and give memory back, which would hide
    growth). The sample after the last exit is ``rss_exit_mb``. Default: all loaded.

    The marks scale with the run: *1 min* is a tenth of ``duration_s`` and *2 min*
    a fifth (so a 1-minute quick run reads its marks at 6 s and 12 s). Each mark
    takes the first loaded sample at or after it. The slope (MB per minute) is a
    least-squares line through the loaded samples from the 2-minute mark on; the
    growth is the last loaded sample minus the 2-minute one, in MB and in % of it.
    The soak's RSS is *flat* when that growth is under 5 %.
    """
    if len(times_s) != len(rss_mb) or not times_s:
        raise ValueError("need one RSS value per sample time, and at least one")
    flags = [True] * len(times_s) if loaded is None else list(loaded)
    if len(flags) != len(times_s):
        raise ValueError("need one loaded flag per sample")
    on = [(t, v) for t, v, f in zip(times_s, rss_mb, flags, strict=True) if f]
    if not on:
        on = [(times_s[0], rss_mb[0])]  # nothing under load: only the start means anything

    def at(mark: float) -> float:
        for t, v in on:
            if t >= mark:
                return v
        return math.nan

    two = at(duration_s / 5)
    end = on[-1][1]
    steady = [(t, v) for t, v in on if t >= duration_s / 5]
    slope = math.nan
    if len(steady) >= 2 and len({t for t, _ in steady}) >= 2:
        fit = statistics.linear_regression([t for t, _ in steady], [v for _, v in steady])
        slope = fit.slope * 60
    growth = end - two
    return {
        "rss_start_mb": rss_mb[0],
        "rss_1min_mb": at(duration_s / 10),
        "rss_2min_mb": two,
        "rss_end_mb": end,
        "rss_max_mb": max(rss_mb),
        "rss_slope_mb_min": slope,
        "rss_growth_mb": growth,
        "rss_growth_pct": ratio(growth, two) * 100,
        "rss_exit_mb": rss_mb[-1],
    }


def burst_figures(before_mb: float, times_s: Sequence[float], rss_mb: Sequence[float],
                  peak_mb: float, after_s: float = BURST_AFTER_S) -> dict[str, float]:  # fmt: skip
    """The burst's RSS figures: ``before_mb`` the plugin's summed RSS idle before the
    burst, the series (seconds since every line was stored, and acknowledged with
    Kafka; MB) sampled after it, ``peak_mb`` its summed peak (VmHWM) since before the
    burst. *after* is the first sample at or after ``after_s`` (NaN if the series
    stops short); the ratio is after over before. The peak is never below a sample."""
    if len(times_s) != len(rss_mb):
        raise ValueError("need one RSS value per sample time")
    after = next((v for t, v in zip(times_s, rss_mb, strict=True) if t >= after_s), math.nan)
    return {
        "rss_before_mb": before_mb,
        "rss_peak_mb": max([peak_mb, *rss_mb]),
        "rss_after_60s_mb": after,
        "rss_after_ratio": ratio(after, before_mb),
    }


def ratio(value: float, reference: float) -> float:
    if math.isnan(value) or math.isnan(reference) or reference <= 0:
        return math.nan
    return value / reference


def aggregate(samples: Iterable[Sample]) -> list[Row]:
    """One row per (workload, driver), in first-seen order, with the median of
    each figure; the ratios of RATIOS' figures to json-file's on the same workload;
    and ``kafka_vs_ceiling``, Kafka acknowledged lines/s over the ceiling's records/s
    on the same workload."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.workload, s.driver), []).append(s)
    rows: list[Row] = []
    for (workload, driver), group in groups.items():
        keys: list[str] = []
        for s in group:
            keys += [k for k in s.figures if k not in keys]
        figs = {k: median(s.figures[k] for s in group if k in s.figures) for k in keys}
        rows.append(Row(workload, driver, len(group), figs))
    for figure, key in RATIOS.items():
        refs = {r.workload: r.figures.get(figure, math.nan) for r in rows if r.driver == REFERENCE}
        for r in rows:
            if figure in r.figures and r.workload in refs:
                r.figures[key] = ratio(r.figures[figure], refs[r.workload])
    ceilings = {r.workload: r.figures.get("kafka_lps", math.nan) for r in rows
                if r.driver == CEILING}  # fmt: skip
    for r in rows:
        if "kafka_lps" in r.figures and r.workload in ceilings:
            r.figures["kafka_vs_ceiling"] = ratio(r.figures["kafka_lps"], ceilings[r.workload])
    return rows


@dataclass(frozen=True)
class Target:
    """One of pylog's performance targets: ``figure`` of ``driver`` on ``workload`` must be
    ``op`` (``<=`` or ``>=`` or ``<``) ``limit``."""

    text: str
    workload: str
    driver: str
    figure: str
    op: str
    limit: float

    def check(self, rows: Sequence[Row]) -> tuple[float, bool | None]:
        """(measured value, met?); None when the workload did not run."""
        for r in rows:
            if r.workload == self.workload and r.driver == self.driver:
                value = r.figures.get(self.figure, math.nan)
                if math.isnan(value):
                    return value, None
                ok = {
                    "<=": value <= self.limit,
                    "<": value < self.limit,
                    ">=": value >= self.limit,
                    "==": value == self.limit,
                }[self.op]
                return value, ok
        return math.nan, None


TARGETS: tuple[Target, ...] = (
    Target("local-only wall <= 1.3x json-file (1M lines)", "1m", "pylog", "ratio", "<=", 1.3),
    Target("with Kafka wall <= 1.1x json-file (1M lines)", "1m", "pylog+kafka", "ratio", "<=", 1.1),
    Target("10 containers local-only wall <= 1.2x json-file", "10c", "pylog", "ratio", "<=", 1.2),
    Target("10 containers with Kafka wall <= 1.5x json-file", "10c", "pylog+kafka", "ratio",
           "<=", 1.5),
    Target("with Kafka every line in Kafka (1M lines)", "1m", "pylog+kafka", "kafka_missing",
           "==", 0),
    Target(">= 300,000 lines/s into Kafka from 10 containers, lz4", "10c", "pylog+kafka",
           "kafka_lps", ">=", 300_000),
    Target("Kafka acked lines/s from one container >= 0.5x Kafka's ProducerPerformance",
           "1m", "pylog+kafka", "kafka_vs_ceiling", ">=", 0.5),
    Target("Kafka acked lines/s from 10 containers >= 0.6x Kafka's ProducerPerformance",
           "10c", "pylog+kafka", "kafka_vs_ceiling", ">=", 0.6),
    Target("p99 < 500 ms at 20,000 lines/s", "paced", "pylog+kafka", "lat_p99_ms", "<", 500),
    Target("<= 1.5 pylog CPU s per million lines, local only", "1m", "pylog", "cpu_s_per_mline",
           "<=", 1.5),
    Target("<= 4 pylog CPU s per million lines with Kafka", "1m", "pylog+kafka",
           "cpu_s_per_mline", "<=", 4.0),
    Target("RSS < 80 MB idle", "startup", "pylog", "rss_idle_mb", "<", 80),
    Target("RSS < 200 MB with 200 containers logging", "many", "pylog", "rss_peak_mb", "<", 200),
    Target("docker logs --tail 100 on 100 MB of logs < 0.2 s", "1m", "pylog", "tail_s", "<", 0.2),
    Target("whole docker logs of 1M lines <= 1.0x json-file", "readback", "pylog",
           "read_all_ratio", "<=", 1.0),
    Target("docker logs --since (the second half of 1M lines) <= 1.0x json-file", "readback",
           "pylog", "read_since_ratio", "<=", 1.0),
    Target("plugin listening within 1 s of process start", "startup", "pylog", "listen_s",
           "<", 1.0),
    Target("RSS back within 20 % of its pre-burst level within 60 s after a burst (local only)",
           "burst", "pylog", "rss_after_ratio", "<=", 1.2),
    Target("RSS back within 20 % of its pre-burst level within 60 s after a burst (with Kafka)",
           "burst", "pylog+kafka", "rss_after_ratio", "<=", 1.2),
    Target("RSS flat over a 10-minute soak (< 5 % growth from minute 2 to the end)", "soak",
           "pylog+kafka", "rss_growth_pct", "<", 5.0),
)  # fmt: skip
