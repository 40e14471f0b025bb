"""Collecting declared log files into the store: FileLog, ContainerCollector, Collectors.

The container's root is a temporary directory opened as pylog opens
``/proc/<pid>/root`` (with this process's mount namespace as the one held);
the files are real, written while they are followed; the logs are the store's
own LogFiles, read back with the store's reader.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pylog.config import Declaration, RotationPolicy, parse_declarations
from pylog.files.collector import Collectors, ContainerCollector
from pylog.files.container_root import ContainerNotFound, ContainerRoot, RootNotReady
from pylog.files.filelog import MAX_FILES, ROUND_READ, FileLog
from pylog.files.identity import FileIdentity
from pylog.files.registry import Registry
from pylog.models import ContainerInfo
from pylog.store import LogFile, Store
from pylog.store.reader import ReadOptions, read_records

from ...helpers import wait_for

CID = "ab" * 32
POLICY = RotationPolicy(max_size=-1, max_files=1, compress=False)


def declare(name: str, path: str) -> Declaration:
    (d,) = parse_declarations({f"pylog.logs.{name}": path}, {})
    return d


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    return root


@pytest.fixture
def root(root_dir: Path) -> Iterator[ContainerRoot]:
    r = ContainerRoot(
        os.open(root_dir, os.O_PATH | os.O_DIRECTORY), os.open("/proc/self/ns/mnt", os.O_RDONLY)
    )
    yield r
    r.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state")
    s.setup()
    return s


def records(store: Store, name: str, cid: str = CID) -> list[dict[str, object]]:
    logfile = LogFile(store.file_log_directory(cid, name), POLICY, writable=False)
    return [json.loads(raw) for raw in read_records(logfile, ReadOptions())]


def lines(store: Store, name: str, cid: str = CID) -> list[str]:
    """The stored lines, pieces of long lines joined as the shipper's assembler joins them."""
    out: list[str] = []
    pending = ""
    for rec in records(store, name, cid):
        text = str(rec["log"])
        if text.endswith("\n"):
            out.append(pending + text[:-1])
            pending = ""
        else:
            pending += text
    if pending:
        out.append(pending)
    return out


class Harness:
    """One FileLog over the root, as a collector drives it."""

    def __init__(
        self,
        store: Store,
        root: ContainerRoot,
        pattern: str,
        name: str = "app",
        *,
        max_files: int = MAX_FILES,
        round_read: int = ROUND_READ,
    ) -> None:
        self.store = store
        self.name = name
        self.logfile = store.acquire_file_log(CID, name, POLICY)
        self.registry = Registry.load(store.file_log_directory(CID, name))
        self.log = FileLog(
            declare(name, pattern),
            root.fd,
            self.logfile,
            self.registry,
            short_id="ab",
            max_files=max_files,
            round_read=round_read,
        )

    def round(self) -> None:
        self.log.scan()
        while self.log.collect():
            pass

    def close(self) -> None:
        self.store.release_file_log(CID, self.name)


@pytest.fixture
def harness(store: Store, root: ContainerRoot) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(
        pattern: str, name: str = "app", *, max_files: int = MAX_FILES, round_read: int = ROUND_READ
    ) -> Harness:
        h = Harness(store, root, pattern, name, max_files=max_files, round_read=round_read)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


# -- FileLog ---------------------------------------------------------------------------


def test_lines_are_stored_as_json_file_records_with_their_path(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "one\ntwo\n")
    h = harness("/var/log/*.log")
    h.round()
    append(app, 'three "quoted" \xe9\n')
    h.round()
    recs = records(store, "app")
    assert [r["log"] for r in recs] == ["one\n", "two\n", 'three "quoted" \xe9\n']
    assert {r["stream"] for r in recs} == {"stdout"}
    assert all(r["attrs"] == {"path": "/var/log/app.log"} for r in recs)
    assert h.log.stats.lines == 3 and h.log.stats.bytes == len(b'onetwothree "quoted" \xc3\xa9')
    assert (
        Registry.load(store.file_log_directory(CID, "app")).offset(FileIdentity.of(os.stat(app)))
        == app.stat().st_size
    )


def test_a_long_line_is_stored_in_16k_pieces_like_dockerds_chunks(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    long = "x" * (40 * 1024)
    append(root_dir / "var/log/app.log", long + "\nshort\n")
    h = harness("/var/log/app.log")
    h.round()
    recs = records(store, "app")
    assert [len(str(r["log"])) for r in recs] == [16384, 16384, 8192 + 1, 6]
    assert [str(r["log"]).endswith("\n") for r in recs] == [False, False, True, True]
    assert lines(store, "app") == [long, "short"]


def test_the_unfinished_last_line_is_taken_at_the_end_only(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "whole\nhalf a li")
    h = harness("/var/log/app.log")
    h.round()
    assert lines(store, "app") == ["whole"]
    h.log.finish()
    assert lines(store, "app") == ["whole", "half a li"]
    # A line of its own (FileFollower's rule): not a piece for the next file's first line.
    assert records(store, "app")[-1]["log"] == "half a li\n"


def test_halt_keeps_the_unfinished_line_for_the_next_process(
    store: Store, root: ContainerRoot, root_dir: Path
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "first\nsec")
    h = Harness(store, root, "/var/log/app.log")
    h.round()
    h.log.halt()
    h.close()
    append(app, "ond\nthird\n")
    again = Harness(store, root, "/var/log/app.log")  # a new pylog process
    again.round()
    again.close()
    assert lines(store, "app") == ["first", "second", "third"]


def test_a_crash_before_the_registry_is_saved_repeats_lines_but_loses_none(
    store: Store, root: ContainerRoot, root_dir: Path
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "a\nb\n")
    h = Harness(store, root, "/var/log/app.log")
    h.round()
    append(app, "c\n")
    h.log.scan()
    saved = h.registry.path.read_bytes()
    h.log.collect()  # stores c, then saves the registry...
    h.registry.path.write_bytes(saved)  # ...which the crash lost
    h.close()
    append(app, "d\n")
    again = Harness(store, root, "/var/log/app.log")
    again.round()
    again.close()
    assert lines(store, "app") == ["a", "b", "c", "c", "d"]


def test_rename_rotation_while_writing_keeps_every_line_once_in_order(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    app = root_dir / "var/log/app.log"
    h = harness("/var/log/app.log*")  # the rotated names match too
    expected: list[str] = []
    for i in range(300):
        line = f"line {i}"
        append(app, line + "\n")
        expected.append(line)
        if i % 50 == 49:
            os.rename(app, root_dir / f"var/log/app.log.{i}")
            if i % 100 == 99:
                h.round()  # sees the path empty between the rename and the create
        if i % 7 == 0:
            h.round()
    h.round()
    assert lines(store, "app") == expected
    assert h.log.stats.rotations >= 1


def test_copytruncate_is_noticed_and_counted(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "before 1\nbefore 2\n")
    h = harness("/var/log/app.log")
    h.round()
    with open(app, "r+") as f:
        f.truncate(0)
    append(app, "after\n")
    h.round()
    assert lines(store, "app") == ["before 1", "before 2", "after"]
    assert h.log.stats.truncations == 1


def test_a_new_file_under_the_glob_is_followed_from_its_start(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    append(root_dir / "var/log/day1.log", "monday\n")
    h = harness("/var/log/day*.log")
    h.round()
    append(root_dir / "var/log/day2.log", "tuesday 1\ntuesday 2\n")
    h.log.collect()
    assert lines(store, "app") == ["monday"]  # not until the glob is evaluated again
    h.round()
    assert lines(store, "app") == ["monday", "tuesday 1", "tuesday 2"]
    assert h.log.stats.files_open == 2


def test_a_deleted_file_is_read_to_its_end_and_forgotten(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    app = root_dir / "var/log/app.log"
    append(app, "kept\n")
    h = harness("/var/log/app.log")
    h.round()
    identity = FileIdentity.of(os.stat(app))
    with open(app, "a") as f:
        f.write("written before the delete\n")
        f.flush()
        app.unlink()
        h.round()
    assert lines(store, "app") == ["kept", "written before the delete"]
    assert h.log.stats.files_open == 0
    assert Registry.load(store.file_log_directory(CID, "app")).offset(identity) is None


def test_non_regular_matches_are_skipped_warned_once_and_never_block(
    store: Store,
    root_dir: Path,
    harness: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    os.mkfifo(root_dir / "var/log/pipe.log")
    (root_dir / "var/log/dir.log").mkdir()
    append(root_dir / "var/log/app.log", "text\n")
    h = harness("/var/log/*.log")
    with caplog.at_level(logging.WARNING, "pylog.files.filelog"):
        h.round()
        h.round()
    assert lines(store, "app") == ["text"]
    assert h.log.stats.skipped == {"not_regular": 2, "cap": 0}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert any("pipe.log" in w and "FIFO" in w for w in warnings)


def test_the_glob_is_capped_counted_and_warned_once(
    store: Store,
    root_dir: Path,
    harness: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for i in range(5):
        append(root_dir / f"var/log/{i}.log", f"file {i}\n")
    h = harness("/var/log/*.log", max_files=2)
    with caplog.at_level(logging.WARNING, "pylog.files.filelog"):
        h.round()
        h.round()
    assert sorted(lines(store, "app")) == ["file 0", "file 1"]
    assert h.log.stats.skipped == {"not_regular": 0, "cap": 3}
    assert h.log.stats.files_open == 2
    assert len([r for r in caplog.records if "more than 2 files" in r.getMessage()]) == 1


def test_one_busy_file_does_not_starve_the_others(
    store: Store, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    append(root_dir / "var/log/big.log", ("y" * 99 + "\n") * 5000)  # 500 kB
    append(root_dir / "var/log/small.log", "small\n")
    h = harness("/var/log/*.log", round_read=64 * 1024)
    h.log.scan()
    assert h.log.collect()  # more to read in big.log
    assert "small" in lines(store, "app")  # read in the first round all the same
    h.round()
    assert len(lines(store, "app")) == 5001


def test_symlinks_out_of_the_root_are_resolved_inside_it(
    store: Store, tmp_path: Path, root_dir: Path, harness: Callable[..., Harness]
) -> None:
    (tmp_path / "host-secret").write_text("HOST SECRET\n")
    (root_dir / "etc").mkdir()
    (root_dir / "etc/passwd").write_text("root:x:0:0:container's own\n")
    os.symlink("../../../../etc/passwd", root_dir / "var/log/relative.log")
    os.symlink(str(tmp_path / "host-secret"), root_dir / "var/log/absolute.log")
    os.symlink("/proc/1/root/etc/shadow", root_dir / "var/log/magic.log")
    h = harness("/var/log/*.log")
    h.round()
    h.log.finish()
    assert lines(store, "app") == ["root:x:0:0:container's own"]


# -- ContainerCollector and Collectors -------------------------------------------------


def info(cid: str = CID) -> ContainerInfo:
    return ContainerInfo(container_id=cid, container_name="/web")


class Roots:
    """Opens the fake root after ``not_before`` failed tries; counts the tries."""

    def __init__(self, root_dir: Path, not_before: int = 0) -> None:
        self.root_dir = root_dir
        self.not_before = not_before
        self.tries = 0
        self.lock = threading.Lock()

    def __call__(self, container_id: str) -> ContainerRoot:
        with self.lock:
            self.tries += 1
            if self.tries <= self.not_before:
                raise RootNotReady(container_id) if self.tries % 2 else ContainerNotFound("no")
        return ContainerRoot(
            os.open(self.root_dir, os.O_PATH | os.O_DIRECTORY),
            os.open("/proc/self/ns/mnt", os.O_RDONLY),
        )


def test_a_collector_waits_for_the_root_then_collects_until_stopped(
    store: Store, root_dir: Path
) -> None:
    app = root_dir / "var/log/app.log"
    roots = Roots(root_dir, not_before=5)
    c = ContainerCollector(
        info(), [declare("app", "/var/log/*.log")], store, POLICY, open_root=roots,
        poll_interval=0.01, scan_interval=0.05,
    )  # fmt: skip
    c.start()
    append(app, "early\n")
    wait_for(lambda: lines(store, "app") == ["early"], 10)
    assert roots.tries == 6 and c.root_found
    append(app, "late\nno newline")
    c.stop()
    assert c.join(10)
    assert lines(store, "app") == ["early", "late", "no newline"]
    assert not store.is_active(CID)
    (counters,) = c.counters()
    assert (counters.log_name, counters.lines, counters.files_open) == ("app", 3, 0)


def test_a_glob_that_matched_nothing_yet_is_evaluated_every_round(
    store: Store, root_dir: Path
) -> None:
    c = ContainerCollector(
        info(), [declare("app", "/var/log/app.log")], store, POLICY, open_root=Roots(root_dir),
        poll_interval=0.01, scan_interval=3600,
    )  # fmt: skip
    c.start()
    try:
        wait_for(lambda: c.root_found)
        append(root_dir / "var/log/app.log", "first file\n")
        wait_for(lambda: lines(store, "app") == ["first file"], 5)
    finally:
        c.stop()
        assert c.join(10)


def test_a_container_gone_before_its_root_was_found_ends_with_a_note(
    store: Store, root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roots = Roots(root_dir, not_before=10**9)
    c = ContainerCollector(info(), [declare("app", "/x/*.log")], store, POLICY, open_root=roots)
    with caplog.at_level(logging.INFO, "pylog.files.collector"):
        c.start()
        wait_for(lambda: roots.tries >= 3)
        c.stop()
        assert c.join(5)
    assert "logging stopped before a process of the container was found" in caplog.text
    assert not store.is_active(CID)


def test_collectors_one_per_container_across_fifos_and_restarts(
    store: Store, root_dir: Path
) -> None:
    app = root_dir / "var/log/app.log"
    collectors = Collectors(store, open_root=Roots(root_dir), poll_interval=0.01)
    decl = [declare("app", "/var/log/app.log"), *parse_declarations({"l.logs.o": "stdout"}, {})]
    f1, f2, f3 = Path("/run/f1"), Path("/run/f2"), Path("/run/f3")
    first = collectors.attach(f1, info(), decl, POLICY)
    assert first is not None
    assert collectors.attach(f2, info(), decl, POLICY) is first  # live-restore's second FIFO
    assert collectors.attach(f1, info("cd" * 32), decl[1:], POLICY) is None  # stdout only
    append(app, "run 1\n")
    wait_for(lambda: lines(store, "app") == ["run 1"])
    collectors.detach(f1, CID, stopped=False)  # the old FIFO ended: the other goes on
    assert not first.stopping
    collectors.detach(f2, CID, stopped=True)  # StopLogging: the container exited
    append(app, "after the exit\n")
    second = collectors.attach(f3, info(), decl, POLICY)  # docker restart
    assert second is not None and second is not first
    assert first.join(10)
    append(app, "run 2\n")
    wait_for(lambda: lines(store, "app")[-1:] == ["run 2"])
    assert lines(store, "app") == ["run 1", "after the exit", "run 2"]  # continued, no repeat
    (counters,) = collectors.counters()
    assert counters.container_name == "/web"
    assert counters.lines + first.counters()[0].lines == 3
    collectors.halt(time.monotonic() + 10)
    assert second.join(0) and collectors.counters() == []
