"""A container's log-opts (``--log-opt``, compose ``logging.options``, daemon.json
``log-opts``), validated up front.

dockerd does not validate log-opts for plugins, so :func:`parse_log_opts` does,
naming the offending option and what is accepted; a failure here fails
``docker run``. Every option is one row of :data:`LOG_OPTS` (name, parser,
default, what is accepted) and one loop reads them all; the rules that tie two
options together come after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store.logfile import RotationPolicy
from ..tag import TagTemplate
from .errors import OptionError
from .parsers import (
    UserRegex,
    parse_bool,
    parse_brokers,
    parse_duration,
    parse_human_size,
    parse_keys,
    parse_regex,
    parse_template,
)
from .table import Option, Parser, T, Values, ignoring_what

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
#: Lines merged into one multiline record at most, unless kafka-multiline-max-lines says otherwise.
DEFAULT_MULTILINE_MAX_LINES = 500
#: An unfinished multiline record is shipped after this many seconds without a new line.
DEFAULT_MULTILINE_TIMEOUT = 2.0


# -- per-option parsers --------------------------------------------------------


def _max_size(text: str, what: str) -> int:
    """json-file's ``max-size`` (see :func:`parse_human_size`), or ``-1`` for no limit."""
    if text.strip() == "-1":
        return -1
    size = parse_human_size(text)
    if size <= 0:
        raise OptionError(f"{what} must be positive, got {text!r}")
    return size


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(text)
    return seconds


def _unless_empty(parse: Parser[T]) -> Parser[T | None]:
    """An option that an empty value leaves unset (``--log-opt tag=`` is no tag)."""
    return lambda text, what: parse(text, what) if text else None


_BOOL = ignoring_what(parse_bool)
_TEMPLATE = "a template such as {{.Name}}"
_REGEX = "an RE2 regex"

# -- the table -----------------------------------------------------------------

_MAX_SIZE = Option(
    OPT_MAX_SIZE,
    _max_size,
    DEFAULT_MAX_SIZE,
    "a size such as 10k, 20m or 1g, or -1 for no limit",
)
_MAX_FILE = Option(OPT_MAX_FILE, ignoring_what(_at_least_one), DEFAULT_MAX_FILE, "an integer >= 1")
_COMPRESS = Option(OPT_COMPRESS, _BOOL, DEFAULT_COMPRESS, "true or false")
_LABELS: Option[tuple[str, ...]] = Option(
    OPT_LABELS, ignoring_what(parse_keys), (), "comma-separated label keys"
)
_LABELS_REGEX = Option(OPT_LABELS_REGEX, _unless_empty(parse_regex), None, _REGEX)
_ENV: Option[tuple[str, ...]] = Option(
    OPT_ENV, ignoring_what(parse_keys), (), "comma-separated env keys"
)
_ENV_REGEX = Option(OPT_ENV_REGEX, _unless_empty(parse_regex), None, _REGEX)
_TAG = Option(OPT_TAG, _unless_empty(parse_template), None, _TEMPLATE)

_KAFKA: Option[bool | None] = Option(OPT_KAFKA, _BOOL, None, "true or false")
_KAFKA_TOPIC = Option(OPT_KAFKA_TOPIC, _unless_empty(parse_template), None, _TEMPLATE)
_KAFKA_KEY = Option(OPT_KAFKA_KEY, _unless_empty(parse_template), None, _TEMPLATE)
_KAFKA_BROKERS = Option(
    OPT_KAFKA_BROKERS, _unless_empty(parse_brokers), None, "host:port[,host:port...]"
)
_KAFKA_JSON = Option(OPT_KAFKA_JSON, _BOOL, False, "true or false")
_KAFKA_MULTILINE_PATTERN = Option(
    OPT_KAFKA_MULTILINE_PATTERN, _unless_empty(parse_regex), None, _REGEX
)
_KAFKA_MULTILINE_MAX_LINES = Option(
    OPT_KAFKA_MULTILINE_MAX_LINES,
    ignoring_what(_at_least_one),
    DEFAULT_MULTILINE_MAX_LINES,
    "an integer >= 1",
)
_KAFKA_MULTILINE_TIMEOUT = Option(
    OPT_KAFKA_MULTILINE_TIMEOUT,
    ignoring_what(_positive_duration),
    DEFAULT_MULTILINE_TIMEOUT,
    "a positive duration such as 500ms or 2s",
)

#: Kafka shipping's options (see :class:`KafkaOptions`).
KAFKA_LOG_OPTS: tuple[Option[Any], ...] = (
    _KAFKA,
    _KAFKA_TOPIC,
    _KAFKA_KEY,
    _KAFKA_BROKERS,
    _KAFKA_JSON,
    _KAFKA_MULTILINE_PATTERN,
    _KAFKA_MULTILINE_MAX_LINES,
    _KAFKA_MULTILINE_TIMEOUT,
)
#: Every log-opt pylog accepts, in the order an error message lists them.
LOG_OPTS: tuple[Option[Any], ...] = (
    _MAX_SIZE,
    _MAX_FILE,
    _COMPRESS,
    _LABELS,
    _LABELS_REGEX,
    _ENV,
    _ENV_REGEX,
    _TAG,
    *KAFKA_LOG_OPTS,
)
PYLOG_OPTS = tuple(option.name for option in LOG_OPTS)


# -- what the table fills ------------------------------------------------------


@dataclass(frozen=True)
class KafkaOptions:
    """A container's Kafka log-opts; ``None`` means "not set here, use the plugin's"."""

    enabled: bool | None = _KAFKA.default
    """``kafka=false`` turns shipping off for the container even when brokers are set."""
    topic: TagTemplate | None = _KAFKA_TOPIC.default
    key: TagTemplate | None = _KAFKA_KEY.default
    brokers: tuple[str, ...] | None = _KAFKA_BROKERS.default
    json: bool = _KAFKA_JSON.default
    """Lines that are JSON objects are also shipped parsed, in the record's ``fields``."""
    multiline_pattern: UserRegex | None = _KAFKA_MULTILINE_PATTERN.default
    """A line matching this starts a new record; other lines are appended to the current one."""
    multiline_max_lines: int = _KAFKA_MULTILINE_MAX_LINES.default
    multiline_timeout: float = _KAFKA_MULTILINE_TIMEOUT.default


@dataclass(frozen=True)
class LogOptions:
    """A container's validated log-opts."""

    rotation: RotationPolicy = field(
        default_factory=lambda: RotationPolicy(
            _MAX_SIZE.default, _MAX_FILE.default, _COMPRESS.default
        )
    )
    labels: tuple[str, ...] = _LABELS.default
    labels_regex: UserRegex | None = _LABELS_REGEX.default
    env: tuple[str, ...] = _ENV.default
    env_regex: UserRegex | None = _ENV_REGEX.default
    tag: TagTemplate | None = _TAG.default
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


# -- the loop ------------------------------------------------------------------


def parse_log_opts(opts: Mapping[str, str]) -> LogOptions:
    """Validate a container's log-opts; raises :class:`OptionError` naming the bad one."""
    for key in opts:
        if key not in PYLOG_OPTS and key not in DOCKERD_OPTS:
            raise OptionError(
                f"unknown log opt '{key}' for pylog log driver (accepted: {', '.join(PYLOG_OPTS)})"
            )
    v = Values()
    for option in LOG_OPTS:
        if option.name in opts:
            v.set(option, _read(option, opts[option.name]))
    if v[_MAX_SIZE] < 0 and v.given(_MAX_FILE) and v[_MAX_FILE] > 1:
        raise OptionError(f"log opt '{OPT_MAX_FILE}' needs '{OPT_MAX_SIZE}' to be set")
    return LogOptions(
        rotation=RotationPolicy(v[_MAX_SIZE], v[_MAX_FILE], v[_COMPRESS]),
        labels=v[_LABELS],
        labels_regex=v[_LABELS_REGEX],
        env=v[_ENV],
        env_regex=v[_ENV_REGEX],
        tag=v[_TAG],
        kafka=KafkaOptions(
            enabled=v[_KAFKA],
            topic=v[_KAFKA_TOPIC],
            key=v[_KAFKA_KEY],
            brokers=v[_KAFKA_BROKERS],
            json=v[_KAFKA_JSON],
            multiline_pattern=v[_KAFKA_MULTILINE_PATTERN],
            multiline_max_lines=v[_KAFKA_MULTILINE_MAX_LINES],
            multiline_timeout=v[_KAFKA_MULTILINE_TIMEOUT],
        ),
    )


def _read(option: Option[T], text: str) -> T:
    what = f"log opt '{option.name}'"
    try:
        return option.parse(text, what)
    except OptionError:
        raise
    except ValueError:
        raise OptionError(
            f"invalid value for {what}: {text!r} (expected {option.expected})"
        ) from None
