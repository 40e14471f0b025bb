"""The workloads. Each yields one :class:`Sample` per (round, driver); within a
round the drivers run one after another, starting one further along each round,
so drift in the machine's load hits every driver alike.

Drivers: ``none``, ``json-file``, ``local`` (Docker's, default options),
``pylog`` (local only: ``--log-opt kafka=false``) and ``pylog+kafka`` (shipping
with the plugin's producer settings, lz4 by default, to the bench broker given by
``--log-opt kafka-brokers``, into a fresh topic per run).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ceiling as producer_perf
from . import engine
from .kafka import Topics
from .stats import (
    BURST_AFTER_S,
    CEILING,
    CEILING_RANDOM,
    Sample,
    burst_figures,
    median,
    percentile,
    soak_figures,
)

ALL_DRIVERS = ("none", "json-file", "local", "pylog", "pylog+kafka")


@dataclass
class Config:
    quick: bool
    rounds: int | None  # None: each workload's default
    drivers: Sequence[str]
    topics: Topics | None = None
    log: Callable[[str], None] = print
    samples: list[Sample] = field(default_factory=list)

    def rounds_for(self, full: int) -> int:
        if self.rounds is not None:
            return self.rounds
        return 1 if self.quick else full

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def use(self, drivers: Sequence[str]) -> list[str]:
        out = [d for d in drivers if d in self.drivers]
        return [d for d in out if d != "pylog+kafka" or self.topics is not None]


def driver_args(cfg: Config, driver: str, partitions: int = 1) -> tuple[str, list[str], str | None]:
    """(--log-driver, log-opts, Kafka topic or None) for a bench driver."""
    if driver == "pylog":
        return engine.PLUGIN, ["--log-opt", "kafka=false"], None
    if driver == "pylog+kafka":
        assert cfg.topics is not None
        topic = cfg.topics.create(partitions)
        return engine.PLUGIN, ["--log-opt", f"kafka-brokers={cfg.topics.bootstrap}",
                               "--log-opt", f"kafka-topic={topic}"], topic  # fmt: skip
    return driver, [], None


def interleaved(drivers: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    for r in range(rounds):
        for i in range(len(drivers)):
            yield r + 1, drivers[(i + r) % len(drivers)]


def measure(cfg: Config, workload: str, driver: str, rnd: int, containers: int, lines: int,
            size: int, tail: bool = False, extra: Sequence[str] = ()) -> Sample:  # fmt: skip
    """``containers`` containers each writing ``lines`` lines of ``size`` bytes;
    ``extra``: more ``docker run`` options (log-opts)."""
    partitions = 1 if containers == 1 else 4
    log_driver, opts, topic = driver_args(cfg, driver, partitions)
    opts = [*opts, *extra]
    total = containers * lines
    plugin = log_driver == engine.PLUGIN
    if plugin:
        engine.reset_peak_rss(engine.pylog_pids())
    cpu0 = engine.cpu_seconds() if plugin else 0.0
    run = engine.run_group(log_driver, containers, engine.write_cmd(lines, size), opts)
    figs: dict[str, float] = {"wall_s": run.wall_s}
    try:
        if plugin:
            done = engine.wait_stored(run.cids)
            figs["stored_lps"] = total / (done - run.go_mono)
        elif driver != "none":
            figs["stored_lps"] = total / run.wall_s
        if topic is not None:
            assert cfg.topics is not None
            count, last = cfg.topics.wait_acked(topic, total)
            figs["kafka_missing"] = total - count
            figs["kafka_lps"] = count / max(1e-3, last - run.go_epoch)
        if plugin:
            # The processes now: a shipping process started during the run counts
            # (its peak is since its start; the CPU is the cgroup's, or see cpu_seconds).
            cpu = engine.cpu_seconds() - cpu0
            figs["cpu_s_per_mline"] = cpu / total * 1e6
            figs["cpu_s_per_gb"] = cpu / (total * size) * 1e9
            figs["rss_peak_mb"] = engine.peak_rss_mb(engine.pylog_pids())
        if tail and driver != "none":
            figs["tail_s"] = engine.time_tail(run.cids[0])
    finally:
        engine.remove(run.cids)
    return Sample(workload, driver, rnd, figs)


def _report(cfg: Config, s: Sample) -> Sample:
    text = "  ".join(f"{k}={v:,.3g}" for k, v in s.figures.items())
    cfg.log(f"  [{s.workload}] round {s.round} {s.driver:<11} {text}")
    cfg.samples.append(s)
    return s


def _simple(cfg: Config, name: str, drivers: Sequence[str], rounds: int, containers: int,
            lines: int, size: int, tail: bool = False) -> None:  # fmt: skip
    for rnd, d in interleaved(cfg.use(drivers), rounds):
        _report(cfg, measure(cfg, name, d, rnd, containers, lines, size, tail))


# ------------------------------------------------------------------ workloads
def one_million(cfg: Config) -> None:
    lines = cfg.pick(1_000_000, 100_000)
    _simple(cfg, "1m", ALL_DRIVERS, cfg.rounds_for(3), 1, lines, 100, tail=True)


def ten_containers(cfg: Config) -> None:
    lines = cfg.pick(100_000, 10_000)
    _simple(cfg, "10c", ALL_DRIVERS, cfg.rounds_for(3), 10, lines, 100)


def four_kib(cfg: Config) -> None:
    lines = cfg.pick(50_000, 5_000)
    _simple(cfg, "4k", ALL_DRIVERS, cfg.rounds_for(3), 1, lines, 4096)


def pylog_values(cfg: Config, lines: int = 1000) -> list[bytes]:
    """pylog's Kafka values for ``lines`` of the 1m workload's lines: a pylog+kafka
    container writes them into a fresh topic and they are consumed back. Their size
    varies by a few bytes with the container's random name."""
    assert cfg.topics is not None
    log_driver, opts, topic = driver_args(cfg, "pylog+kafka")
    assert topic is not None
    run = engine.run_group(log_driver, 1, engine.write_cmd(lines, 100), opts)
    try:
        cfg.topics.wait_acked(topic, lines)
        values = cfg.topics.values(topic, lines)
    finally:
        engine.remove(run.cids)
    if not values:
        raise engine.BenchError("ceiling: no pylog record arrived to take as payload")
    return values


def ceiling(cfg: Config) -> None:
    """Kafka's own ProducerPerformance against the bench broker, sending pylog's own
    values (1,000 of them, from a pylog+kafka container, picked at random per record)
    with pylog's producer settings (as the installed plugin has them): the lines/s any
    producer could get acknowledged here. Shown as driver ``ceiling`` in the 1m table
    (1 partition, as 1m's topic) and the 10c table (4 partitions, as 10c's), as many
    records as that workload's lines. Beside it, driver ``ceiling-random``: the same
    with ProducerPerformance's random payloads of the values' median size, which lz4
    barely compresses (the ceiling before it took pylog's values)."""
    if cfg.topics is None:
        cfg.log("  [ceiling] no broker: skipped")
        return
    settings = producer_perf.installed_settings()
    props = producer_perf.producer_props(settings, cfg.topics.bootstrap)
    libs = producer_perf.fetch_tools()
    values = pylog_values(cfg)
    size = round(median(float(len(v)) for v in values))
    workdir = Path(tempfile.mkdtemp(prefix="pylog-bench-"))
    try:
        payloads = workdir / "payloads.txt"
        payloads.write_bytes(producer_perf.payload_file(values))
        kinds = ((CEILING, producer_perf.Payload(size, payloads)),
                 (CEILING_RANDOM, producer_perf.Payload(size)))  # fmt: skip
        cfg.log(f"  [ceiling] {len(values):,} pylog values as payloads, median {size} bytes; "
                f"{' '.join(props[1:])}")  # fmt: skip
        records = {"1m": cfg.pick(1_000_000, 100_000), "10c": cfg.pick(1_000_000, 100_000)}
        for rnd in range(1, cfg.rounds_for(3) + 1):
            for workload, partitions in (("1m", 1), ("10c", 4)):
                # Each run is a fresh JVM, the first one after a pause the slowest:
                # which kind goes first alternates by round.
                for driver, payload in kinds if rnd % 2 else kinds[::-1]:
                    topic = cfg.topics.create(partitions)
                    n = records[workload]
                    s = producer_perf.run(libs, topic, n, payload, props)
                    count, _ = cfg.topics.wait_acked(topic, n, idle=10)
                    cfg.log(f"  [ceiling] {workload} {driver}: {s.mb_per_s} MB/s, latency avg "
                            f"{s.avg_ms:.0f} ms, p99 {s.p99_ms:.0f} ms")  # fmt: skip
                    _report(cfg, Sample(workload, driver, rnd, {
                        "kafka_lps": s.records_per_s, "kafka_missing": n - count,
                        "record_bytes": size,
                    }))  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


READBACK_DRIVERS = ("json-file", "local", "pylog")


def readback(cfg: Config) -> None:
    """One container logs the 1m workload's lines with ``max-size=1g`` (every line
    kept); then ``docker logs`` of all of it, and ``docker logs --since`` the time of
    the middle line (the second half), output discarded, once each per round."""
    lines = cfg.pick(1_000_000, 100_000)
    for rnd, d in interleaved(cfg.use(READBACK_DRIVERS), cfg.rounds_for(3)):
        log_driver, opts, _ = driver_args(cfg, d)
        opts = [*opts, "--log-opt", "max-size=1g"]
        run = engine.run_group(log_driver, 1, engine.write_cmd(lines, 100), opts)
        try:
            if log_driver == engine.PLUGIN:
                engine.wait_stored(run.cids)
            cid = run.cids[0]
            since = engine.line_time(cid, lines, lines // 2)
            figs = {"read_all_s": engine.time_logs(cid),
                    "read_since_s": engine.time_logs(cid, "--since", since)}  # fmt: skip
        finally:
            engine.remove(run.cids)
        _report(cfg, Sample("readback", d, rnd, figs))


PACED_RATE = 20_000


def paced(cfg: Config) -> None:
    """One container writing PACED_RATE lines/s in 20 ms ticks; latency of every
    line from dockerd's log time to the broker's append."""
    if not cfg.use(["pylog+kafka"]):
        return
    seconds = cfg.pick(30, 5)
    per_tick = PACED_RATE // 50
    ticks = seconds * 50
    line = engine.line_of(100)
    # usleep 20000 plus the tick's own work: measured ~25% slow, so sleep less.
    cmd = (f"i=0; while [ $i -lt {ticks} ]; do yes '{line}' | head -n {per_tick}; "
           "i=$((i+1)); usleep 15500; done")  # fmt: skip
    for rnd in range(1, cfg.rounds_for(3) + 1):
        assert cfg.topics is not None
        log_driver, opts, topic = driver_args(cfg, "pylog+kafka")
        assert topic is not None
        engine.reset_peak_rss(engine.pylog_pids())
        cpu0 = engine.cpu_seconds()
        run = engine.run_group(log_driver, 1, cmd, opts)
        n = per_tick * ticks
        try:
            count, _ = cfg.topics.wait_acked(topic, n)
            cpu = engine.cpu_seconds() - cpu0
            pids = engine.pylog_pids()
            lat = cfg.topics.latencies(topic, n)
        finally:
            engine.remove(run.cids)
        _report(cfg, Sample("paced", "pylog+kafka", rnd, {
            "wall_s": run.wall_s, "rate_lps": n / run.wall_s, "kafka_missing": n - count,
            "lat_p50_ms": percentile(lat, 50), "lat_p99_ms": percentile(lat, 99),
            "cpu_s_per_mline": cpu / n * 1e6, "rss_peak_mb": engine.peak_rss_mb(pids),
        }))  # fmt: skip


def many(cfg: Config) -> None:
    """Many containers logging at once (10 lines/s each): pylog's peak RSS."""
    n = cfg.pick(200, 20)
    line = engine.line_of(100)
    script = f"while [ ! -e /go/stop ]; do echo '{line}'; usleep 100000; done"
    for rnd, driver in interleaved(cfg.use(["pylog", "pylog+kafka"]), cfg.rounds_for(1)):
        log_driver, opts, _ = driver_args(cfg, driver, 4)
        flagdir = Path(tempfile.mkdtemp(prefix="pylog-bench-"))
        # A fresh plugin: the figure is what 200 containers cost, not what the
        # worker kept from the bursts of the workloads before (reported apart).
        residual = engine.rss_mb(engine.pylog_pids())
        engine.restart_plugin()
        pids = engine.pylog_pids()
        engine.reset_peak_rss(pids)
        cids: list[str] = []
        try:
            t0 = time.monotonic()
            cids = engine.start_containers(log_driver, n, script, opts, flagdir)
            started = time.monotonic() - t0
            time.sleep(5)
            peak, now = engine.peak_rss_mb(pids), engine.rss_mb(pids)
            (flagdir / "stop").touch()
            engine.docker("wait", *cids)
        finally:
            engine.remove(cids)
            shutil.rmtree(flagdir, ignore_errors=True)
        cfg.log(
            f"  [many] {n} containers started in {started:.0f} s; RSS now {now:.0f} MB"
            f" (before the plugin restart: {residual:.0f} MB)"
        )
        _report(cfg, Sample("many", driver, rnd, {"rss_peak_mb": peak}))


FILE_LOG = "app"
FILE_PATH = "/var/log/app.log"
FILES_DRIVERS = ("pylog", "pylog+kafka")
FILES_KINDS = ("stdout", "file")
# Both kinds keep every line (no rotation, nothing deleted past max-file): the file
# log's lines are counted in the store, and stdout runs with the same options.
KEEP_ALL = ("--log-opt", "max-size=1g")


def file_declaration(log: str, path: str, topic: str | None) -> list[str]:
    """``docker run`` options declaring ``path`` in the container as pylog's file log
    ``log``, shipped to ``topic`` when one is given (README: Logs written to files)."""
    args = ["--label", f"pylog.logs.{log}={path}"]
    if topic is not None:
        args += ["--label", f"pylog.logs.{log}.target={topic}"]
    return args


def file_write_cmd(lines: int, size: int, path: str) -> str:
    """The 1m workload's lines written to ``path`` (its directory made first), nothing
    to stdout."""
    return f"mkdir -p {Path(path).parent} && {engine.write_cmd(lines, size)} > {path}"


def files_rows(drivers: Sequence[str]) -> list[str]:
    """The ``files`` table's rows, ``<driver> <kind>``, for the drivers in use."""
    return [f"{d} {k}" for d in FILES_DRIVERS if d in drivers for k in FILES_KINDS]


def measure_file(cfg: Config, driver: str, rnd: int, lines: int, size: int) -> Sample:
    """One container writing ``lines`` lines of ``size`` bytes to FILE_PATH, declared
    as file log FILE_LOG (for pylog+kafka shipped to a fresh topic of its own). Stored
    when the store's file log holds every line (counted on the host); CPU from go until
    stored and acknowledged."""
    log_driver, opts, _ = driver_args(cfg, driver)
    topic = None
    if driver == "pylog+kafka":
        assert cfg.topics is not None
        topic = cfg.topics.create(1)
    opts = [*opts, *KEEP_ALL, *file_declaration(FILE_LOG, FILE_PATH, topic)]
    engine.reset_peak_rss(engine.pylog_pids())
    cpu0 = engine.cpu_seconds()
    run = engine.run_group(log_driver, 1, file_write_cmd(lines, size, FILE_PATH), opts)
    figs: dict[str, float] = {"wall_s": run.wall_s}
    try:
        done = engine.wait_file_stored(run.cids[0], FILE_LOG, lines)
        figs["stored_lps"] = lines / (done - run.go_mono)
        if topic is not None:
            assert cfg.topics is not None
            count, last = cfg.topics.wait_acked(topic, lines)
            figs["kafka_missing"] = lines - count
            figs["kafka_lps"] = count / max(1e-3, last - run.go_epoch)
        cpu = engine.cpu_seconds() - cpu0
        figs["cpu_s_per_mline"] = cpu / lines * 1e6
        figs["cpu_s_per_gb"] = cpu / (lines * size) * 1e9
        figs["rss_peak_mb"] = engine.peak_rss_mb(engine.pylog_pids())
    finally:
        engine.remove(run.cids)
    return Sample("files", f"{driver} file", rnd, figs)


def files(cfg: Config) -> None:
    """The 1m workload's lines from one container, to stdout (as 1m) or to a file
    declared with ``pylog.logs.app`` (nothing on stdout), through pylog and
    pylog+kafka: four rows, run one after the other, starting one further along each
    round. Both kinds keep every line (``max-size=1g``)."""
    lines = cfg.pick(1_000_000, 100_000)
    for rnd, row in interleaved(files_rows(cfg.use(FILES_DRIVERS)), cfg.rounds_for(3)):
        driver, kind = row.rsplit(" ", 1)
        if kind == "file":
            s = measure_file(cfg, driver, rnd, lines, 100)
        else:
            s = measure(cfg, "files", driver, rnd, 1, lines, 100, extra=KEEP_ALL)
            s.driver = row
        _report(cfg, s)


BURST_DRIVERS = ("pylog", "pylog+kafka")
BURST_IDLE_S = 5.0  # idle after the warm-up, before RSS is taken as the level before
BURST_EVERY_S = 5.0


def _stored_and_acked(cfg: Config, cids: Sequence[str], topic: str | None,
                      lines: int) -> tuple[float, float, int]:  # fmt: skip
    """Wait until pylog stored every line of ``cids`` and, shipping to ``topic``, the
    broker has them all (or stopped receiving). (monotonic time when stored, and when
    both, records in ``topic``: 0 without a topic.)"""
    stored = engine.wait_stored(cids)
    count = 0
    if topic is not None:
        assert cfg.topics is not None
        count, _ = cfg.topics.wait_acked(topic, lines)
    return stored, time.monotonic(), count


def burst(cfg: Config) -> None:
    """Does pylog give back the memory a burst took? Per round and driver: the plugin
    restarted, 1,000 lines logged (and shipped: the shipping process starts lazily,
    so it runs before the level is taken) and BURST_IDLE_S idle; its summed RSS then
    is the level before. One container writes the 1m workload's lines; once they are
    stored (and acknowledged by Kafka) RSS is sampled every BURST_EVERY_S for
    BURST_AFTER_S, the processes taken afresh at each sample."""
    lines = cfg.pick(1_000_000, 100_000)
    for rnd, d in interleaved(cfg.use(BURST_DRIVERS), cfg.rounds_for(3)):
        engine.restart_plugin()
        log_driver, opts, topic = driver_args(cfg, d)
        warm = engine.run_group(log_driver, 1, engine.write_cmd(1000, 100), opts)
        try:
            _stored_and_acked(cfg, warm.cids, topic, 1000)
        finally:
            engine.remove(warm.cids)
        time.sleep(BURST_IDLE_S)
        pids = engine.pylog_pids()
        before = engine.rss_mb(pids)
        engine.reset_peak_rss(pids)
        log_driver, opts, topic = driver_args(cfg, d)
        run = engine.run_group(log_driver, 1, engine.write_cmd(lines, 100), opts)
        times: list[float] = []
        rss: list[float] = []
        peak = 0.0
        try:
            stored, settled, count = _stored_and_acked(cfg, run.cids, topic, lines)
            figs = {"stored_lps": lines / (stored - run.go_mono)}
            if topic is not None:
                figs["kafka_missing"] = lines - count
            for k in range(round(BURST_AFTER_S / BURST_EVERY_S) + 1):
                time.sleep(max(0.0, settled + k * BURST_EVERY_S - time.monotonic()))
                pids = engine.pylog_pids()
                times.append(time.monotonic() - settled)
                rss.append(engine.rss_mb(pids))
                peak = max(peak, engine.peak_rss_mb(pids))
        finally:
            engine.remove(run.cids)
        figs.update(burst_figures(before, times, rss, peak))
        cfg.log(f"  [burst] {d}: RSS every {BURST_EVERY_S:.0f} s after the burst: "
                + " ".join(f"{v:.0f}" for v in rss) + " MB")  # fmt: skip
        _report(cfg, Sample("burst", d, rnd, figs, {"t_s": times, "rss_mb": rss}))


def startup(cfg: Config) -> None:
    """Disable and enable the plugin: time to listen, and idle RSS."""
    if "pylog" not in cfg.drivers:
        return
    for rnd in range(1, cfg.rounds_for(3) + 1):
        s = engine.restart_plugin()
        time.sleep(3)
        idle = engine.rss_mb(engine.pylog_pids())
        _report(cfg, Sample("startup", "pylog", rnd, {
            "enable_s": s.enable_s, "listen_s": s.listen_s, "ready_s": s.ready_s,
            "rss_idle_mb": idle,
        }))  # fmt: skip


SWEEP_DRIVERS = ("json-file", "pylog", "pylog+kafka")


def sweep(cfg: Config) -> None:
    """The same bytes (50 MB; 5 MB quick) split over 1, 10 and 50 containers of
    100-byte lines, then in one container as 1 KiB, 4 KiB and 16 KiB lines."""
    total = cfg.pick(50_000_000, 5_000_000)
    rounds = cfg.rounds_for(2)
    for n in (1, 10, 50):
        lines = total // 100 // n
        _simple(cfg, f"sweep {n}x100B", SWEEP_DRIVERS, rounds, n, lines, 100)
    for size, name in ((1024, "1KiB"), (4096, "4KiB"), (16384, "16KiB")):
        _simple(cfg, f"sweep 1x{name}", SWEEP_DRIVERS, rounds, 1, total // size, size)


SOAK_RATE = 5_000  # lines/s in all, of 100 bytes
SOAK_CONTAINERS = 10
SOAK_TICK_S = 0.1
# usleep 100000 plus the tick's own work (yes | head, the loop) ran ~8 ms a tick slow;
# sleep less, as paced does. The achieved rate is reported (offered lines/s).
SOAK_SLEEP_US = 92_000
SOAK_LOAD = f"{SOAK_CONTAINERS} containers writing {SOAK_RATE:,} lines/s of 100 bytes in all"


def soak(cfg: Config) -> None:
    """SOAK_CONTAINERS containers writing SOAK_RATE lines/s in all, steadily, for 10
    minutes (1 with --quick), pylog+kafka, on a freshly restarted plugin. The
    plugin's summed VmRSS is sampled every 10 s (2 s quick) from go to the exit of
    the last container: is it flat once the load is steady? The figures use the
    samples taken while every container was still running (``running``)."""
    if not cfg.use(["pylog+kafka"]):
        return
    seconds = cfg.pick(600, 60)
    every = cfg.pick(10, 2)
    per_tick = round(SOAK_RATE / SOAK_CONTAINERS * SOAK_TICK_S)
    ticks = round(seconds / SOAK_TICK_S)
    total = per_tick * ticks * SOAK_CONTAINERS
    line = engine.line_of(100)
    script = (
        "while [ ! -e /go/go ]; do usleep 20000; done; i=0; "
        f"while [ $i -lt {ticks} ]; do yes '{line}' | head -n {per_tick}; "
        f"i=$((i+1)); usleep {SOAK_SLEEP_US}; done"
    )
    for rnd in range(1, cfg.rounds_for(1) + 1):
        assert cfg.topics is not None
        log_driver, opts, topic = driver_args(cfg, "pylog+kafka", 4)
        assert topic is not None
        # A fresh plugin: the series is the soak's, not what the worker kept from
        # the bursts of the workloads before (logged apart).
        residual = engine.rss_mb(engine.pylog_pids())
        engine.restart_plugin()
        flagdir = Path(tempfile.mkdtemp(prefix="pylog-bench-"))
        cids: list[str] = []
        series: dict[str, list[float]] = {}
        pid_sets: list[list[int]] = []
        try:
            cids = engine.start_containers(log_driver, SOAK_CONTAINERS, script, opts, flagdir)
            waiter = subprocess.Popen([engine.DOCKER, "wait", *cids], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)  # fmt: skip
            time.sleep(0.3)  # the client has asked dockerd to wait
            cpu0 = engine.cpu_seconds()
            go = time.monotonic()
            (flagdir / "go").touch()
            k, logged = 0, -1
            while True:
                # Every sample asks again: a respawned worker would be a new pid.
                pids = engine.pylog_pids()
                t = time.monotonic() - go
                if pids not in pid_sets:
                    pid_sets.append(pids)
                states = engine.docker("inspect", "-f", "{{.State.Running}}", *cids)
                stats = {"t_s": t, "rss_mb": engine.rss_mb(pids), **engine.process_stats(pids),
                         "running": float(states.split().count("true"))}  # fmt: skip
                for key, v in stats.items():
                    series.setdefault(key, []).append(v)
                if int(t // 60) > logged:
                    logged = int(t // 60)
                    cfg.log(f"  [soak] {t:5.0f} s  RSS {stats['rss_mb']:.0f} MB (arbiter "
                            f"{stats['rss_arbiter_mb']:.0f}, worker "
                            f"{stats['rss_workers_mb']:.0f}), {stats['threads']:.0f} "
                            f"threads, {stats['fds']:.0f} fds, "
                            f"{stats['running']:.0f} running")  # fmt: skip
                if waiter.poll() is not None:
                    break
                k += 1
                with contextlib.suppress(subprocess.TimeoutExpired):
                    waiter.wait(timeout=max(0.0, go + k * every - time.monotonic()))
            wall = time.monotonic() - go
            out, err = waiter.communicate()
            codes = out.decode().split()
            if waiter.returncode != 0 or any(c != "0" for c in codes):
                raise engine.BenchError(f"soak: containers exited {codes} {err.decode()[-300:]}")
            count, _ = cfg.topics.wait_acked(topic, total)
            cpu = engine.cpu_seconds() - cpu0
        finally:
            engine.remove(cids)
            shutil.rmtree(flagdir, ignore_errors=True)
        cfg.log(f"  [soak] RSS before the plugin restart: {residual:.0f} MB; plugin pids "
                f"over the run: {pid_sets}")  # fmt: skip
        # planned_s is in no table (not in FIGURES): results.json and the chart's mark.
        figs = {"wall_s": wall, "planned_s": seconds, "rate_lps": total / wall,
                "kafka_missing": total - count,
                "cpu_s_per_mline": cpu / total * 1e6,
                **soak_figures(series["t_s"], series["rss_mb"], seconds,
                               [r == len(cids) for r in series["running"]])}  # fmt: skip
        _report(cfg, Sample("soak", "pylog+kafka", rnd, figs, series))


def warm_up(cfg: Config) -> None:
    for d in cfg.use(ALL_DRIVERS):
        log_driver, opts, _ = driver_args(cfg, d)
        engine.remove(engine.run_group(log_driver, 1, engine.write_cmd(1000, 100), opts).cids)


WORKLOADS: dict[str, tuple[str, Callable[[Config], None]]] = {
    "startup": ("plugin disable + enable, then 3 s idle", startup),
    "1m": ("1,000,000 lines of 100 bytes from one container", one_million),
    "10c": ("10 containers at once, 100,000 lines of 100 bytes each", ten_containers),
    "ceiling": (
        "Kafka's ProducerPerformance, pylog's own values as payloads, its producer settings "
        "(rows in 1m and 10c)",
        ceiling,
    ),
    "4k": ("50,000 lines of 4 KiB from one container", four_kib),
    "files": (
        "1,000,000 lines of 100 bytes from one container, to stdout or to a declared "
        "file log (max-size=1g)",
        files,
    ),
    "readback": (
        "docker logs, whole and --since the middle line, of 1,000,000 lines of "
        "100 bytes kept with max-size=1g",
        readback,
    ),
    "paced": (f"one container at a steady {PACED_RATE:,} lines/s of 100 bytes for 30 s", paced),
    "burst": (
        "1,000,000 lines of 100 bytes from one container on a restarted, warmed-up "
        "plugin; RSS before, at peak, and every 5 s for 60 s once stored (and acked)",
        burst,
    ),
    "many": ("200 containers logging 10 lines/s each at once", many),
    "sweep": ("50 MB over 1/10/50 containers, and as 1/4/16 KiB lines", sweep),
    "soak": (f"{SOAK_LOAD} for 10 min, RSS every 10 s", soak),
}
# `make bench` without --workloads: all but soak, which adds 10+ minutes
# (run it with --workloads soak).
DEFAULT_WORKLOADS = tuple(w for w in WORKLOADS if w != "soak")
QUICK_TITLES = {
    "1m": "100,000 lines of 100 bytes from one container",
    "10c": "10 containers at once, 10,000 lines of 100 bytes each",
    "4k": "5,000 lines of 4 KiB from one container",
    "files": "100,000 lines of 100 bytes from one container, to stdout or to a declared "
    "file log (max-size=1g)",
    "readback": "docker logs, whole and --since the middle line, of 100,000 lines of "
    "100 bytes kept with max-size=1g",
    "paced": f"one container at a steady {PACED_RATE:,} lines/s of 100 bytes for 5 s",
    "burst": "100,000 lines of 100 bytes from one container on a restarted, warmed-up "
    "plugin; RSS before, at peak, and every 5 s for 60 s once stored (and acked)",
    "many": "20 containers logging 10 lines/s each at once",
    "soak": f"{SOAK_LOAD} for 1 min, RSS every 2 s",
}
