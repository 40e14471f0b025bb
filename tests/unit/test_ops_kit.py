"""The operators' kit (ops/): every metric the dashboard and the alert rules query exists.

A dashboard panel or an alert over a metric name pylog does not export shows "No data"
or never fires, and nothing says why. So the PromQL of ``ops/grafana/pylog.json`` and
``ops/prometheus/pylog-alerts.yml`` is parsed here, its metric names extracted, and each
is looked up among the sample names of a real ``/metrics`` exposition: a real
LoggingService with a container being logged.

Sample names come from the exposition's families and their types (``ops_queries``),
the way Prometheus sees them. So a query on ``pylog_x`` without ``_total``, or on a
gauge with ``_total``, fails as it should. prometheus_client writes every family
pylog's collector yields, samples or not, so the Kafka producer families are in the
exposition of a service that has no producer (tests/kafka/test_ops_kit_kafka.py checks
them as real samples of a shipping service).

The one metric that is not pylog's, node-exporter's ``node_textfile_mtime_seconds``
(how a dead plugin shows), is listed in ``ops_queries.EXTERNAL`` with where it may be used.

Where promtool (Debian's ``prometheus`` package) is installed, it checks the rules, runs
their unit tests (``pylog-alerts.test.yml``) and parses every dashboard expression.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import Fifo, encode_entries, wait_for
from .ops_queries import (
    EXTERNAL,
    RULE_TESTS,
    RULES,
    all_panels,
    dashboard,
    dashboard_exprs,
    metric_names,
    missing,
    queried_names,
    rules,
    sample_names,
)


def test_metric_names_are_extracted_with_their_suffixes() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (brokers, le) (rate(pylog_kafka_delivery_latency"
        '_seconds_bucket{instance=~"$instance", kind!="rate(x)"}[$__rate_interval])))'
        " / on (instance) group_left (brokers) pylog_process_open_fds offset 5m"
        ' and ignoring (kind) pylog_lines_dropped_total{reason="store_refused"} > bool 1e3'
    )
    assert metric_names(expr) == {
        "pylog_kafka_delivery_latency_seconds_bucket",
        "pylog_process_open_fds",
        "pylog_lines_dropped_total",
    }
    assert metric_names("time() - pylog_process_start_time_seconds * 1000") == {
        "pylog_process_start_time_seconds"
    }
    assert metric_names("vector(1) > 0.5") == set()


@pytest.fixture
def exposition(service: LoggingService, make_fifo: Callable[[str], Fifo]) -> str:
    """The /metrics text of a real service logging one container."""
    fifo = make_fifo("f1")
    service.start_logging(
        str(fifo.path), {"ContainerID": "cd" * 32, "ContainerName": "/web", "Config": {}}
    )
    fifo.write(encode_entries([Entry("stdout", i, f"line {i}".encode()) for i in range(10)]))
    (driver,) = service.drivers()
    wait_for(lambda: driver.stats.lines_stored == 10)
    return service.metrics().decode()


def test_every_metric_the_dashboard_and_the_alerts_query_is_exported(exposition: str) -> None:
    used = queried_names()
    exported = sample_names(exposition)
    assert missing(used, exported) == {}
    # The kit covers what operators asked for; an empty parse would pass the line above.
    for name in (
        "pylog_lines_received_total",
        "pylog_bytes_stored_total",
        "pylog_lines_dropped_total",
        "pylog_frame_errors_total",
        "pylog_frame_skipped_bytes_total",
        "pylog_fifos_reattached_total",
        "pylog_store_damaged_files_total",
        "pylog_ship_backlog_bytes",
        "pylog_kafka_records_acked_total",
        "pylog_kafka_send_errors_total",
        "pylog_kafka_oldest_in_flight_seconds",
        "pylog_kafka_delivery_latency_seconds_bucket",
        "pylog_process_start_time_seconds",
        "pylog_process_open_fds",
        "pylog_process_cpu_seconds_total",
    ):
        assert name in used, f"{name} is used by neither the dashboard nor the alerts"


def test_only_the_listed_external_metrics_are_queried_and_only_where_listed() -> None:
    used = queried_names(external=True)
    outside = {name: where for name, where in used.items() if not name.startswith("pylog_")}
    assert outside == EXTERNAL


def test_a_misspelt_or_wrongly_suffixed_name_is_caught(exposition: str) -> None:
    exported = sample_names(exposition)
    used = {
        "pylog_lines_recieved_total": {"x"},  # misspelt
        "pylog_lines_received": {"x"},  # a counter without _total
        "pylog_ship_backlog_bytes_total": {"x"},  # a gauge with _total
        "pylog_kafka_delivery_latency_seconds": {"x"},  # a histogram without a suffix
        "pylog_lines_received_total": {"x"},
    }
    assert set(missing(used, exported)) == set(used) - {"pylog_lines_received_total"}


# -- shape -----------------------------------------------------------------------------------


def test_the_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    d = dashboard()
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels = list(all_panels(d["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"] == ds, p["title"]
        assert p["targets"], p["title"]
        assert all(t["datasource"] == ds for t in p["targets"]), p["title"]
        assert p.get("description"), f"{p['title']}: say what the panel shows"
    for var in d["templating"]["list"]:
        assert var["datasource"] == ds, var["name"]


def test_every_alert_has_a_for_a_severity_a_summary_and_a_description() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for r in rules():
        assert "for" in r, r["alert"]
        assert r["labels"]["severity"] in {"warning", "critical"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]


# -- promtool ---------------------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian's `prometheus` package; "
    "scripts/engine.sh packages installs it)",
)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


@needs_promtool
@pytest.mark.timeout(180)
def test_promtool_checks_the_rules_and_runs_their_unit_tests(tmp_path: Path) -> None:
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    # promtool's unit tests compare annotations too; they test when alerts fire, so
    # they run on the rules without annotations (whose templates check rules checked).
    obj = yaml.safe_load(RULES.read_text())
    for group in obj["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / RULES.name).write_text(yaml.safe_dump(obj))
    shutil.copy(RULE_TESTS, tmp_path)
    res = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by what they stand for in a plain PromQL query."""
    for var, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "1m"),
        ("$__range", "1h"),
    ):
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


@needs_promtool
@pytest.mark.timeout(180)
def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    exprs = [grafana_to_promql(e) for e in dashboard_exprs()]
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"pylog:panel_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump(recorded))
    res = promtool("check", "rules", str(path))
    assert res.returncode == 0, res.stdout + res.stderr


# -- node-exporter's textfile collector, the README's way to scrape pylog --------------------

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(
    NODE_EXPORTER is None,
    reason="node-exporter not installed (Debian's `prometheus-node-exporter`; "
    "scripts/engine.sh packages installs it)",
)
@pytest.mark.timeout(60)
def test_node_exporter_serves_the_exposition_from_its_textfile_directory(
    exposition: str, tmp_path: Path
) -> None:
    """The README's scrape path: pylog's /metrics written where node-exporter's textfile
    collector reads it. Every pylog series comes out as written, and the file's mtime
    series carries a ``file`` label that PylogMetricsStale's matcher selects."""
    assert NODE_EXPORTER is not None
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "pylog.prom").write_text(exposition)
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "node-exporter.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                NODE_EXPORTER,
                f"--web.listen-address={address}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={textfiles}",
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    try:
        scraped = ""
        deadline = time.monotonic() + 30
        while not scraped:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"node-exporter did not answer: {log.read_text()}"
            try:
                scraped = requests.get(f"http://{address}/metrics", timeout=5).text
            except requests.ConnectionError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)

    def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    got = series(scraped)
    assert got[("node_textfile_scrape_error", ())] == 0
    for key, value in series(exposition).items():
        assert got.get(key) == value, key
    stale = next(r for r in rules() if r["alert"] == "PylogMetricsStale")
    matcher = re.search(r'file=~"((?:[^"\\]|\\.)*)"', stale["expr"])
    assert matcher
    files = [dict(labels)["file"] for name, labels in got if name == "node_textfile_mtime_seconds"]
    assert len(files) == 1
    assert re.fullmatch(matcher.group(1).replace("\\\\", "\\"), files[0]), files[0]
