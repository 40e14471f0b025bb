"""A real single-node Apache Kafka broker (KRaft combined mode) for tests and the bench.

The jars come from Maven Central via ``fetch.sh`` beside this file (cached outside
git); the broker runs on the machine's Java and listens on 127.0.0.1 only.

    with KafkaBroker(num_partitions=3) as kafka:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        ...
        kafka.stop()      # data dir and ports are kept
        kafka.start()     # same bootstrap address, same data

Optional listeners: ``scram_users={"alice": "secret"}`` adds a SASL_PLAINTEXT
listener (SCRAM-SHA-256 and -512, users written at format time) at
``sasl_bootstrap``; ``ssl=True`` adds an SSL listener at ``ssl_bootstrap`` with a
self-signed CA at ``ssl_cafile``.

Environment: ``PYLOG_KAFKA_LIBS`` uses that libs dir instead of running the
fetch script; ``JAVA_HOME`` picks the java binary; ``PYLOG_KAFKA_KEEP=1`` keeps
the work dir (config, data, server.log) after close().
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

FETCH_SCRIPT = Path(__file__).resolve().parent / "fetch.sh"

SERVER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    pass


def fetch_libs() -> Path:
    """Return the directory holding the Kafka runtime jars, fetching if needed."""
    env = os.environ.get("PYLOG_KAFKA_LIBS")
    if env:
        return Path(env)
    proc = subprocess.run(
        ["bash", str(FETCH_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise KafkaBrokerError(f"{FETCH_SCRIPT} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    libs = Path(proc.stdout.strip().splitlines()[-1])
    if not libs.is_dir():
        raise KafkaBrokerError(f"fetch script printed {libs!r}, not a directory")
    return libs


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaBrokerError("java not found (set JAVA_HOME or put java on PATH)")
    return found


def random_cluster_id() -> str:
    """A Kafka Uuid string: URL-safe base64 of 16 random bytes, no padding."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):  # Kafka avoids these (look like CLI options)
            return s


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_live: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_live):
        with contextlib.suppress(Exception):
            broker.stop(timeout=10)


class KafkaBroker:
    def __init__(
        self,
        *,
        num_partitions: int = 1,
        scram_users: dict[str, str] | None = None,
        ssl: bool = False,
        workdir: str | os.PathLike[str] | None = None,
        heap: str = "512m",
        start_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.num_partitions = num_partitions
        self.scram_users = dict(scram_users or {})
        self.ssl = ssl
        self.heap = heap
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_config = dict(extra_config or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.cluster_id = random_cluster_id()
        self.port: int | None = None
        self.controller_port: int | None = None
        self.sasl_port: int | None = None
        self.ssl_port: int | None = None
        self.ssl_cafile: str | None = None
        self._libs: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None
        self._formatted = False
        self._lock = threading.RLock()
        self.last_start_seconds: float | None = None

    # -- addresses -------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        self._need_ports()
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if not self.scram_users:
            raise KafkaBrokerError("broker was built without scram_users")
        self._need_ports()
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        if not self.ssl:
            raise KafkaBrokerError("broker was built without ssl=True")
        self._need_ports()
        return f"127.0.0.1:{self.ssl_port}"

    def _need_ports(self) -> None:
        if self.port is None:
            raise KafkaBrokerError("broker has not been started yet")

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def rss_bytes(self) -> int | None:
        """Resident memory of the broker JVM (from /proc), or None."""
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log_tail(self, lines: int = 60) -> str:
        try:
            data = self.log_path.read_bytes()[-64 * 1024 :]
        except (OSError, AssertionError):
            return "<no broker log>"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def astart(self) -> None:
        """start() without blocking the running event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self, *, kill: bool = False) -> None:
        await asyncio.to_thread(self.stop, kill=kill)

    def start(self) -> None:
        """Start the broker and wait until it serves metadata. No-op if running."""
        with self._lock:
            if self.is_running():
                return
            t0 = time.monotonic()
            self._prepare()
            self._launch()
            try:
                self._wait_ready(t0 + self.start_timeout)
            except BaseException:
                self.stop(kill=True)
                raise
            self.last_start_seconds = time.monotonic() - t0
            _live.add(self)

    def stop(self, *, kill: bool = False, timeout: float | None = None) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``).

        ``kill=True`` sends SIGKILL at once (a crash). Data and ports are kept, so
        start() brings the same broker back on the same address. Idempotent.
        """
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                if not kill:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
                    except subprocess.TimeoutExpired:
                        kill = True
                if kill:
                    proc.kill()
                    proc.wait(timeout=30)
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            _live.discard(self)

    def close(self) -> None:
        """Stop and remove the work dir (if we created it)."""
        self.stop()
        if os.environ.get("PYLOG_KAFKA_KEEP"):
            return
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._formatted = False

    # -- internals -------------------------------------------------------
    def _prepare(self) -> None:
        if self._libs is None:
            self._libs = fetch_libs()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pylog-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
            self.controller_port = free_port()
            if self.scram_users:
                self.sasl_port = free_port()
            if self.ssl:
                self.ssl_port = free_port()
        if self.ssl and self.ssl_cafile is None:
            self.ssl_cafile = str(make_certs(self.workdir / "tls"))
        (self.workdir / "log4j2.properties").write_text(_LOG4J2)
        (self.workdir / "server.properties").write_text(self._server_properties())
        if not self._formatted:
            self._format()
            self._formatted = True

    def _server_properties(self) -> str:
        assert self.workdir is not None
        listeners = {
            "PLAINTEXT": self.port,
            "CONTROLLER": self.controller_port,
        }
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        if self.scram_users:
            listeners["SASL_PLAINTEXT"] = self.sasl_port
            protocols["SASL_PLAINTEXT"] = "SASL_PLAINTEXT"
        if self.ssl:
            listeners["SSL"] = self.ssl_port
            protocols["SSL"] = "SSL"
        advertised = {k: v for k, v in listeners.items() if k != "CONTROLLER"}
        cfg: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{k}://127.0.0.1:{v}" for k, v in listeners.items()),
            "advertised.listeners": ",".join(f"{k}://127.0.0.1:{v}" for k, v in advertised.items()),
            "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": self.num_partitions,
            "auto.create.topics.enable": "true",
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # A SIGKILLed broker's old registration blocks the restarted one
            # until its session expires (default 9 s); keep that short.
            "broker.heartbeat.interval.ms": 1000,
            "broker.session.timeout.ms": 4000,
            "log.retention.check.interval.ms": 60000,
            # Keep every record: the tests log lines with fixed timestamps (late 2025),
            # which the default time retention (7 days, by record time) may delete once
            # their segment is rolled. A precaution: one CI run missed a test's first
            # 100 lines after a broker restart, and this was not shown to be the cause.
            "log.retention.ms": -1,
        }
        if self.scram_users:
            cfg["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
            for mech in SCRAM_MECHANISMS:
                cfg[f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if self.ssl:
            cfg["listener.name.ssl.ssl.keystore.type"] = "PEM"
            cfg["listener.name.ssl.ssl.keystore.location"] = str(
                self.workdir / "tls" / "broker.pem"
            )
            cfg["listener.name.ssl.ssl.client.auth"] = "none"
        cfg.update(self.extra_config)
        return "".join(f"{k}={v}\n" for k, v in cfg.items())

    def _java(self, main: str, *args: str) -> list[str]:
        assert self._libs is not None and self.workdir is not None
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            f"{self._libs}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        assert self.workdir is not None
        args = [
            "format",
            "--config", str(self.workdir / "server.properties"),
            "--cluster-id", self.cluster_id,
        ]  # fmt: skip
        for user, password in self.scram_users.items():
            for mech in SCRAM_MECHANISMS:
                args += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        proc = subprocess.run(
            self._java(STORAGE_TOOL_MAIN, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            raise KafkaBrokerError(f"{STORAGE_TOOL_MAIN} format failed:\n{proc.stdout[-4000:]}")

    def _launch(self) -> None:
        assert self.workdir is not None
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_fh.write(f"---- pylog: starting broker at {time.ctime()} ----\n".encode())
        self._log_fh.flush()
        main_thread = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            self._java(SERVER_MAIN, str(self.workdir / "server.properties")),
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            # PDEATHSIG fires when the *forking thread* exits, so only use it
            # when forking from the main thread (astart() forks from a worker).
            preexec_fn=_set_pdeathsig if main_thread else None,
        )

    def _wait_ready(self, deadline: float) -> None:
        last_err: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise KafkaBrokerError(
                    f"broker exited with {code} during start\n--- log tail ---\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                _run_coro(_metadata_ok(self.bootstrap, timeout=5))
                return
            except Exception as e:
                last_err = e
                time.sleep(0.25)
        raise KafkaBrokerError(
            f"broker not ready on {self.bootstrap} after {self.start_timeout}s "
            f"(last error: {last_err!r})\n--- log tail ---\n{self.log_tail()}"
        )


async def _metadata_ok(bootstrap: str, timeout: float) -> None:
    """Raise unless a metadata request returns broker 1 (registered, unfenced)."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        brokers = client.cluster.brokers()
        if not any(b.nodeId == 1 for b in brokers):
            raise KafkaBrokerError(f"metadata lists no broker 1: {brokers}")
    finally:
        await client.close()


def _run_coro(coro: Any) -> Any:
    """Run a coroutine to completion, also when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["v"] = asyncio.run(coro)
        except BaseException as e:
            box["e"] = e

    t = threading.Thread(target=runner, daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")


def make_certs(tls: Path) -> Path:
    """Self-signed CA + broker cert for 127.0.0.1/localhost (PEM). Returns CA path."""
    tls.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=pylog-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "broker.key", "-out", "broker.csr")  # fmt: skip
    (tls / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\n"
    )
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "broker.crt")  # fmt: skip
    # Kafka's PEM keystore wants an unencrypted PKCS#8 key followed by the chain.
    run("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8")
    (tls / "broker.pem").write_text(
        (tls / "broker.pk8").read_text()
        + (tls / "broker.crt").read_text()
        + (tls / "ca.pem").read_text()
    )
    return tls / "ca.pem"


if __name__ == "__main__":  # manual smoke: PYTHONPATH=scripts python -m kafka.broker
    with KafkaBroker() as b:
        print(f"up at {b.bootstrap} in {b.last_start_seconds:.1f}s, rss={b.rss_bytes()}")
        sys.stdout.flush()
