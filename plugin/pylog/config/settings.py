"""Plugin-wide settings, from the plugin's environment (declared in config.json,
changed with ``docker plugin set pylog KEY=VALUE``).

Every variable is one row of :data:`PYLOG_SETTINGS` or :data:`KAFKA_SETTINGS`
(name, parser, default, what is accepted) and one loop, :func:`_read_env`, reads
them: blanks around a value are dropped (but a password's), an empty value is the
default, and a bad one fails the plugin's start naming the variable. The rules
that tie several settings together come after the loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tag import TagTemplate
from .declarations import DEFAULT_LOG_PREFIXES, parse_log_prefixes
from .errors import OptionError
from .parsers import (
    parse_bool,
    parse_brokers,
    parse_duration,
    parse_readable_file,
    parse_size,
    parse_template,
)
from .table import Option, T, Values, ignoring_what
from .tls import check_tls_files

ENV_STATE_DIR = "PYLOG_STATE_DIR"
ENV_SOCKET = "PYLOG_SOCKET"
ENV_FIFO_ROOT = "PYLOG_FIFO_ROOT"
ENV_LOG_LEVEL = "PYLOG_LOG_LEVEL"
ENV_THREADS = "PYLOG_THREADS"
ENV_RETENTION = "PYLOG_RETENTION"
ENV_MAX_FRAME = "PYLOG_MAX_FRAME"
ENV_MAX_READERS = "PYLOG_MAX_READERS"
ENV_MAX_REQUEST = "PYLOG_MAX_REQUEST"
ENV_SHIPPING_PROCESSES = "PYLOG_SHIPPING_PROCESSES"
ENV_LOG_PREFIX = "PYLOG_LOG_PREFIX"

ENV_KAFKA_BROKERS = "KAFKA_BROKERS"
ENV_KAFKA_CLIENT_ID = "KAFKA_CLIENT_ID"
ENV_KAFKA_COMPRESSION = "KAFKA_COMPRESSION"
ENV_KAFKA_ACKS = "KAFKA_ACKS"
ENV_KAFKA_LINGER_MS = "KAFKA_LINGER_MS"
ENV_KAFKA_REQUEST_TIMEOUT_MS = "KAFKA_REQUEST_TIMEOUT_MS"
ENV_KAFKA_BATCH_SIZE = "KAFKA_BATCH_SIZE"
ENV_KAFKA_IDEMPOTENCE = "KAFKA_IDEMPOTENCE"
ENV_KAFKA_TOPIC = "KAFKA_TOPIC"
ENV_KAFKA_KEY = "KAFKA_KEY"
ENV_KAFKA_MAX_LINE = "KAFKA_MAX_LINE"
ENV_KAFKA_BACKLOG_MAX_AGE = "KAFKA_BACKLOG_MAX_AGE"
ENV_KAFKA_TLS = "KAFKA_TLS"
ENV_KAFKA_TLS_CA = "KAFKA_TLS_CA"
ENV_KAFKA_TLS_CERT = "KAFKA_TLS_CERT"
ENV_KAFKA_TLS_KEY = "KAFKA_TLS_KEY"
ENV_KAFKA_SASL_MECHANISM = "KAFKA_SASL_MECHANISM"
ENV_KAFKA_SASL_USERNAME = "KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "KAFKA_SASL_PASSWORD"
ENV_KAFKA_SASL_PASSWORD_FILE = "KAFKA_SASL_PASSWORD_FILE"

LOG_LEVELS = ("debug", "info", "warning", "error")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS = ("all", "1", "0")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Topic of a container that names none (no label, log-opt or KAFKA_TOPIC).
DEFAULT_KAFKA_TOPIC = "docker-logs"
#: Record key of a container that names none: its full ID, so its lines share a partition.
DEFAULT_KAFKA_KEY = "{{.FullID}}"
#: A line longer than this (bytes of the message, after joining 16 KiB chunks) is
#: shipped in pieces of this size, each marked with ``part``.
DEFAULT_KAFKA_MAX_LINE = 256 * 1024
#: How long the unshippable backlog of a container whose logging has stopped is
#: retried before it is given up (see shipper/backlog.py); 0 is forever.
DEFAULT_KAFKA_BACKLOG_MAX_AGE = 72 * 3600.0
#: How long stopping pylog may take in all, in seconds: reading the FIFOs to the
#: end, shippers sending what is left, producers closing. dockerd kills a plugin
#: that has not stopped 10 s after it was told to; the 2 s left are for the
#: process to exit. What is not acknowledged by then ships at the next start
#: (from ``kafka.position``).
SHUTDOWN_DEADLINE = 8.0


# -- per-kind helpers: a row of the table, its parser and its words together ----


def _text(name: str, default: T, *, strip: bool = True) -> Option[str | T]:
    return Option(name, lambda text, _what: text, default, "a text", strip=strip)


def _path(name: str, default: Path) -> Option[Path]:
    return Option(name, ignoring_what(Path), default, "a path")


def _file(name: str) -> Option[Path | None]:
    return Option(name, parse_readable_file, None, "a readable file")


def _boolean(name: str, default: bool) -> Option[bool]:
    return Option(name, ignoring_what(parse_bool), default, "true or false")


def _template(name: str, default: str) -> Option[TagTemplate]:
    return Option(name, parse_template, TagTemplate(default), "a template such as {{.Name}}")


def _one_of(
    name: str, default: T, choices: tuple[str, ...], normal: Callable[[str], str]
) -> Option[str | T]:
    """One of ``choices``, after ``normal`` (case folding, aliases)."""

    def parse(text: str, _what: str) -> str:
        value = normal(text)
        if value not in choices:
            raise ValueError(text)
        return value

    return Option(name, parse, default, f"one of {', '.join(choices)}")


def _bounded(
    name: str, default: int, read: Callable[[str], int], low: int, high: int | None, what: str
) -> Option[int]:
    """A number from ``read`` within ``low..high`` (no upper bound if ``high`` is None)."""

    def parse(text: str, _what: str) -> int:
        n = read(text)
        if n < low or (high is not None and n > high):
            raise ValueError(text)
        return n

    bounds = f"of at least {low}" if high is None else f"from {low} to {high}"
    return Option(name, parse, default, what.format(bounds))


def _integer(name: str, default: int, low: int, high: int | None = None) -> Option[int]:
    return _bounded(name, default, int, low, high, "an integer {}")


def _size(name: str, default: int, low: int, high: int | None = None) -> Option[int]:
    """A buffer size: ``64k``, ``1m``, in powers of 1024 (see :func:`parse_size`)."""
    return _bounded(name, default, parse_size, low, high, "a size {} bytes")


def _acks(text: str) -> str:
    value = text.lower()
    return "all" if value == "-1" else value  # -1 is Kafka's own spelling of all


# -- the tables ----------------------------------------------------------------

_LOG_LEVEL = _one_of(ENV_LOG_LEVEL, "info", LOG_LEVELS, str.lower)
_THREADS = _integer(ENV_THREADS, 16, 4)
_RETENTION: Option[float] = Option(
    ENV_RETENTION,
    ignoring_what(parse_duration),
    7 * 86400,
    "a duration such as 90s, 15m, 168h or 7d, or 0 to keep logs forever",
)
_MAX_FRAME = _size(ENV_MAX_FRAME, 1 << 20, 64 << 10)
_MAX_READERS = _integer(ENV_MAX_READERS, 512, 1)
_MAX_REQUEST = _size(ENV_MAX_REQUEST, 8 << 20, 64 << 10)
_SHIPPING_PROCESSES = _integer(ENV_SHIPPING_PROCESSES, 1, 1, 16)
_STATE_DIR = _path(ENV_STATE_DIR, Path("/var/lib/pylog"))
_SOCKET = _path(ENV_SOCKET, Path("/run/docker/plugins/pylog.sock"))
_FIFO_ROOT = _path(ENV_FIFO_ROOT, Path("/run/docker/logging"))
_LOG_PREFIX: Option[tuple[str, ...]] = Option(
    ENV_LOG_PREFIX,
    ignoring_what(parse_log_prefixes),
    DEFAULT_LOG_PREFIXES,
    "comma-separated label prefixes such as pylog,aliyun",
)

#: The ``PYLOG_*`` settings, in the order they are checked.
PYLOG_SETTINGS: tuple[Option[Any], ...] = (
    _LOG_LEVEL,
    _THREADS,
    _RETENTION,
    _MAX_FRAME,
    _MAX_READERS,
    _MAX_REQUEST,
    _SHIPPING_PROCESSES,
    _STATE_DIR,
    _SOCKET,
    _FIFO_ROOT,
    _LOG_PREFIX,
)

_KAFKA_BROKERS: Option[tuple[str, ...]] = Option(
    ENV_KAFKA_BROKERS, parse_brokers, (), "host:port[,host:port...]"
)
_KAFKA_COMPRESSION = _one_of(ENV_KAFKA_COMPRESSION, "lz4", COMPRESSIONS, str.lower)
_KAFKA_ACKS = _one_of(ENV_KAFKA_ACKS, "all", ACKS, _acks)
_KAFKA_IDEMPOTENCE = _boolean(ENV_KAFKA_IDEMPOTENCE, True)
_KAFKA_LINGER_MS = _integer(ENV_KAFKA_LINGER_MS, 20, 0, 60_000)
_KAFKA_REQUEST_TIMEOUT_MS = _integer(ENV_KAFKA_REQUEST_TIMEOUT_MS, 60_000, 1_000, 600_000)
_KAFKA_BATCH_SIZE = _size(ENV_KAFKA_BATCH_SIZE, 256 << 10, 1024, 64 << 20)
_KAFKA_MAX_LINE = _size(ENV_KAFKA_MAX_LINE, DEFAULT_KAFKA_MAX_LINE, 1024, 16 << 20)
_KAFKA_BACKLOG_MAX_AGE: Option[float] = Option(
    ENV_KAFKA_BACKLOG_MAX_AGE,
    ignoring_what(parse_duration),
    DEFAULT_KAFKA_BACKLOG_MAX_AGE,
    "a duration such as 72h, 7d or 0 (forever)",
)
_KAFKA_TLS_CA = _file(ENV_KAFKA_TLS_CA)
_KAFKA_TLS_CERT = _file(ENV_KAFKA_TLS_CERT)
_KAFKA_TLS_KEY = _file(ENV_KAFKA_TLS_KEY)
_KAFKA_TLS = _boolean(ENV_KAFKA_TLS, False)
_KAFKA_SASL_MECHANISM = _one_of(ENV_KAFKA_SASL_MECHANISM, None, SASL_MECHANISMS, str.upper)
_KAFKA_SASL_USERNAME = _text(ENV_KAFKA_SASL_USERNAME, None)
_KAFKA_SASL_PASSWORD = _text(ENV_KAFKA_SASL_PASSWORD, None, strip=False)
_KAFKA_SASL_PASSWORD_FILE = _file(ENV_KAFKA_SASL_PASSWORD_FILE)
_KAFKA_CLIENT_ID = _text(ENV_KAFKA_CLIENT_ID, "pylog")
_KAFKA_TOPIC = _template(ENV_KAFKA_TOPIC, DEFAULT_KAFKA_TOPIC)
_KAFKA_KEY = _template(ENV_KAFKA_KEY, DEFAULT_KAFKA_KEY)

#: The ``KAFKA_*`` settings, in the order they are checked.
KAFKA_SETTINGS: tuple[Option[Any], ...] = (
    _KAFKA_BROKERS,
    _KAFKA_COMPRESSION,
    _KAFKA_ACKS,
    _KAFKA_IDEMPOTENCE,
    _KAFKA_LINGER_MS,
    _KAFKA_REQUEST_TIMEOUT_MS,
    _KAFKA_BATCH_SIZE,
    _KAFKA_MAX_LINE,
    _KAFKA_BACKLOG_MAX_AGE,
    _KAFKA_TLS_CA,
    _KAFKA_TLS_CERT,
    _KAFKA_TLS_KEY,
    _KAFKA_TLS,
    _KAFKA_SASL_MECHANISM,
    _KAFKA_SASL_USERNAME,
    _KAFKA_SASL_PASSWORD,
    _KAFKA_SASL_PASSWORD_FILE,
    _KAFKA_CLIENT_ID,
    _KAFKA_TOPIC,
    _KAFKA_KEY,
)


def _read_env(table: tuple[Option[Any], ...], env: Mapping[str, str]) -> Values:
    """Every setting of ``table`` that ``env`` gives, parsed; OptionError names a bad one."""
    values = Values()
    for option in table:
        raw = env.get(option.name)
        text = raw.strip() if raw is not None and option.strip else raw
        if not text:
            continue
        try:
            values.set(option, option.parse(text, option.name))
        except OptionError:
            raise
        except ValueError:
            raise OptionError(f"{option.name} must be {option.expected}, got {text!r}") from None
    return values


# -- what the tables fill ------------------------------------------------------


@dataclass(frozen=True)
class KafkaSettings:
    """Plugin-wide Kafka settings (env ``KAFKA_*``); no brokers means local-only.

    The SASL password is kept out of ``repr`` so it never reaches a log line.
    """

    brokers: tuple[str, ...] = _KAFKA_BROKERS.default
    client_id: str = _KAFKA_CLIENT_ID.default
    compression: str = _KAFKA_COMPRESSION.default
    acks: str = _KAFKA_ACKS.default
    linger_ms: int = _KAFKA_LINGER_MS.default
    request_timeout_ms: int = _KAFKA_REQUEST_TIMEOUT_MS.default
    """How long a batch may wait for the broker before it is failed and shipped again,
    and a batch unacknowledged for that long is logged as failing."""
    batch_size: int = _KAFKA_BATCH_SIZE.default
    idempotence: bool = _KAFKA_IDEMPOTENCE.default
    topic: TagTemplate = _KAFKA_TOPIC.default
    key: TagTemplate = _KAFKA_KEY.default
    max_line: int = _KAFKA_MAX_LINE.default
    backlog_max_age: float = _KAFKA_BACKLOG_MAX_AGE.default
    """Seconds; 0 retries a stopped container's backlog forever."""
    tls: bool = _KAFKA_TLS.default
    tls_ca: Path | None = _KAFKA_TLS_CA.default
    tls_cert: Path | None = _KAFKA_TLS_CERT.default
    tls_key: Path | None = _KAFKA_TLS_KEY.default
    sasl_mechanism: str | None = _KAFKA_SASL_MECHANISM.default
    sasl_username: str | None = _KAFKA_SASL_USERNAME.default
    sasl_password: str | None = field(default=_KAFKA_SASL_PASSWORD.default, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        """Validate every ``KAFKA_*`` variable; :class:`OptionError` names the bad one."""
        v = _read_env(KAFKA_SETTINGS, env)
        acks, idempotence = v[_KAFKA_ACKS], v[_KAFKA_IDEMPOTENCE]
        if idempotence and acks != "all":
            raise OptionError(
                f"{ENV_KAFKA_IDEMPOTENCE}=true needs {ENV_KAFKA_ACKS}=all "
                f"(or set {ENV_KAFKA_IDEMPOTENCE}=false)"
            )
        tls_ca, tls_cert, tls_key = v[_KAFKA_TLS_CA], v[_KAFKA_TLS_CERT], v[_KAFKA_TLS_KEY]
        if (tls_cert is None) != (tls_key is None):
            raise OptionError(f"{ENV_KAFKA_TLS_CERT} and {ENV_KAFKA_TLS_KEY} go together")
        tls = v[_KAFKA_TLS] or any((tls_ca, tls_cert, tls_key))
        if tls:
            check_tls_files(
                tls_ca,
                tls_cert,
                tls_key,
                ca_name=ENV_KAFKA_TLS_CA,
                cert_name=ENV_KAFKA_TLS_CERT,
                key_name=ENV_KAFKA_TLS_KEY,
            )
        mechanism, username = v[_KAFKA_SASL_MECHANISM], v[_KAFKA_SASL_USERNAME]
        password, password_file = v[_KAFKA_SASL_PASSWORD], v[_KAFKA_SASL_PASSWORD_FILE]
        if password is not None and password_file is not None:
            raise OptionError(
                f"set {ENV_KAFKA_SASL_PASSWORD} or {ENV_KAFKA_SASL_PASSWORD_FILE}, not both"
            )
        if password_file is not None:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        if mechanism is not None:
            if username is None or not password:
                raise OptionError(
                    f"{ENV_KAFKA_SASL_MECHANISM} needs {ENV_KAFKA_SASL_USERNAME} and "
                    f"{ENV_KAFKA_SASL_PASSWORD} or {ENV_KAFKA_SASL_PASSWORD_FILE}"
                )
        elif username is not None or password is not None:
            raise OptionError(
                f"{ENV_KAFKA_SASL_USERNAME}/password are set but {ENV_KAFKA_SASL_MECHANISM} is not"
            )
        return cls(
            brokers=v[_KAFKA_BROKERS],
            client_id=v[_KAFKA_CLIENT_ID],
            compression=v[_KAFKA_COMPRESSION],
            acks=acks,
            linger_ms=v[_KAFKA_LINGER_MS],
            request_timeout_ms=v[_KAFKA_REQUEST_TIMEOUT_MS],
            batch_size=v[_KAFKA_BATCH_SIZE],
            idempotence=idempotence,
            topic=v[_KAFKA_TOPIC],
            key=v[_KAFKA_KEY],
            max_line=v[_KAFKA_MAX_LINE],
            backlog_max_age=v[_KAFKA_BACKLOG_MAX_AGE],
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            sasl_mechanism=mechanism,
            sasl_username=username,
            sasl_password=password,
        )


@dataclass(frozen=True)
class Settings:
    """Plugin-wide settings; see config.json for their documentation."""

    state_dir: Path = _STATE_DIR.default
    socket_path: Path = _SOCKET.default
    fifo_root: Path = _FIFO_ROOT.default
    log_level: str = _LOG_LEVEL.default
    threads: int = _THREADS.default
    """HTTP threads kept for every request but ``docker logs`` streams (StartLogging,
    StopLogging, Capabilities, metrics): those always find one free."""
    max_readers: int = _MAX_READERS.default
    """Concurrent ReadLogs streams (``docker logs``, with or without ``-f``); each holds
    a thread of its own, so the server runs ``max_readers + threads`` threads."""
    max_request: int = _MAX_REQUEST.default
    """Largest request body accepted; a container's Info (env, labels) fits many times."""
    retention_seconds: float = _RETENTION.default
    """Logs of a container not logged to for this long are deleted; 0 keeps them forever."""
    max_frame: int = _MAX_FRAME.default
    shipping_processes: int = _SHIPPING_PROCESSES.default
    """Processes shipping to Kafka (containers spread over them by ID); started only
    once a container is shipped."""
    log_prefixes: tuple[str, ...] = _LOG_PREFIX.default
    """Prefixes of the labels (``<prefix>.logs.<name>``) and env (``<prefix>_logs_<name>``)
    that declare a container's logs, the first first (see :mod:`.declarations`)."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Validate every setting (``os.environ`` by default); :class:`OptionError` names
        the bad one."""
        env = os.environ if env is None else env
        v = _read_env(PYLOG_SETTINGS, env)
        return cls(
            state_dir=v[_STATE_DIR],
            socket_path=v[_SOCKET],
            fifo_root=v[_FIFO_ROOT],
            log_level=v[_LOG_LEVEL],
            threads=v[_THREADS],
            retention_seconds=v[_RETENTION],
            max_frame=v[_MAX_FRAME],
            max_readers=v[_MAX_READERS],
            max_request=v[_MAX_REQUEST],
            shipping_processes=v[_SHIPPING_PROCESSES],
            log_prefixes=v[_LOG_PREFIX],
            kafka=KafkaSettings.from_env(env),
        )
