import dataclasses
import gzip
import json
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pylog.config import KafkaSettings, Settings
from pylog.models import BusyError, Entry, RequestError
from pylog.service import LoggingService
from pylog.store.attachments import Attachments

from ..helpers import BufferedDecoder, Fifo, encode_entries, make_settings, running, wait_for
from .shipper.test_manager import closed_port

CID = "c" * 64


def info(cid: str = CID, **config: str) -> dict[str, object]:
    return {
        "ContainerID": cid,
        "ContainerName": "/web",
        "ContainerImageName": "busybox",
        "ContainerLabels": {"app": "shop"},
        "ContainerEnv": ["SECRET=x", "REGION=eu"],
        "Config": config,
    }


def read(service: LoggingService, cid: str = CID, **config: object) -> list[Entry]:
    data = b"".join(service.read_logs({"ContainerID": cid}, config))
    return BufferedDecoder().feed(data)


def entries(n: int, t0: int = 1_000) -> list[Entry]:
    return [Entry("stdout" if i % 2 else "stderr", t0 + i, f"line {i}".encode()) for i in range(n)]


def test_logs_a_fifo_and_serves_it_back(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries(entries(1000)))
    wait_for(lambda: len(read(service)) == 1000)
    got = read(service, Tail=3)
    assert [e.line for e in got] == [b"line 997\n", b"line 998\n", b"line 999\n"]
    assert [e.source for e in got] == ["stdout", "stderr", "stdout"]
    assert [e.time_ns for e in got] == [1997, 1998, 1999]


def test_stop_returns_at_once_and_the_reader_drains_to_eof(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    start = time.monotonic()
    service.stop_logging(str(fifo.path))
    assert time.monotonic() - start < 0.5
    # dockerd may still write after StopLogging; nothing of it is lost.
    fifo.write(encode_entries(entries(500)))
    fifo.close()
    wait_for(lambda: not service.drivers())
    assert len(read(service)) == 500
    assert not service.store.is_active(CID)


def test_logs_right_after_a_stop_has_every_line(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    """dockerd writes the last lines, sends StopLogging, closes the FIFO and reports
    the container stopped; a ``docker logs`` right then gets every line."""
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries(entries(60_000)))  # returns with up to a pipeful unread
    service.stop_logging(str(fifo.path))
    fifo.close()
    assert len(read(service)) == 60_000


def test_container_exiting_mid_line_loses_nothing(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    chunk = Entry("stdout", 5, b"a" * 16384, complete=False)
    tail = Entry("stdout", 5, b"no newline", complete=False)
    fifo.write(encode_entries([Entry("stdout", 4, b"first"), chunk, tail]))
    fifo.close()
    wait_for(lambda: not service.drivers())
    assert [e.line for e in read(service)] == [b"first\n", b"a" * 16384, b"no newline"]


def test_corrupt_frames_are_counted_not_fatal(
    service: LoggingService, make_fifo: Callable[[str], Fifo], caplog: pytest.LogCaptureFixture
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    good = encode_entries(entries(3))
    fifo.write(good + b"\x00\x00\x00\x03\xff\xff\xff" + good + b"\xff\xff\xff\xffgarbage" + good)
    wait_for(lambda: len(read(service)) == 9)
    (driver,) = service.drivers()
    assert driver.frame_errors.corrupt == 1
    assert driver.frame_errors.oversize == 1
    fifo.write(b"\x00\x00\x00\x03\xff\xff\xff")
    wait_for(lambda: driver.frame_errors.corrupt == 2)
    assert sum("corrupt frame" in r.message for r in caplog.records) == 1


def test_bad_log_opt_fails_start_with_its_name(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    with pytest.raises(RequestError, match="'max-sise'"):
        service.start_logging(str(fifo.path), info(**{"max-sise": "1m"}))
    assert not service.drivers()
    assert not service.store.is_active(CID)


@pytest.mark.parametrize(
    ("labels", "env", "named"),
    [
        ({"pylog.logs.access": "var/log/access.log"}, [], "label 'pylog.logs.access'"),
        ({"aliyun.logs.web.formatt": "json"}, [], "label 'aliyun.logs.web.formatt'"),
        ({}, ["pylog_logs_err="], "env 'pylog_logs_err'"),
    ],
)
def test_a_bad_declaration_fails_start_with_the_label_it_names(
    service: LoggingService,
    make_fifo: Callable[[str], Fifo],
    labels: dict[str, str],
    env: list[str],
    named: str,
) -> None:
    fifo = make_fifo("f1")
    bad = {**info(), "ContainerLabels": labels, "ContainerEnv": env}
    with pytest.raises(RequestError, match=re.escape(named)):
        service.start_logging(str(fifo.path), bad)
    assert not service.drivers()
    assert not service.store.is_active(CID)
    assert not service.collectors.collectors()


def test_declared_files_of_a_container_not_running_yet_do_not_hold_up_start_or_stop(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    """dockerd sends StartLogging before the container runs: the collector looks for it
    on its own thread, and StopLogging before it was found ends the search."""
    fifo = make_fifo("f1")
    declared = {**info(), "ContainerLabels": {"pylog.logs.app": "/var/log/*.log"}}
    t0 = time.monotonic()
    service.start_logging(str(fifo.path), declared)
    (collector,) = service.collectors.collectors()
    service.stop_logging(str(fifo.path))
    assert time.monotonic() - t0 < 0.5
    assert collector.join(10) and not collector.root_found
    fifo.close()
    wait_for(lambda: not service.store.is_active(CID))
    assert "pylog_file_lines{" not in service.metrics().decode()  # it ended: no counters


@pytest.mark.parametrize(
    "file", ["/etc/passwd", "relative", "", None, 5, "{root}/../x", "{root}/sub/f", "{root}/.."]
)
def test_fifo_must_be_directly_under_the_logging_root(
    service: LoggingService, file: object
) -> None:
    if isinstance(file, str):
        file = file.format(root=service.settings.fifo_root)
    with pytest.raises(RequestError):
        service.start_logging(file, info())


def test_missing_fifo_is_a_clear_error(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    with pytest.raises(RequestError, match="cannot start logging"):
        service.start_logging(str(service.settings.fifo_root / "nope"), info())
    assert not service.store.is_active(CID)
    # The failed attempt leaves no empty container directory behind...
    assert not service.store.directory(CID).exists()
    # ...but never removes the logs of an earlier run.
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries(entries(2)))
    fifo.close()
    wait_for(lambda: not service.drivers())
    with pytest.raises(RequestError, match="cannot start logging"):
        service.start_logging(str(service.settings.fifo_root / "nope"), info())
    assert len(read(service)) == 2


def test_same_fifo_twice_is_refused(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    with pytest.raises(RequestError, match="already"):
        service.start_logging(str(fifo.path), info())


def test_two_fifos_of_one_container_share_its_log(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    # dockerd restarted with live-restore: a new FIFO before the old one reaches EOF.
    old, new = make_fifo("old"), make_fifo("new")
    service.start_logging(str(old.path), info())
    old.write(encode_entries(entries(10)))
    service.start_logging(str(new.path), info())
    old.close()
    new.write(encode_entries(entries(10, t0=5000)))
    wait_for(lambda: len(read(service)) == 20)
    assert service.store.is_active(CID)
    new.close()
    wait_for(lambda: not service.store.is_active(CID))


def test_logs_found_by_container_id_after_the_fifo_is_gone(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("run1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries(entries(5)))
    fifo.close()
    wait_for(lambda: not service.drivers())
    # `docker logs` of a stopped container: a fresh FIFO that carries nothing.
    fresh = make_fifo("reader")
    service.start_logging(str(fresh.path), info())
    assert [e.line for e in read(service, Tail=2)] == [b"line 3\n", b"line 4\n"]
    service.stop_logging(str(fresh.path))
    fresh.close()
    wait_for(lambda: not service.drivers())
    assert [e.line for e in read(service)] == [f"line {i}\n".encode() for i in range(5)]


def test_follow_ends_when_logging_stops(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries(entries(3)))
    wait_for(lambda: len(read(service)) == 3)
    stream = service.read_logs({"ContainerID": CID}, {"Follow": True, "Tail": -1})
    first = next(stream)
    fifo.write(encode_entries(entries(2, t0=9000)))
    service.stop_logging(str(fifo.path))
    fifo.close()
    rest = b"".join(stream)  # returns once the FIFO hit EOF
    got = BufferedDecoder().feed(first + rest)
    assert [e.time_ns for e in got] == [1000, 1001, 1002, 9000, 9001]


def test_reading_an_unknown_container_is_empty(service: LoggingService) -> None:
    assert read(service, cid="d" * 64) == []
    assert read(service, cid="d" * 64, Follow=True) == []


def test_info_and_attrs_are_recorded(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info(labels="app", env="REGION", tag="{{.Name}}"))
    fifo.write(encode_entries(entries(1)))
    d = service.store.directory(CID)
    wait_for(lambda: (d / "json.log").exists() and (d / "json.log").stat().st_size > 0)
    rec = json.loads((d / "json.log").read_bytes())
    assert rec["attrs"] == {"app": "shop", "REGION": "eu", "tag": "web"}
    assert json.loads((d / "info.json").read_text())["ContainerName"] == "/web"


def test_cleanup_removes_only_unused_containers(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("live")
    service.start_logging(str(fifo.path), info("a" * 64))
    fifo.write(encode_entries(entries(1)))
    for cid, age in (("b" * 64, 7200), ("e" * 64, 60)):
        d = service.store.directory(cid)
        d.mkdir(parents=True)
        for name in ("json.log", "info.json"):
            (d / name).write_text("{}\n")
            old = time.time() - age
            os.utime(d / name, (old, old))
    # The live container's files are old too, but it is being logged: kept.
    for p in service.store.directory("a" * 64).iterdir():
        os.utime(p, (0, 0))
    assert service.cleanup() == ["b" * 64]
    assert sorted(service.store.containers()) == ["a" * 64, "e" * 64]


def test_shutdown_stops_readers_and_leaves_the_rest_in_the_pipe(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    with running(settings) as svc:
        fifo = make_fifo("f1")
        svc.start_logging(str(fifo.path), info())
        fifo.write(encode_entries(entries(10)))
        wait_for(lambda: len(read(svc)) == 10)
        svc.shutdown(timeout=5)
        assert not svc.drivers()
        fifo.write(encode_entries(entries(3, t0=7000)))
        # The bytes written after shutdown are still in the pipe for the next pylog process.
        assert len(BufferedDecoder().feed(fifo.read_left())) == 3
        with pytest.raises(RequestError, match="shutting down"):
            svc.start_logging(str(fifo.path), info())
    # ... and running() shuts it down again on exit: twice is fine.


def test_state_dir_layout(service: LoggingService, make_fifo: Callable[[str], Fifo]) -> None:
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    assert service.store.directory(CID) == Path(service.settings.state_dir) / "containers" / CID


def test_a_new_process_reattaches_to_fifos_the_old_one_was_reading(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    with running(settings) as first:
        first.start_logging(str(fifo.path), info())
        fifo.write(encode_entries(entries(10)))
        wait_for(lambda: len(read(first)) == 10)
    # Shut down like a crash: dockerd never calls StartLogging again.
    # While no one reads, the container goes on writing; a frame is cut in half
    # to stand for bytes the dead process had taken out of the pipe.
    later = encode_entries(entries(5, t0=5000))
    fifo.write(later[7:])
    fifo.write(encode_entries(entries(5, t0=9000)))
    with running(settings) as second:
        wait_for(lambda: len(read(second)) == 10 + 4 + 5)
        (driver,) = second.drivers()
        assert driver.frame_errors.skipped_bytes > 0
        fifo.write(encode_entries(entries(3, t0=12000)))
        fifo.close()
        wait_for(lambda: not second.drivers())
        times = [e.time_ns for e in read(second)]
        assert times == [
            *range(1000, 1010),
            *range(5001, 5005),
            *range(9000, 9005),
            *range(12000, 12003),
        ]
        # EOF: the FIFO is forgotten, a third process has nothing to reattach.
        assert second.attachments.recorded() == []


def test_records_of_vanished_fifos_are_dropped(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("gone")
    with running(settings) as first:
        first.start_logging(str(fifo.path), info())
    fifo.close()
    fifo.path.unlink()
    with running(settings) as second:
        assert second.drivers() == []
        assert second.attachments.recorded() == []


def test_a_batch_stored_but_left_in_the_fifo_is_not_stored_twice(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    batch = entries(10)
    with running(settings) as first:
        first.start_logging(str(fifo.path), info())
        fifo.write(encode_entries(batch))
        wait_for(lambda: len(read(first)) == 10)
    # Killed after storing the last batch, before taking it out of the pipe:
    # the next process finds (the end of) it again, followed by new lines.
    fifo.write(encode_entries(batch[6:]) + encode_entries(entries(3, t0=8000)))
    with running(settings) as second:
        wait_for(lambda: len(read(second)) >= 13)
        time.sleep(0.2)
        assert [e.time_ns for e in read(second)] == [*range(1000, 1010), 8000, 8001, 8002]


def test_what_was_not_stored_stays_in_the_fifo(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f1")
    data = encode_entries(entries(3))
    with running(settings) as svc:
        svc.start_logging(str(fifo.path), info())
        # A frame whose second half has not been written yet stays in the pipe.
        fifo.write(data[:-5])
        wait_for(lambda: len(read(svc)) == 2)
    assert fifo.read_left() == data[len(encode_entries(entries(2))) : -5]


def test_a_full_disk_does_not_fail_start_logging(
    service: LoggingService, make_fifo: Callable[[str], Fifo], caplog: pytest.LogCaptureFixture
) -> None:
    # Where the FIFO record goes is unusable (a file, not a directory), as a full
    # disk would make it.
    (Path(service.settings.state_dir) / "fifos").write_text("")
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    assert "cannot record its info" in caplog.text
    assert len(service.drivers()) == 1
    # ... and its end still releases the container (forgetting its FIFO fails too)
    fifo.close()
    wait_for(lambda: not service.drivers())
    wait_for(lambda: not service.store.is_active(CID))
    assert "cannot forget its FIFO" in caplog.text


def test_shutdown_is_bounded_with_kafka_unreachable(
    tmp_path: Path, make_fifo: Callable[[str], Fifo]
) -> None:
    settings = make_settings(tmp_path, brokers=("127.0.0.1:1",))
    fifo = Fifo(settings.fifo_root / "k")
    try:
        with running(settings) as svc:
            svc.start_logging(str(fifo.path), info())
            fifo.write(encode_entries(entries(100)))
            wait_for(lambda: len(read(svc)) == 100)
            start = time.monotonic()
            svc.shutdown()
            # dockerd kills a plugin that takes 10 s to stop.
            assert time.monotonic() - start < 8
    finally:
        fifo.close()


# -- startup never fails on a bad record ------------------------------------------

BAD_INFO = {
    "a log-opt this version rejects": info("b" * 64, **{"max-sise": "1m"}),
    "a tag that cannot be compiled": info("b" * 64, tag='{{index .ContainerLabels "\\x"}}'),
    "a huge value": info("b" * 64, **{"max-size": "9" * 400}),
    "an Info that is not an object": ["ContainerID", "b" * 64],
    "a bad ContainerID": info("../" * 50),
}


def write_record(settings: Settings, fifo: Path, record_info: object) -> None:
    """A FIFO record as StartLogging leaves it (written the way an older pylog did)."""
    fifos = Path(settings.state_dir) / "fifos"
    # Some tests record an Info that is not an object, as no StartLogging would.
    Attachments(fifos).record(fifo, record_info)  # type: ignore[arg-type]


def write_raw_record(settings: Settings, name: str, text: str) -> None:
    fifos = Path(settings.state_dir) / "fifos"
    fifos.mkdir(parents=True, exist_ok=True)
    (fifos / f"{name}.json").write_text(text)


@pytest.mark.parametrize("kind", sorted(BAD_INFO))
def test_a_bad_fifo_record_is_skipped_and_the_good_ones_reattached(
    settings: Settings,
    make_fifo: Callable[[str], Fifo],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """Before: such a record raised out of startup, gunicorn's worker never booted,
    and every container logging through pylog blocked."""
    good, bad = make_fifo("good"), make_fifo("bad")
    write_record(settings, good.path, info())
    write_record(settings, bad.path, BAD_INFO[kind])
    with running(settings) as svc:
        assert [d.fifo for d in svc.drivers()] == [good.path]
        assert "not reattaching bad" in caplog.text, caplog.text
        assert [f for f, _ in svc.attachments.recorded()] == [good.path]


@pytest.mark.parametrize(
    "record",
    [
        '{"File": "/run/docker/logging/x\\u0000y", "Info": {}}',
        "[" * 100_000,
        '{"File": 7, "Info": {}}',
        "",
    ],
    ids=["nul-in-path", "deeply-nested", "file-not-a-string", "empty"],
)
def test_an_unreadable_fifo_record_is_dropped_and_the_good_ones_reattached(
    settings: Settings,
    make_fifo: Callable[[str], Fifo],
    caplog: pytest.LogCaptureFixture,
    record: str,
) -> None:
    good = make_fifo("good")
    write_record(settings, good.path, info())
    write_raw_record(settings, "odd", record)
    with running(settings) as svc:
        assert [d.fifo for d in svc.drivers()] == [good.path]
        assert "odd.json" in caplog.text or "not reattaching" in caplog.text
        assert [f for f, _ in svc.attachments.recorded()] == [good.path]


# -- no secrets at rest --------------------------------------------------------------

SECRET_ENV = ["DB_PASSWORD=hunter2", "KEEP=1"]


def assert_private_and_clean(root: Path) -> None:
    """No file under ``root`` holds the password; files 0600, directories 0700."""
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for top, dirs, files in os.walk(root):
        for d in dirs:
            assert stat.S_IMODE((Path(top) / d).stat().st_mode) == 0o700, d
        for f in files:
            path = Path(top) / f
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            data = path.read_bytes()
            if f.endswith(".gz"):
                data = gzip.decompress(data)
            assert b"hunter2" not in data, path


def test_only_the_selected_env_is_kept_and_every_file_is_private(
    tmp_path: Path, make_fifo: Callable[[str], Fifo]
) -> None:
    """Before: info.json and the FIFO record held the whole env, 0644 in 0755 dirs."""
    settings = Settings(
        state_dir=tmp_path / "state",
        socket_path=tmp_path / "pylog.sock",
        fifo_root=tmp_path / "logging",
        kafka=KafkaSettings(brokers=(closed_port(),)),  # so a kafka.position is written too
    )
    svc = LoggingService(settings)
    svc.startup()
    try:
        fifo = make_fifo("f1")
        obj = info(env="KEEP", **{"max-size": "1k", "max-file": "3"})
        obj["ContainerEnv"] = SECRET_ENV
        svc.start_logging(str(fifo.path), obj)
        fifo.write(encode_entries(entries(200)))
        d = svc.store.directory(CID)
        # Every line stored, rotated files compressed, a position written.
        wait_for(lambda: (d / "kafka.position").exists())
        # (Nothing may be stored yet when the position is first written.)
        wait_for(lambda: [e.time_ns for e in read(svc, Tail=1)] == [1199])
        wait_for(lambda: {p.suffix for p in d.glob("json.log.*")} == {".gz"})
        assert json.loads((d / "info.json").read_text())["ContainerEnv"] == ["KEEP=1"]
        ((_, kept),) = svc.attachments.recorded()
        assert kept["ContainerEnv"] == ["KEEP=1"]
        assert json.loads((d / "json.log").read_bytes().splitlines()[-1])["attrs"] == {"KEEP": "1"}
        assert_private_and_clean(settings.state_dir)
    finally:
        svc.shutdown(timeout=2)


def test_a_state_dir_written_the_old_way_is_scrubbed_at_startup(
    settings: Settings, make_fifo: Callable[[str], Fifo]
) -> None:
    root = Path(settings.state_dir)
    old = info("a" * 64, env="KEEP")
    old["ContainerEnv"] = SECRET_ENV
    stopped = root / "containers" / ("a" * 64)
    stopped.mkdir(parents=True)
    (stopped / "info.json").write_text(json.dumps(old))
    (stopped / "info.json.tmp").write_text(json.dumps(old))  # left by a crash
    (stopped / "json.log").write_text("")
    os.utime(stopped / "info.json", (1000, 1000))
    live_fifo = make_fifo("running")
    live = info(env="KEEP")
    live["ContainerEnv"] = SECRET_ENV
    write_record(settings, live_fifo.path, live)
    write_record(settings, Path(str(live_fifo.path) + "-gone"), live)
    for top, _dirs, files in os.walk(root):
        os.chmod(top, 0o755)
        for f in files:
            os.chmod(Path(top) / f, 0o644)
    with running(settings) as svc:
        assert len(svc.drivers()) == 1
        assert_private_and_clean(root)
        kept = json.loads((stopped / "info.json").read_text())
        assert kept == {**old, "ContainerEnv": ["KEEP=1"]}
        # The cleanup goes by the files' times: scrubbing does not make it younger.
        assert (stopped / "info.json").stat().st_mtime == 1000


def test_times_in_the_second_before_the_epoch_round_trip(
    service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    # A time_nano of -999,999,999..-1 is 1969-12-31T23:59:59.xxxZ; it was once
    # stored without its date, and `docker logs --since` then failed.
    times = [-999_999_999, -5, -1, 0, 7]
    fifo = make_fifo("f1")
    service.start_logging(str(fifo.path), info())
    fifo.write(encode_entries([Entry("stdout", t, b"x") for t in times]))
    wait_for(lambda: len(read(service)) == len(times))
    stored = (service.store.directory(CID) / "json.log").read_bytes().splitlines()
    assert [json.loads(r)["time"] for r in stored[:3]] == [
        "1969-12-31T23:59:59.000000001Z",
        "1969-12-31T23:59:59.999999995Z",
        "1969-12-31T23:59:59.999999999Z",
    ]
    assert [e.time_ns for e in read(service)] == times
    since = read(service, Since="1969-12-31T23:59:59.5Z", Until="0001-01-01T00:00:00Z")
    assert [e.time_ns for e in since] == times[1:]


def test_reader_slots_are_capped_and_given_back_even_unstarted(settings: Settings) -> None:
    with running(dataclasses.replace(settings, max_readers=2)) as service:
        follow = {"Follow": True, "Tail": -1}
        a = service.read_logs({"ContainerID": CID}, follow)
        b = service.read_logs({"ContainerID": CID}, follow)
        with pytest.raises(BusyError, match="PYLOG_MAX_READERS"):
            service.read_logs({"ContainerID": CID}, follow)
        # Closed before its first frame (the client went away at once): a plain
        # generator would never have run its cleanup, and the slot stayed taken.
        a.close()  # type: ignore[attr-defined]
        assert list(service.read_logs({"ContainerID": CID}, {})) == []  # ran to its end
        b.close()  # type: ignore[attr-defined]
        for _ in range(2):
            service.read_logs({"ContainerID": CID}, follow)
