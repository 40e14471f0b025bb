"""What the operators' kit (ops/) queries, and what an exposition offers.

Shared by tests/unit/test_ops_kit.py and tests/kafka/test_ops_kit_kafka.py.

Metric names come out of PromQL by elimination: string literals, label matchers,
ranges and grouping label lists are cut out, then every identifier that is not a
function call or a keyword is a metric name. Sample names come from an exposition's
families and their types, the way Prometheus sees them: a counter family ``pylog_x``
is scraped as ``pylog_x_total``, a histogram ``pylog_y`` as ``pylog_y_bucket``,
``pylog_y_sum`` and ``pylog_y_count``, a gauge as its own name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "pylog.json"
RULES = ROOT / "ops" / "prometheus" / "pylog-alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "pylog-alerts.test.yml"

# -- PromQL: metric names out of an expression -----------------------------------------

#: Words of PromQL that are not metric names when they stand alone.
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
#: Label lists after these take identifiers that are label names, not metrics.
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGE = re.compile(r"\[[^\]]*\]")
GRAFANA_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?")
IDENT = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
#: label_values(metric, label) / label_values(label) in Grafana variable queries.
LABEL_VALUES = re.compile(r"^\s*label_values\((.*?)(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)?\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions,
    keywords, label names (in ``{...}`` and grouping lists), durations or numbers."""
    text = STRING.sub('""', expr)
    text = GRAFANA_VAR.sub("1", text)
    while MATCHERS.search(text):
        text = MATCHERS.sub(" ", text)
    text = RANGE.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for m in IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


# -- what the dashboard and the rules query ----------------------------------------------


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard() -> dict[str, Any]:
    obj = json.loads(DASHBOARD.read_text())
    assert isinstance(obj, dict)
    return obj


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets, then variable queries
    (``label_values(metric, label)`` gives its metric selector)."""
    exprs = [t["expr"] for p in all_panels(dashboard()["panels"]) for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = LABEL_VALUES.match(query)
        assert m, f"variable {var['name']}: not a label_values() query: {query}"
        exprs.append(m.group(1))
    return exprs


def rules() -> list[dict[str, Any]]:
    obj = yaml.safe_load(RULES.read_text())
    return [r for group in obj["groups"] for r in group["rules"]]


#: Metrics the kit queries that are not pylog's, and the only places they may be used.
#: node-exporter writes this one for the textfile `pylog metrics` goes to (README): its
#: age is how a dead plugin shows, since the file then keeps its last values.
EXTERNAL = {"node_textfile_mtime_seconds": {"alert PylogMetricsStale"}}


def queried_names(external: bool = False) -> dict[str, set[str]]:
    """Metric name -> where it is used; the :data:`EXTERNAL` ones only if asked for."""
    used: dict[str, set[str]] = {}
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("dashboard")
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    if not external:
        used = {name: where for name, where in used.items() if name not in EXTERNAL}
    return used


# -- what pylog exports --------------------------------------------------------------------

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def sample_names(exposition: str) -> set[str]:
    """The series names Prometheus gets from this exposition, by family type.

    The parser gives a counter's family name without ``_total``; the ``_created``
    samples prometheus_client may add are left out (pylog's collector writes none)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        assert family.type in SUFFIXES, f"{family.name}: unexpected type {family.type}"
        names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def missing(used: dict[str, set[str]], exported: set[str]) -> dict[str, set[str]]:
    return {name: where for name, where in used.items() if name not in exported}
