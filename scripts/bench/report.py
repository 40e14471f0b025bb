"""Pure formatting: the markdown tables, the JSON, and the PNG chart."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .stats import FIGURES, TARGETS, Row, Sample, Target


def fmt(figure: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return FIGURES[figure][1].format(value) if figure in FIGURES else f"{value:g}"


def table(headings: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A markdown table, columns padded so it also reads as plain text.
    The first column is left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headings)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(out) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)
    ) + "|"  # fmt: skip
    return "\n".join([line(headings), rule, *(line(r) for r in body)])


def workload_tables(rows: Sequence[Row], titles: Mapping[str, str]) -> str:
    """One table per workload, with only the figures measured on it."""
    parts: list[str] = []
    for workload in dict.fromkeys(r.workload for r in rows):
        group = [r for r in rows if r.workload == workload]
        cols = [f for f in FIGURES if any(f in r.figures for r in group)]
        body = [[r.driver, *(fmt(f, r.figures.get(f)) for f in cols)] for r in group]
        rounds = sorted({r.rounds for r in group})
        n = "/".join(map(str, rounds))
        title = titles.get(workload, workload)
        parts.append(f"**{workload}**: {title} (median of {n} rounds)\n\n"
                     + table(["driver", *(FIGURES[c][0] for c in cols)], body))  # fmt: skip
    return "\n\n".join(parts)


def targets_table(rows: Sequence[Row], targets: Sequence[Target] = TARGETS) -> str:
    body = []
    for t in targets:
        value, ok = t.check(rows)
        verdict = "not run" if ok is None else ("met" if ok else "MISSED")
        body.append([t.text, fmt(t.figure, value), verdict])
    return table(["target", "measured", ""], body)


def markdown(rows: Sequence[Row], titles: Mapping[str, str], header: str) -> str:
    return (f"{header}\n\n{workload_tables(rows, titles)}\n\n**Targets**\n\n"
            f"{targets_table(rows)}\n")  # fmt: skip


def to_json(samples: Sequence[Sample], rows: Sequence[Row], meta: Mapping[str, Any]) -> str:
    def clean(d: dict[str, float]) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v) for k, v in d.items()}

    return json.dumps(
        {
            "meta": dict(meta),
            "medians": [{**asdict(r), "figures": clean(r.figures)} for r in rows],
            "samples": [{**asdict(s), "figures": clean(s.figures)} for s in samples],
            "targets": [
                {"target": t.text, "measured": None if math.isnan(v) else v, "met": ok}
                for t in TARGETS
                for v, ok in [t.check(rows)]
            ],
        },
        indent=1,
    )


DRIVER_COLOURS = {
    "none": "#bbbbbb",
    "json-file": "#4c72b0",
    "local": "#55a868",
    "pylog": "#dd8452",
    "pylog+kafka": "#c44e52",
}


def chart(rows: Sequence[Row], path: Path, title: str, samples: Sequence[Sample] = ()) -> None:
    """The same medians as the tables, as a PNG: wall time per workload and driver,
    Kafka throughput, pylog CPU, and the container-count and line-size sweeps; and,
    when a soak ran, its RSS over time in a third row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    soaks = [s for s in samples
             if s.workload == "soak" and "rss_mb" in s.series and "t_s" in s.series]  # fmt: skip
    if soaks and all(r.workload == "soak" for r in rows):  # a soak alone: its plot alone
        fig, ax = plt.subplots(figsize=(13, 4.25))
        _soak(ax, soaks)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    nrows = 3 if soaks else 2
    fig, axes = plt.subplots(nrows, 2, figsize=(13, 4.25 * nrows), squeeze=False)
    ax_wall, ax_kafka, ax_cpu, ax_sweep = axes.flat[:4]
    if soaks:
        grid = axes[2, 0].get_gridspec()
        for ax in axes[2]:
            ax.remove()
        _soak(fig.add_subplot(grid[2, :]), soaks)

    main = chart_workloads(rows)
    drivers = [d for d in DRIVER_COLOURS if any(r.driver == d for r in rows)]
    _bars(ax_wall, rows, main, drivers, "ratio", "wall time / json-file's (lower is better)")
    ax_wall.axhline(1.0, color="black", lw=0.8)
    _bars(ax_kafka, rows, main, ["pylog+kafka"], "kafka_lps", "lines/s acknowledged by Kafka")
    _bars(ax_cpu, rows, main, ["pylog", "pylog+kafka"], "cpu_s_per_mline",
          "pylog CPU seconds per million lines")  # fmt: skip

    sweeps = [r for r in rows if r.workload.startswith("sweep")]
    for driver in ("pylog", "pylog+kafka"):
        pts = [r for r in sweeps if r.driver == driver and "ratio" in r.figures]
        if pts:
            ax_sweep.plot([r.workload.removeprefix("sweep ") for r in pts],
                          [r.figures["ratio"] for r in pts], marker="o", label=driver,
                          color=DRIVER_COLOURS[driver])  # fmt: skip
    ax_sweep.axhline(1.0, color="black", lw=0.8)
    ax_sweep.set_title("sweep: wall time / json-file's", fontsize=10)
    ax_sweep.tick_params(axis="x", labelrotation=30, labelsize=8)
    if sweeps:
        ax_sweep.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def chart_workloads(rows: Sequence[Row]) -> list[str]:
    """The workloads in the chart's bar plots: those with a wall time on a row of a
    driver (not the files workload's ``<driver> <kind>`` rows), the sweeps apart."""
    return [w for w in dict.fromkeys(r.workload for r in rows)
            if not w.startswith("sweep") and any(
                "wall_s" in r.figures and r.driver in DRIVER_COLOURS
                for r in rows if r.workload == w)]  # fmt: skip


def _bars(ax: Any, rows: Sequence[Row], workloads: Sequence[str], drivers: Sequence[str],
          figure: str, title: str) -> None:  # fmt: skip
    width = 0.8 / max(1, len(drivers))
    for i, d in enumerate(drivers):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            for r in rows:
                if (
                    r.workload == w
                    and r.driver == d
                    and not math.isnan(r.figures.get(figure, math.nan))
                ):
                    xs.append(j + i * width)
                    ys.append(r.figures[figure])
        if xs:
            ax.bar(xs, ys, width, label=d, color=DRIVER_COLOURS.get(d))
    ax.set_xticks([j + width * (len(drivers) - 1) / 2 for j in range(len(workloads))])
    ax.set_xticklabels(workloads, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _soak(ax: Any, soaks: Sequence[Sample]) -> None:
    """RSS over the soak: the sum, and the arbiter's and the worker's apart."""
    for s in soaks:
        minutes = [t / 60 for t in s.series["t_s"]]
        label = f"round {s.round}: " if len(soaks) > 1 else ""
        ax.plot(minutes, s.series["rss_mb"], marker=".", label=f"{label}RSS, all processes",
                color=DRIVER_COLOURS.get(s.driver))  # fmt: skip
        for key, name, style in (("rss_workers_mb", "worker", "--"),
                                 ("rss_arbiter_mb", "arbiter", ":")):  # fmt: skip
            if key in s.series:
                ax.plot(minutes, s.series[key], style, label=f"{label}{name}",
                        color=DRIVER_COLOURS.get(s.driver))  # fmt: skip
        if "planned_s" in s.figures:  # the "2-minute" mark: a fifth of the planned run
            ax.axvline(s.figures["planned_s"] / 5 / 60, color="black", lw=0.6)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("minutes since go", fontsize=9)
    ax.set_title("soak (pylog+kafka): pylog RSS MB over time; line: the 2-minute mark",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
