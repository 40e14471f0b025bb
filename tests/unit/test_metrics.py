"""GET /metrics: Prometheus text read from the live counters of a real service."""

import ast
import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pylog import metrics
from pylog.api import create_app
from pylog.config import KafkaSettings, Settings
from pylog.metrics import status_report
from pylog.models import Entry
from pylog.service import LoggingService
from pylog.snapshot import FileLogCounters, IngestCounters, Snapshot

from ..helpers import Fifo, encode_entries, retries, wait_for

CID = "ab" * 32
SECRET = "s3cr3t-pa55word"


def info(cid: str = CID, name: str = "/web", **config: str) -> dict[str, object]:
    return {"ContainerID": cid, "ContainerName": name, "Config": config}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_ingest_counters_per_container(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    lines = [Entry("stdout", i, f"line {i}".encode()) for i in range(100)]
    fifo.write(encode_entries(lines))
    fifo.write(b"\x00\x00\x00\x03\xff\xff\xff")  # one corrupt frame, 7 bytes
    (driver,) = service.drivers()
    wait_for(lambda: driver.stats.lines_stored == 100 and driver.frame_errors.corrupt == 1)

    text = service.metrics().decode()
    c = {"container_id": CID[:12], "container_name": "web"}
    assert value(text, "pylog_lines_received_total", **c) == 100
    assert value(text, "pylog_bytes_received_total", **c) == sum(len(e.line) for e in lines)
    assert value(text, "pylog_lines_stored_total", **c) == 100
    assert value(text, "pylog_bytes_stored_total", **c) > sum(len(e.line) for e in lines)
    assert value(text, "pylog_lines_dropped_total", reason="store_refused", **c) == 0
    assert value(text, "pylog_frame_errors_total", kind="corrupt", **c) == 1
    assert value(text, "pylog_frame_errors_total", kind="oversize", **c) == 0
    assert value(text, "pylog_frame_errors_total", kind="truncated", **c) == 0
    assert value(text, "pylog_frame_skipped_bytes_total", **c) == 7
    assert value(text, "pylog_containers_active") == 1
    assert value(text, "pylog_fifos_reattached_total") == 0
    assert value(text, "pylog_process_resident_memory_bytes") > 1_000_000
    assert value(text, "pylog_process_open_fds") > 0

    # Live: the next scrape sees the next lines, and an ended container is gone.
    fifo.write(encode_entries(lines[:10]))
    wait_for(lambda: driver.stats.lines_stored == 110)
    assert value(service.metrics().decode(), "pylog_lines_stored_total", **c) == 110
    fifo.close()
    wait_for(lambda: not service.drivers())
    text = service.metrics().decode()
    assert value(text, "pylog_containers_active") == 0
    assert not any(n == "pylog_lines_stored_total" for n, _ in samples(text))


def test_the_route_serves_the_exposition(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info(name="/api"))
    fifo.write(encode_entries([Entry("stderr", 1, b"x")]))
    wait_for(lambda: service.drivers()[0].stats.lines_stored == 1)
    resp = create_app(service).test_client().get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    text = resp.get_data(as_text=True)
    assert value(text, "pylog_lines_stored_total", container_id=CID[:12], container_name="api") == 1


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def kservice(settings: Settings) -> Iterator[LoggingService]:
    kafka = KafkaSettings(
        brokers=(closed_port(),), sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SECRET
    )
    svc = LoggingService(dataclasses.replace(settings, kafka=kafka))
    svc.startup()
    yield svc
    svc.shutdown(timeout=2)


def test_shipping_backlog_and_retries_with_the_broker_down(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    kservice.start_logging(str(fifo.path), info())
    fifo.write(encode_entries([Entry("stdout", i, b"y" * 50) for i in range(200)]))
    (driver,) = kservice.drivers()
    wait_for(lambda: driver.stats.lines_stored == 200 and retries(kservice) >= 1, 15)

    text = kservice.metrics().decode()
    c = {"container_id": CID[:12], "container_name": "web", "log": "stdout"}
    assert value(text, "pylog_ship_lines_acked_total", **c) == 0
    assert value(text, "pylog_ship_retries_total", **c) >= 1
    assert value(text, "pylog_ship_lines_lost_rotation_total", **c) == 0
    assert value(text, "pylog_ship_backlog_bytes", **c) == driver.stats.bytes_stored
    assert value(text, "pylog_ship_backlog_files", **c) == 0
    assert value(text, "pylog_ship_shippers_active") == 1
    down = kservice.settings.kafka.brokers[0]
    assert value(text, "pylog_kafka_producer_starts_total", brokers=down) == 0
    assert SECRET not in text


def test_status_reports_backlog_and_broker_reachability(
    kservice: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = f"127.0.0.1:{listening.getsockname()[1]}"
        kservice.start_logging(str(fifo.path), info(**{"kafka-brokers": up}))
        fifo.write(encode_entries([Entry("stdout", 1, b"z")]))
        (driver,) = kservice.drivers()
        wait_for(lambda: driver.stats.lines_stored == 1)
        report = kservice.status()
    assert report["status"] == "ok"
    (c,) = report["containers"]
    assert (c["id"], c["name"], c["lines_stored"]) == (CID, "web", 1)
    assert c["shipping"]["brokers"] == [up]
    brokers = {b["address"]: b for b in report["kafka"]["brokers"]}
    down = kservice.settings.kafka.brokers[0]
    assert brokers[up]["reachable"] is True
    assert brokers[down]["reachable"] is False
    assert "ConnectionRefused" in brokers[down]["error"]
    assert SECRET not in json.dumps(report)


def test_metrics_imports_nothing_of_the_service() -> None:
    """metrics.py renders a Snapshot: it must not reach into the service, drivers or shippers."""
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            imported.add(base)
            imported.update(f"{base}.{a.name}".replace("..", ".") for a in node.names)
    forbidden = ("service", "driver", "shipper", "ingest", "store", "api", "server")
    bad = sorted(
        name
        for name in imported
        for part in name.replace("pylog.", ".").split(".")
        if part in forbidden
    )
    assert bad == []


def test_status_renders_from_a_snapshot_alone() -> None:
    snap = Snapshot(
        fifos=[
            IngestCounters(
                CID, "/web", 3, 30, 2, 99, 1, {"corrupt": 1, "oversize": 0, "truncated": 2}, 40
            )
        ],
        fifos_reattached=4,
    )
    report = status_report(snap)
    (c,) = report["containers"]
    assert (c["name"], c["lines_stored"], c["lines_dropped"], c["frame_errors"]) == ("web", 2, 1, 3)
    assert report["fifos_reattached"] == 4 and report["kafka"]["configured"] is False


def test_declared_file_logs_render_per_container_and_log() -> None:
    snap = Snapshot(
        file_logs=[
            FileLogCounters(
                CID, "/web", "access", 10, 400, 1, 2, {"not_regular": 1, "cap": 0}, 3, 4
            ),
            FileLogCounters(CID, "/web", "error", 5, 50, 0, 1, {"not_regular": 0, "cap": 7}, 0, 0),
        ]
    )
    text = metrics.exposition(metrics.make_registry(lambda: snap)).decode()
    web = {"container_id": CID[:12], "container_name": "web"}
    assert value(text, "pylog_file_lines_total", **web, log="access") == 10
    assert value(text, "pylog_file_bytes_total", **web, log="access") == 400
    assert value(text, "pylog_file_lines_dropped_total", **web, log="access") == 1
    assert value(text, "pylog_file_files_open", **web, log="error") == 1
    assert value(text, "pylog_file_files_skipped", **web, log="access", reason="not_regular") == 1
    assert value(text, "pylog_file_files_skipped", **web, log="error", reason="cap") == 7
    assert value(text, "pylog_file_truncations_total", **web, log="access") == 3
    assert value(text, "pylog_file_rotations_total", **web, log="access") == 4
