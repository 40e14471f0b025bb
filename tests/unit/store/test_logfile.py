import gzip
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pylog.config import RotationPolicy
from pylog.store import gz, logfile
from pylog.store.logfile import LogFile, StoreError

from .conftest import make_records


def files(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.startswith("json.log"))


def read_all(d: Path) -> bytes:
    out = b""
    names = [n for n in files(d) if n != "json.log"]
    for name in sorted(names, key=lambda n: int(n.split(".")[2])):
        path = d / name
        out += gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    return out + (d / "json.log").read_bytes()


def test_appends_whole_records(open_log: Callable[..., LogFile]) -> None:
    lf = open_log()
    recs = make_records(100)
    assert lf.append(b"".join(recs)) == sum(map(len, recs))
    assert (lf.directory / "json.log").read_bytes() == b"".join(recs)
    assert lf.state().size == sum(map(len, recs))


def test_rotates_when_current_file_reaches_max_size(open_log: Callable[..., LogFile]) -> None:
    recs = make_records(100)
    size = len(recs[0])
    lf = open_log(max_size=10 * size, max_files=3)
    lf.append(b"".join(recs[:25]))
    # json-file's rule: rotate before a write once the file holds >= max-size bytes.
    assert files(lf.directory) == ["json.log", "json.log.0", "json.log.1"]
    assert (lf.directory / "json.log.0").read_bytes() == b"".join(recs[0:10])
    assert (lf.directory / "json.log.1").read_bytes() == b"".join(recs[10:20])
    assert (lf.directory / "json.log").read_bytes() == b"".join(recs[20:25])
    assert lf.state().generation == 2
    lf.append(b"".join(recs[25:100]))
    assert files(lf.directory) == ["json.log", "json.log.7", "json.log.8"]
    assert lf.state().generation == 9
    assert read_all(lf.directory) == b"".join(recs[70:100])


def test_compresses_rotated_files(open_log: Callable[..., LogFile]) -> None:
    recs = make_records(50)
    lf = open_log(max_size=10 * len(recs[0]), max_files=4, compress=True)
    lf.append(b"".join(recs))
    lf.close()
    assert files(lf.directory) == ["json.log", "json.log.1.gz", "json.log.2.gz", "json.log.3.gz"]
    assert lf.state().generation == 4
    assert read_all(lf.directory) == b"".join(recs[10:50])


def test_single_file_is_truncated_on_rotation(open_log: Callable[..., LogFile]) -> None:
    recs = make_records(30)
    lf = open_log(max_size=10 * len(recs[0]), max_files=1)
    lf.append(b"".join(recs))
    assert files(lf.directory) == ["json.log"]
    assert read_all(lf.directory) == b"".join(recs[20:30])


def test_reopen_appends_and_recovers(tmp_path: Path) -> None:
    d = tmp_path / "c"
    policy = RotationPolicy(1000, 3, True)
    lf = LogFile(d, policy)
    recs = make_records(10)
    lf.append(b"".join(recs[:5]))
    lf.close()
    # A crash mid-compression leaves a plain file, a temp file and maybe a gz twin.
    (d / "json.log.3").write_bytes(b"".join(recs[:2]))
    (d / "json.log.3.gz.tmp").write_bytes(b"junk")
    (d / "json.log.2.gz").write_bytes(gzip.compress(b"old\n"))
    (d / "json.log.2").write_bytes(b"older\n")
    lf = LogFile(d, policy)
    # The current file follows the newest rotated one.
    assert lf.state().generation == 4
    lf.append(b"".join(recs[5:]))
    lf.close()
    # Leftover plain rotated files are compressed, the stale gz twin and temp file are gone.
    assert files(d) == ["json.log", "json.log.2.gz", "json.log.3.gz"]
    assert gzip.decompress((d / "json.log.2.gz").read_bytes()) == b"older\n"
    assert (d / "json.log").read_bytes() == b"".join(recs)


def test_generation_survives_reopen_and_only_grows(tmp_path: Path) -> None:
    d = tmp_path / "c"
    recs = make_records(30)
    policy = RotationPolicy(10 * len(recs[0]), 1, False)
    lf = LogFile(d, policy)
    lf.append(b"".join(recs))
    assert lf.state().generation == 2
    lf.close()
    # With max-file=1 no rotated file remains to tell the generation: the state file does.
    assert LogFile(d, policy, writable=False).state().generation == 2


def test_crash_between_generation_write_and_rename_only_repeats(tmp_path: Path) -> None:
    d = tmp_path / "c"
    recs = make_records(5)
    lf = LogFile(d, RotationPolicy(10_000, 3, False))
    lf.append(b"".join(recs))
    lf.close()
    (d / "generation").write_text("1\n")  # rotation began: generation written, no rename yet
    lf = LogFile(d, RotationPolicy(10_000, 3, False), writable=False)
    # The old file is now seen as generation 1: a reader at (0, n) re-reads it, loses nothing.
    assert lf.state().generation == 1


def test_discard_hook_sees_each_deleted_file(tmp_path: Path) -> None:
    recs = make_records(50)
    seen: list[tuple[int, bytes]] = []
    lf = LogFile(
        tmp_path / "c",
        RotationPolicy(10 * len(recs[0]), 2, False),
        on_discard=lambda gen, path: seen.append((gen, path.read_bytes())),
    )
    lf.append(b"".join(recs))
    lf.close()
    assert [g for g, _ in seen] == [0, 1, 2]
    assert seen[0][1] == b"".join(recs[0:10])


def test_write_after_close_fails(open_log: Callable[..., LogFile]) -> None:
    lf = open_log()
    lf.close()
    with pytest.raises(StoreError):
        lf.append(b"".join(make_records(1)))


def test_failed_write_leaves_no_partial_record(tmp_path: Path) -> None:
    # /dev/full refuses every write with ENOSPC: a real disk-full error.
    d = tmp_path / "full"
    d.mkdir()
    os.symlink("/dev/full", d / "json.log")
    lf = LogFile(d, RotationPolicy(-1, 1, False))
    with pytest.raises(StoreError) as exc:
        lf.append(b"".join(make_records(3)))
    assert "No space" in str(exc.value)
    assert lf.state().size == 0
    lf.close()


def test_held_files_outlive_max_file_until_released(tmp_path: Path) -> None:
    """A consumer behind (the Kafka shipper) keeps its files past max-file, up to
    max-file more; the rest go as usual, and the held ones go once released."""
    recs = make_records(100)
    discarded: list[int] = []
    lf = LogFile(
        tmp_path / "c",
        RotationPolicy(10 * len(recs[0]), 2, False),
        on_discard=lambda gen, path: discarded.append(gen),
    )
    needed: list[int | None] = [1]
    lf.hold = lambda: needed[0]
    lf.append(b"".join(recs[:80]))  # 10 records a file: 0..6 rotated, 7 current
    # max-file 2 keeps one rotated file (6); 0 is not needed; of the held 1..5 the
    # newest two (max-file more) stay.
    assert discarded == [0, 1, 2, 3]
    assert lf.rotated_generations() == [4, 5, 6]
    needed[0] = 5
    lf.trim()
    assert discarded == [0, 1, 2, 3, 4] and lf.rotated_generations() == [5, 6]
    needed[0] = None
    lf.append(b"".join(recs[80:]))
    assert lf.rotated_generations() == [lf.state().generation - 1]
    lf.close()


def test_single_file_log_keeps_a_held_file(tmp_path: Path) -> None:
    recs = make_records(20)
    lf = LogFile(tmp_path / "c", RotationPolicy(10 * len(recs[0]), 1, False))
    lf.hold = lambda: 0
    lf.append(b"".join(recs))
    assert lf.rotated_generations() == [0]
    lf.hold = None
    lf.trim()
    assert lf.rotated_generations() == []
    lf.close()


def test_one_file_is_compressed_at_a_time_across_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many containers rotating together must not compress all at once, nor each in
    a thread of its own (memory: every new thread's malloc arena keeps some)."""
    active: list[int] = [0, 0]  # now, most at once
    threads: set[int] = set()
    lock = threading.Lock()
    real = gz.open_gzip

    class Counting:
        def __init__(self, *args: Any) -> None:
            self._gz = real(*args)

        def __enter__(self) -> Any:
            with lock:
                active[0] += 1
                active[1] = max(active)
                threads.add(threading.get_ident())
            return self._gz.__enter__()

        def __exit__(self, *exc: Any) -> None:
            time.sleep(0.02)
            with lock:
                active[0] -= 1
            self._gz.__exit__(*exc)

    monkeypatch.setattr(logfile, "open_gzip", Counting)
    recs = make_records(30)
    logs = [
        LogFile(tmp_path / f"c{i}", RotationPolicy(10 * len(recs[0]), 5, True)) for i in range(6)
    ]
    writers = [threading.Thread(target=lf.append, args=(b"".join(recs),)) for lf in logs]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    for lf in logs:
        lf.close()
        assert read_all(lf.directory) == b"".join(recs)
    assert active == [0, 1]
    assert len(threads) == 1
