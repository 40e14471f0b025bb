"""The ``files`` bench workload's pure parts (scripts/bench): counting a log's lines
in pylog's store from the host, the declaration labels, the writing command and the
table's rows."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

from bench.report import chart_workloads, markdown
from bench.stats import Sample, aggregate
from bench.stored import LineCounter
from bench.workloads import (
    DEFAULT_WORKLOADS,
    FILE_PATH,
    QUICK_TITLES,
    file_declaration,
    file_write_cmd,
    files_rows,
)
from pylog.config import parse_declarations


def record(i: int) -> bytes:
    return b'{"log":"line %d\\n","stream":"stdout","time":"2026-12-01T10:00:00Z"}\n' % i


def records(first: int, n: int) -> bytes:
    return b"".join(record(i) for i in range(first, first + n))


def test_a_log_not_there_yet_holds_no_line(tmp_path: Path) -> None:
    assert LineCounter(tmp_path / "files" / "app").count() == 0


def test_only_whole_records_count_and_the_rest_is_read_on(tmp_path: Path) -> None:
    current = tmp_path / "json.log"
    current.write_bytes(records(0, 3) + record(3)[:10])
    counter = LineCounter(tmp_path)
    assert counter.count() == 3
    with current.open("ab") as f:
        f.write(record(3)[10:] + records(4, 2))
    assert counter.count() == 6


def test_a_count_reads_on_from_where_the_last_one_stopped(tmp_path: Path) -> None:
    current = tmp_path / "json.log"
    current.write_bytes(records(0, 5))
    counter = LineCounter(tmp_path)
    assert counter.count() == 5
    # Bytes already counted are not read again: newlines put into them are not seen.
    with current.open("r+b") as f:
        f.write(b"\n" * 20)
    assert counter.count() == 5
    with current.open("ab") as f:
        f.write(records(5, 1))
    assert counter.count() == 6


def test_rotation_by_rename_keeps_the_count(tmp_path: Path) -> None:
    current = tmp_path / "json.log"
    current.write_bytes(records(0, 4))
    counter = LineCounter(tmp_path)
    assert counter.count() == 4
    with current.open("ab") as f:
        f.write(records(4, 2))
    current.rename(tmp_path / "json.log.1")
    current.write_bytes(records(6, 3))
    assert counter.count() == 9


def test_a_gz_counts_once_its_plain_file_is_gone(tmp_path: Path) -> None:
    counter = LineCounter(tmp_path)
    (tmp_path / "json.log.1").write_bytes(records(0, 4))
    (tmp_path / "json.log").write_bytes(records(4, 2))
    assert counter.count() == 6
    # Being compressed: the .tmp, then the .gz beside its plain file.
    (tmp_path / "json.log.1.gz.tmp").write_bytes(gzip.compress(records(0, 4)))
    assert counter.count() == 6
    (tmp_path / "json.log.1.gz.tmp").rename(tmp_path / "json.log.1.gz")
    assert counter.count() == 6
    (tmp_path / "json.log.1").unlink()
    assert counter.count() == 6
    with (tmp_path / "json.log").open("ab") as f:
        f.write(records(6, 1))
    assert counter.count() == 7


def test_other_files_of_the_log_directory_do_not_count(tmp_path: Path) -> None:
    (tmp_path / "json.log").write_bytes(records(0, 2))
    (tmp_path / "files.registry").write_bytes(b'{"version": 1, "files": []}\n')
    (tmp_path / "kafka.position").write_bytes(b"1 2 3\n")
    (tmp_path / "generation").write_bytes(b"0\n")
    (tmp_path / "json.logx").write_bytes(b"\n\n")
    assert LineCounter(tmp_path).count() == 2


def test_the_declaration_is_what_pylog_accepts() -> None:
    def labels(args: list[str]) -> dict[str, str]:
        assert args[::2] == ["--label"] * (len(args) // 2)
        return dict(a.split("=", 1) for a in args[1::2])

    (local,) = parse_declarations(labels(file_declaration("app", FILE_PATH, None)), {})
    assert (local.name, local.path, local.target) == ("app", "/var/log/app.log", "app")
    (shipped,) = parse_declarations(
        labels(file_declaration("app", FILE_PATH, "bench-0123456789")), {}
    )
    assert (shipped.path, shipped.target) == ("/var/log/app.log", "bench-0123456789")


def test_the_file_gets_the_lines_and_stdout_nothing(tmp_path: Path) -> None:
    path = tmp_path / "var" / "log" / "app.log"
    cmd = ["sh", "-c", file_write_cmd(1000, 100, str(path))]
    out = subprocess.run(cmd, capture_output=True, check=True, env={"PATH": os.environ["PATH"]})
    assert out.stdout == b""
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 1000
    assert {len(line) for line in lines} == {100}


def test_rows_are_stdout_and_file_per_driver_in_use() -> None:
    assert files_rows(["none", "pylog", "pylog+kafka"]) == [
        "pylog stdout", "pylog file", "pylog+kafka stdout", "pylog+kafka file",
    ]  # fmt: skip
    assert files_rows(["json-file", "pylog"]) == ["pylog stdout", "pylog file"]
    assert files_rows(["json-file"]) == []


def test_files_runs_by_default_has_a_quick_title_and_a_table() -> None:
    assert "files" in DEFAULT_WORKLOADS and "files" in QUICK_TITLES
    rows = aggregate([
        Sample("files", "pylog stdout", 1, {"wall_s": 2.0, "stored_lps": 400_000.0}),
        Sample("files", "pylog file", 1, {"wall_s": 0.5, "stored_lps": 300_000.0}),
    ])  # fmt: skip
    md = markdown(rows, {"files": "to stdout or a file"}, "header")
    assert "| pylog stdout |" in md and "| pylog file   |" in md
    assert "300,000" in md


def test_the_chart_bars_leave_out_the_files_rows() -> None:
    rows = aggregate([
        Sample("1m", "pylog", 1, {"wall_s": 2.0}),
        Sample("files", "pylog file", 1, {"wall_s": 0.5}),
        Sample("sweep 1x100B", "pylog", 1, {"wall_s": 1.0}),
        Sample("startup", "pylog", 1, {"enable_s": 1.0}),
    ])  # fmt: skip
    assert chart_workloads(rows) == ["1m"]
