"""Every setting pylog reads, in one place.

Two kinds:

* :class:`Settings`, plugin-wide, from the plugin's environment (declared in
  config.json, changed with ``docker plugin set pylog KEY=VALUE``);
* :class:`LogOptions`, per container, from its log-opts (``--log-opt``,
  compose ``logging.options``, daemon.json ``log-opts``). dockerd does not
  validate log-opts for plugins, so :func:`parse_log_opts` does, up front,
  naming the offending option and what is accepted. A failure here fails
  ``docker run``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import re2

from .store.logfile import RotationPolicy
from .tag import TagTemplate, TemplateError

# -- per-container log-opts (json-file's meaning) ------------------------------


OPT_MAX_SIZE = "max-size"
OPT_MAX_FILE = "max-file"
OPT_COMPRESS = "compress"
OPT_LABELS = "labels"
OPT_LABELS_REGEX = "labels-regex"
OPT_ENV = "env"
OPT_ENV_REGEX = "env-regex"
OPT_TAG = "tag"

# Kafka shipping, per container (see KafkaOptions and the README).
OPT_KAFKA = "kafka"
OPT_KAFKA_TOPIC = "kafka-topic"
OPT_KAFKA_KEY = "kafka-key"
OPT_KAFKA_BROKERS = "kafka-brokers"
OPT_KAFKA_JSON = "kafka-json"
OPT_KAFKA_MULTILINE_PATTERN = "kafka-multiline-pattern"
OPT_KAFKA_MULTILINE_MAX_LINES = "kafka-multiline-max-lines"
OPT_KAFKA_MULTILINE_TIMEOUT = "kafka-multiline-timeout"

KAFKA_OPTS = (
    OPT_KAFKA,
    OPT_KAFKA_TOPIC,
    OPT_KAFKA_KEY,
    OPT_KAFKA_BROKERS,
    OPT_KAFKA_JSON,
    OPT_KAFKA_MULTILINE_PATTERN,
    OPT_KAFKA_MULTILINE_MAX_LINES,
    OPT_KAFKA_MULTILINE_TIMEOUT,
)

PYLOG_OPTS = (
    OPT_MAX_SIZE,
    OPT_MAX_FILE,
    OPT_COMPRESS,
    OPT_LABELS,
    OPT_LABELS_REGEX,
    OPT_ENV,
    OPT_ENV_REGEX,
    OPT_TAG,
    *KAFKA_OPTS,
)

#: Keys dockerd itself puts in (or reads from) every logger's config: accepted, ignored.
DOCKERD_OPTS = frozenset(
    {
        "mode",
        "max-buffer-size",
        "cache-disabled",
        "cache-max-size",
        "cache-max-file",
        "cache-compress",
    }
)

#: Disk use is bounded by default, as with Docker's ``local`` driver and with its
#: numbers: 5 files of 20 MiB (20,971,520 bytes, a little more than ``max-size=20m``,
#: which is 20,000,000), gzipped.
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILE = 5
DEFAULT_COMPRESS = True

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
#: Above any size pylog can use (and below what a float holds exactly enough).
_MAX_SIZE_VALUE = 1 << 60
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
#: go-units' size grammar, as Docker 20.10 vends it (go-units v0.4.0): digits with
#: any number of ``.digits`` groups (``1.2.3`` matches and then fails as a number),
#: one optional space, an optional unit letter, an optional ``i``, an optional ``b``.
#: ASCII digits only, and nothing around it: ``" 32"`` is refused, ``"32 "`` is 32.
_HUMAN_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", re.ASCII)
_DECIMAL_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


class OptionError(ValueError):
    """A log-opt or setting that pylog cannot accept; the message is shown to the user."""


def parse_size(text: str) -> int:
    """A size for pylog's own settings: ``64k``, ``1m``, ``8m``, in powers of 1024.

    For ``PYLOG_MAX_FRAME``, ``PYLOG_MAX_REQUEST``, ``KAFKA_BATCH_SIZE`` and
    ``KAFKA_MAX_LINE``, which are buffer sizes, where ``1m`` meaning 1 MiB is the
    expected reading. Not for ``max-size``: see :func:`parse_human_size`.
    """
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(text)
    try:
        size = int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    except OverflowError:
        raise ValueError(text) from None
    if size > _MAX_SIZE_VALUE:
        raise ValueError(text)
    return size


def parse_human_size(text: str) -> int:
    """``max-size`` exactly as json-file reads it (go-units ``FromHumanSize``).

    Units are decimal whatever the spelling: ``k``, ``kb``, ``ki`` and ``KiB`` are all
    1000, ``20m`` is 20,000,000 bytes, ``1g`` is 10**9. A fraction is truncated
    after the unit is applied, as Go's ``int64(float)`` does: ``32.5 B`` is 32,
    ``0.3k`` is 300. The same text therefore rotates at the same size under pylog
    and under json-file (or ``local``). Raises ``ValueError`` where go-units returns
    an error, and for sizes beyond any disk.
    """
    m = _HUMAN_SIZE.fullmatch(text)
    if m is None:
        raise ValueError(text)
    number = float(m.group(1))  # "1.2.3" raises, as Go's ParseFloat fails on it
    size = number * _DECIMAL_UNITS[(m.group(2) or "").lower()]
    if not size <= _MAX_SIZE_VALUE:
        raise ValueError(text)
    return int(size)


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


#: A regex from a log-opt (``labels-regex``, ``env-regex``, ``kafka-multiline-pattern``).
UserRegex: TypeAlias = "re2._Regexp[str]"

_RE2_OPTIONS = re2.Options()
# A bad pattern is the user's error, reported in their `docker run`: RE2 need not
# also print it to the plugin's stderr.
_RE2_OPTIONS.log_errors = False


def _compile(name: str, pattern: str) -> UserRegex:
    """A regex chosen by whoever creates a container, compiled with RE2.

    Labels, env keys and (for the multiline pattern) log lines are matched
    against it, so a backtracking engine would let a pattern like ``(a+)+$``
    or the text an application logs take exponential time. RE2 matches in
    time linear in the text; it has no backreferences or lookaround.
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise OptionError(
            f"invalid log opt '{name}' {pattern!r}: {reason} (RE2 syntax is accepted: "
            "no backreferences or lookaround)"
        ) from None


def _split_keys(text: str) -> tuple[str, ...]:
    return tuple(k for k in (p.strip() for p in text.split(",")) if k)


#: Lines merged into one multiline record at most, unless kafka-multiline-max-lines says otherwise.
DEFAULT_MULTILINE_MAX_LINES = 500
#: An unfinished multiline record is shipped after this many seconds without a new line.
DEFAULT_MULTILINE_TIMEOUT = 2.0


@dataclass(frozen=True)
class KafkaOptions:
    """A container's Kafka log-opts; ``None`` means "not set here, use the plugin's"."""

    enabled: bool | None = None
    """``kafka=false`` turns shipping off for the container even when brokers are set."""
    topic: TagTemplate | None = None
    key: TagTemplate | None = None
    brokers: tuple[str, ...] | None = None
    json: bool = False
    """Lines that are JSON objects are also shipped parsed, in the record's ``fields``."""
    multiline_pattern: UserRegex | None = None
    """A line matching this starts a new record; other lines are appended to the current one."""
    multiline_max_lines: int = DEFAULT_MULTILINE_MAX_LINES
    multiline_timeout: float = DEFAULT_MULTILINE_TIMEOUT


@dataclass(frozen=True)
class LogOptions:
    """A container's validated log-opts."""

    rotation: RotationPolicy = field(
        default_factory=lambda: RotationPolicy(DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE, DEFAULT_COMPRESS)
    )
    labels: tuple[str, ...] = ()
    labels_regex: UserRegex | None = None
    env: tuple[str, ...] = ()
    env_regex: UserRegex | None = None
    tag: TagTemplate | None = None
    kafka: KafkaOptions = field(default_factory=KafkaOptions)

    def selected_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels named by ``labels`` or matched by ``labels-regex``."""
        return _select(labels, self.labels, self.labels_regex)

    def selected_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The env variables named by ``env`` or matched by ``env-regex``; none by default."""
        return _select(env, self.env, self.env_regex)

    def extra_attributes(self, labels: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
        """Labels and env selected by the options, as json-file puts them in ``attrs``."""
        attrs = self.selected_labels(labels)
        attrs.update(self.selected_env(env))
        return attrs


def _select(
    source: Mapping[str, str], keys: tuple[str, ...], regex: UserRegex | None
) -> dict[str, str]:
    out = {key: source[key] for key in keys if key in source}
    if regex is not None:
        out.update((key, value) for key, value in source.items() if regex.search(key))
    return out


def _accepted() -> str:
    return ", ".join(PYLOG_OPTS)


def parse_log_opts(opts: Mapping[str, str]) -> LogOptions:
    """Validate a container's log-opts; raises :class:`OptionError` naming the bad one."""
    for key in opts:
        if key not in PYLOG_OPTS and key not in DOCKERD_OPTS:
            raise OptionError(
                f"unknown log opt '{key}' for pylog log driver (accepted: {_accepted()})"
            )
    max_size = DEFAULT_MAX_SIZE
    if OPT_MAX_SIZE in opts:
        text = opts[OPT_MAX_SIZE]
        if text.strip() == "-1":
            max_size = -1
        else:
            try:
                max_size = parse_human_size(text)
            except ValueError:
                raise OptionError(
                    f"invalid value for log opt '{OPT_MAX_SIZE}': {text!r} "
                    "(expected a size such as 10k, 20m or 1g, or -1 for no limit)"
                ) from None
            if max_size <= 0:
                raise OptionError(f"log opt '{OPT_MAX_SIZE}' must be positive, got {text!r}")
    max_file = DEFAULT_MAX_FILE
    if OPT_MAX_FILE in opts:
        text = opts[OPT_MAX_FILE]
        try:
            max_file = int(text)
        except ValueError:
            max_file = 0
        if max_file < 1:
            raise OptionError(
                f"invalid value for log opt '{OPT_MAX_FILE}': {text!r} (expected an integer >= 1)"
            )
    compress = DEFAULT_COMPRESS
    if OPT_COMPRESS in opts:
        try:
            compress = parse_bool(opts[OPT_COMPRESS])
        except ValueError:
            raise OptionError(
                f"invalid value for log opt '{OPT_COMPRESS}': {opts[OPT_COMPRESS]!r} "
                "(expected true or false)"
            ) from None
    if max_size < 0 and (OPT_MAX_FILE in opts and max_file > 1):
        raise OptionError(f"log opt '{OPT_MAX_FILE}' needs '{OPT_MAX_SIZE}' to be set")
    tag = None
    if opts.get(OPT_TAG):
        try:
            tag = TagTemplate(opts[OPT_TAG])
        except TemplateError as exc:
            raise OptionError(f"invalid log opt '{OPT_TAG}': {exc}") from None
    return LogOptions(
        kafka=_parse_kafka_opts(opts),
        rotation=RotationPolicy(max_size, max_file, compress),
        labels=_split_keys(opts.get(OPT_LABELS, "")),
        labels_regex=_compile(OPT_LABELS_REGEX, opts[OPT_LABELS_REGEX])
        if opts.get(OPT_LABELS_REGEX)
        else None,
        env=_split_keys(opts.get(OPT_ENV, "")),
        env_regex=_compile(OPT_ENV_REGEX, opts[OPT_ENV_REGEX]) if opts.get(OPT_ENV_REGEX) else None,
        tag=tag,
    )


def _template(name: str, text: str) -> TagTemplate:
    try:
        return TagTemplate(text)
    except TemplateError as exc:
        raise OptionError(f"invalid log opt '{name}': {exc}") from None


def _parse_kafka_opts(opts: Mapping[str, str]) -> KafkaOptions:
    enabled = None
    if OPT_KAFKA in opts:
        try:
            enabled = parse_bool(opts[OPT_KAFKA])
        except ValueError:
            raise OptionError(
                f"invalid value for log opt '{OPT_KAFKA}': {opts[OPT_KAFKA]!r} "
                "(expected true or false)"
            ) from None
    json_fields = False
    if OPT_KAFKA_JSON in opts:
        try:
            json_fields = parse_bool(opts[OPT_KAFKA_JSON])
        except ValueError:
            raise OptionError(
                f"invalid value for log opt '{OPT_KAFKA_JSON}': {opts[OPT_KAFKA_JSON]!r} "
                "(expected true or false)"
            ) from None
    brokers = None
    if opts.get(OPT_KAFKA_BROKERS):
        brokers = parse_brokers(opts[OPT_KAFKA_BROKERS], f"log opt '{OPT_KAFKA_BROKERS}'")
    max_lines = DEFAULT_MULTILINE_MAX_LINES
    if OPT_KAFKA_MULTILINE_MAX_LINES in opts:
        text = opts[OPT_KAFKA_MULTILINE_MAX_LINES]
        try:
            max_lines = int(text)
        except ValueError:
            max_lines = 0
        if max_lines < 1:
            raise OptionError(
                f"invalid value for log opt '{OPT_KAFKA_MULTILINE_MAX_LINES}': {text!r} "
                "(expected an integer >= 1)"
            )
    timeout = DEFAULT_MULTILINE_TIMEOUT
    if OPT_KAFKA_MULTILINE_TIMEOUT in opts:
        text = opts[OPT_KAFKA_MULTILINE_TIMEOUT]
        try:
            timeout = parse_duration(text)
        except ValueError:
            timeout = 0
        if timeout <= 0:
            raise OptionError(
                f"invalid value for log opt '{OPT_KAFKA_MULTILINE_TIMEOUT}': {text!r} "
                "(expected a positive duration such as 500ms or 2s)"
            )
    pattern = None
    if opts.get(OPT_KAFKA_MULTILINE_PATTERN):
        pattern = _compile(OPT_KAFKA_MULTILINE_PATTERN, opts[OPT_KAFKA_MULTILINE_PATTERN])
    return KafkaOptions(
        enabled=enabled,
        topic=_template(OPT_KAFKA_TOPIC, opts[OPT_KAFKA_TOPIC])
        if opts.get(OPT_KAFKA_TOPIC)
        else None,
        key=_template(OPT_KAFKA_KEY, opts[OPT_KAFKA_KEY]) if opts.get(OPT_KAFKA_KEY) else None,
        brokers=brokers,
        json=json_fields,
        multiline_pattern=pattern,
        multiline_max_lines=max_lines,
        multiline_timeout=timeout,
    )


_BROKER = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$")


def parse_brokers(text: str, what: str) -> tuple[str, ...]:
    """``host:port,host:port`` (IPv6 as ``[::1]:9092``), validated, order kept."""
    brokers: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        m = _BROKER.match(item)
        if m is None or not 0 < int(m.group(3)) < 65536:
            raise OptionError(f"invalid broker {item!r} in {what} (expected host:port)")
        brokers.append(item)
    if not brokers:
        raise OptionError(f"{what} names no broker (expected host:port[,host:port...])")
    return tuple(brokers)


# -- plugin-wide settings ------------------------------------------------------

ENV_STATE_DIR = "PYLOG_STATE_DIR"
ENV_SOCKET = "PYLOG_SOCKET"
ENV_FIFO_ROOT = "PYLOG_FIFO_ROOT"
ENV_LOG_LEVEL = "PYLOG_LOG_LEVEL"
ENV_THREADS = "PYLOG_THREADS"
ENV_RETENTION = "PYLOG_RETENTION"
ENV_MAX_FRAME = "PYLOG_MAX_FRAME"
ENV_MAX_READERS = "PYLOG_MAX_READERS"
ENV_MAX_REQUEST = "PYLOG_MAX_REQUEST"

ENV_KAFKA_BROKERS = "KAFKA_BROKERS"
ENV_KAFKA_CLIENT_ID = "KAFKA_CLIENT_ID"
ENV_KAFKA_COMPRESSION = "KAFKA_COMPRESSION"
ENV_KAFKA_ACKS = "KAFKA_ACKS"
ENV_KAFKA_LINGER_MS = "KAFKA_LINGER_MS"
ENV_KAFKA_BATCH_SIZE = "KAFKA_BATCH_SIZE"
ENV_KAFKA_IDEMPOTENCE = "KAFKA_IDEMPOTENCE"
ENV_KAFKA_TOPIC = "KAFKA_TOPIC"
ENV_KAFKA_KEY = "KAFKA_KEY"
ENV_KAFKA_MAX_LINE = "KAFKA_MAX_LINE"
ENV_KAFKA_TLS = "KAFKA_TLS"
ENV_KAFKA_TLS_CA = "KAFKA_TLS_CA"
ENV_KAFKA_TLS_CERT = "KAFKA_TLS_CERT"
ENV_KAFKA_TLS_KEY = "KAFKA_TLS_KEY"
ENV_KAFKA_SASL_MECHANISM = "KAFKA_SASL_MECHANISM"
ENV_KAFKA_SASL_USERNAME = "KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "KAFKA_SASL_PASSWORD"
ENV_KAFKA_SASL_PASSWORD_FILE = "KAFKA_SASL_PASSWORD_FILE"

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


@dataclass(frozen=True)
class KafkaSettings:
    """Plugin-wide Kafka settings (env ``KAFKA_*``); no brokers means local-only.

    The SASL password is kept out of ``repr`` so it never reaches a log line.
    """

    brokers: tuple[str, ...] = ()
    client_id: str = "pylog"
    compression: str = "lz4"
    acks: str = "all"
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    idempotence: bool = True
    topic: TagTemplate = field(default_factory=lambda: TagTemplate(DEFAULT_KAFKA_TOPIC))
    key: TagTemplate = field(default_factory=lambda: TagTemplate(DEFAULT_KAFKA_KEY))
    max_line: int = DEFAULT_KAFKA_MAX_LINE
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        """Validate every ``KAFKA_*`` variable; :class:`OptionError` names the bad one."""

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        d = cls()
        brokers = parse_brokers(b, ENV_KAFKA_BROKERS) if (b := get(ENV_KAFKA_BROKERS)) else ()
        compression = (get(ENV_KAFKA_COMPRESSION) or d.compression).lower()
        if compression not in COMPRESSIONS:
            raise OptionError(f"{ENV_KAFKA_COMPRESSION} must be one of {', '.join(COMPRESSIONS)}")
        acks = (get(ENV_KAFKA_ACKS) or d.acks).lower()
        if acks == "-1":
            acks = "all"
        if acks not in ACKS:
            raise OptionError(f"{ENV_KAFKA_ACKS} must be one of all, 1, 0")
        idempotence = _env_bool(env, ENV_KAFKA_IDEMPOTENCE, d.idempotence)
        if idempotence and acks != "all":
            raise OptionError(
                f"{ENV_KAFKA_IDEMPOTENCE}=true needs {ENV_KAFKA_ACKS}=all "
                f"(or set {ENV_KAFKA_IDEMPOTENCE}=false)"
            )
        linger = _env_int(env, ENV_KAFKA_LINGER_MS, d.linger_ms, 0, 60_000)
        batch = _env_size(env, ENV_KAFKA_BATCH_SIZE, d.batch_size, 1024, 64 << 20)
        max_line = _env_size(env, ENV_KAFKA_MAX_LINE, d.max_line, 1024, 16 << 20)
        tls_ca = _env_file(env, ENV_KAFKA_TLS_CA)
        tls_cert = _env_file(env, ENV_KAFKA_TLS_CERT)
        tls_key = _env_file(env, ENV_KAFKA_TLS_KEY)
        if (tls_cert is None) != (tls_key is None):
            raise OptionError(f"{ENV_KAFKA_TLS_CERT} and {ENV_KAFKA_TLS_KEY} go together")
        tls = _env_bool(env, ENV_KAFKA_TLS, False) or any((tls_ca, tls_cert, tls_key))
        if tls:
            _check_tls_files(tls_ca, tls_cert, tls_key)
        mechanism = get(ENV_KAFKA_SASL_MECHANISM)
        username = get(ENV_KAFKA_SASL_USERNAME)
        password = env.get(ENV_KAFKA_SASL_PASSWORD) or None
        password_file = _env_file(env, ENV_KAFKA_SASL_PASSWORD_FILE)
        if password is not None and password_file is not None:
            raise OptionError(
                f"set {ENV_KAFKA_SASL_PASSWORD} or {ENV_KAFKA_SASL_PASSWORD_FILE}, not both"
            )
        if password_file is not None:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        if mechanism is not None:
            mechanism = mechanism.upper()
            if mechanism not in SASL_MECHANISMS:
                raise OptionError(
                    f"{ENV_KAFKA_SASL_MECHANISM} must be one of {', '.join(SASL_MECHANISMS)}"
                )
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
            brokers=brokers,
            client_id=get(ENV_KAFKA_CLIENT_ID) or d.client_id,
            compression=compression,
            acks=acks,
            linger_ms=linger,
            batch_size=batch,
            idempotence=idempotence,
            topic=_env_template(env, ENV_KAFKA_TOPIC, d.topic),
            key=_env_template(env, ENV_KAFKA_KEY, d.key),
            max_line=max_line,
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            sasl_mechanism=mechanism,
            sasl_username=username,
            sasl_password=password,
        )


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        return parse_bool(value)
    except ValueError:
        raise OptionError(f"{name} must be true or false, got {value!r}") from None


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        n = low - 1
    if not low <= n <= high:
        raise OptionError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return n


def _env_size(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        n = parse_size(value)
    except ValueError:
        n = low - 1
    if not low <= n <= high:
        raise OptionError(f"{name} must be a size from {low} to {high} bytes, got {value!r}")
    return n


def _env_file(env: Mapping[str, str], name: str) -> Path | None:
    """A file named by a setting: must exist and be readable now (messages name the path only)."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise OptionError(f"{name}: {value} is not a readable file")
    return path


def _check_tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Load the PEM files once now, so a bad one fails startup, not every send."""
    ctx = ssl.create_default_context()
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise OptionError(
                f"{ENV_KAFKA_TLS_CA}: {ca} holds no usable CA certificate "
                f"({exc.__class__.__name__})"
            ) from None
    if cert is not None and key is not None:
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as exc:
            raise OptionError(
                f"{ENV_KAFKA_TLS_CERT}/{ENV_KAFKA_TLS_KEY}: {cert} and {key} are not a usable "
                f"certificate and unencrypted key ({exc.__class__.__name__})"
            ) from None


def _env_template(env: Mapping[str, str], name: str, default: TagTemplate) -> TagTemplate:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        return TagTemplate(value)
    except TemplateError as exc:
        raise OptionError(f"invalid {name}: {exc}") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LEVELS = ("debug", "info", "warning", "error")


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``15m``, ``168h``, ``7d``, ``1h30m`` or a bare number of seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(text)
    return total


@dataclass(frozen=True)
class Settings:
    """Plugin-wide settings; see config.json for their documentation."""

    state_dir: Path = Path("/var/lib/pylog")
    socket_path: Path = Path("/run/docker/plugins/pylog.sock")
    fifo_root: Path = Path("/run/docker/logging")
    log_level: str = "info"
    threads: int = 16
    """HTTP threads kept for every request but ``docker logs`` streams (StartLogging,
    StopLogging, Capabilities, metrics): those always find one free."""
    max_readers: int = 512
    """Concurrent ReadLogs streams (``docker logs``, with or without ``-f``); each holds
    a thread of its own, so the server runs ``max_readers + threads`` threads."""
    max_request: int = 8 << 20
    """Largest request body accepted; a container's Info (env, labels) fits many times."""
    retention_seconds: float = 7 * 86400
    """Logs of a container not logged to for this long are deleted; 0 keeps them forever."""
    max_frame: int = 1 << 20
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        try:
            level = (get(ENV_LOG_LEVEL) or d.log_level).lower()
            if level not in _LEVELS:
                raise OptionError(f"{ENV_LOG_LEVEL} must be one of {', '.join(_LEVELS)}")
            threads = int(get(ENV_THREADS) or d.threads)
            if threads < 4:
                raise OptionError(f"{ENV_THREADS} must be at least 4")
            retention = (
                parse_duration(r) if (r := get(ENV_RETENTION)) is not None else d.retention_seconds
            )
            max_frame = parse_size(get(ENV_MAX_FRAME) or str(d.max_frame))
            if max_frame < 64 * 1024:
                raise OptionError(f"{ENV_MAX_FRAME} must be at least 64k")
            max_readers = int(get(ENV_MAX_READERS) or d.max_readers)
            if max_readers < 1:
                raise OptionError(f"{ENV_MAX_READERS} must be at least 1")
            max_request = parse_size(get(ENV_MAX_REQUEST) or str(d.max_request))
            if max_request < 64 * 1024:
                raise OptionError(f"{ENV_MAX_REQUEST} must be at least 64k")
        except ValueError as exc:
            if isinstance(exc, OptionError):
                raise
            raise OptionError(f"invalid plugin setting: {exc}") from None
        return cls(
            state_dir=Path(get(ENV_STATE_DIR) or d.state_dir),
            socket_path=Path(get(ENV_SOCKET) or d.socket_path),
            fifo_root=Path(get(ENV_FIFO_ROOT) or d.fifo_root),
            log_level=level,
            threads=threads,
            retention_seconds=retention,
            max_frame=max_frame,
            max_readers=max_readers,
            max_request=max_request,
            kafka=KafkaSettings.from_env(env),
        )
