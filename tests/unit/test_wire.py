"""The generated protobuf module must match proto/entry.proto (regenerate with `make proto`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_module_is_fresh(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            str(ROOT / "proto" / "entry.proto"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    for name in ("entry_pb2.py", "entry_pb2.pyi"):
        committed = (ROOT / "plugin" / "pylog" / "wire" / name).read_text()
        assert (tmp_path / name).read_text() == committed, f"{name} is stale: run `make proto`"
    assert shutil.which("protoc-gen-mypy", path=env["PATH"])


def test_field_numbers_match_moby() -> None:
    from pylog.wire.entry_pb2 import LogEntry, PartialLogEntryMetadata

    fields = {f.name: f.number for f in LogEntry.DESCRIPTOR.fields}
    assert fields == {
        "source": 1,
        "time_nano": 2,
        "line": 3,
        "partial": 4,
        "partial_log_metadata": 5,
    }
    meta = {f.name: f.number for f in PartialLogEntryMetadata.DESCRIPTOR.fields}
    assert meta == {"last": 1, "id": 2, "ordinal": 3}
