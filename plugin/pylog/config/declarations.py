"""The logs a container declares with its labels or env, validated up front.

A container declares a log with the label ``<prefix>.logs.<name>=<what>`` or the
env variable ``<prefix>_logs_<name>=<what>``, where ``<what>`` is ``stdout`` or an
absolute path (a glob is allowed), and refines it with sub-keys: ``.target``
(its Kafka topic), ``.tags``, ``.format`` and ``.format.pattern``. It is
log-pilot's syntax, with its ``aliyun`` prefix recognised by default, so workloads
written for log-pilot move unchanged. :func:`parse_declarations` turns the keys
into one :class:`Declaration` per log or raises :class:`OptionError` naming the
label or env variable and what it accepts.

What log-pilot leaves open or to chance, decided here:

* Env form: a sub-key is a suffix of the name: ``pylog_logs_access_target``.
  log-pilot turns every ``_`` of the variable into ``.``, so a name could not
  contain ``_`` there; here it can, but it cannot end in ``_target``, ``_tags``,
  ``_format`` or ``_format_pattern``.
* Label and env under one prefix are merged key by key, the env variable winning
  (as in log-pilot, where env is written over the labels): an image's label can
  be changed with ``docker run -e`` or a Kubernetes env entry.
* Under two prefixes (``pylog.logs.web`` and ``aliyun.logs.web``), the declaration
  of the prefix listed first in ``PYLOG_LOG_PREFIX`` is taken whole, sub-keys
  included; the other is still validated (a bad one fails all the same) and then
  ignored. A key that begins with two prefixes belongs to the first.
* ``stdout`` can be declared by one name only: a container's stdout goes to one
  log. Two names fail.
* Hostile labels are bounded: at most :data:`MAX_DECLARED_LOGS` names and
  :data:`MAX_DECLARATION_VALUE` characters per value.
* A sub-key with an empty value is not given (as an empty log-opt is not): the
  default applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import OptionError
from .parsers import UserRegex, parse_regex
from .topic import TOPIC_NAME_RULE, is_topic_name

STDOUT = "stdout"
#: What a declared log is: the container's stdout/stderr, or files inside it.
Kind = Literal["stdout", "file"]
#: What a declared log's lines are: plain text, JSON objects, or text a regex splits.
FORMATS = ("none", "json", "regexp")
#: Recognised prefixes unless ``PYLOG_LOG_PREFIX`` says otherwise: pylog's own and log-pilot's.
DEFAULT_LOG_PREFIXES = ("pylog", "aliyun")
#: Most logs a container may declare (distinct names, under every prefix).
MAX_DECLARED_LOGS = 32
#: Longest value of a declaring label or env variable, in characters (PATH_MAX is 4096 bytes).
MAX_DECLARATION_VALUE = 4096
#: Longest log name; with its characters, a name is always a legal topic.
MAX_LOG_NAME = 128
#: Longest prefix in ``PYLOG_LOG_PREFIX``.
MAX_PREFIX = 64

SUB_TARGET = "target"
SUB_TAGS = "tags"
SUB_FORMAT = "format"
SUB_PATTERN = "format.pattern"
#: A declaration's sub-keys, as a label spells them (env: ``_`` for ``.``).
SUB_KEYS = (SUB_TARGET, SUB_TAGS, SUB_FORMAT, SUB_PATTERN)

_NAME = re.compile(r"[0-9A-Za-z_-]+")
_PREFIX = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]*")
_TAG_KEY = re.compile(r"[0-9A-Za-z_.-]+")
#: A key longer than this is cut in messages: a hostile label must not flood dockerd's log.
_SHOWN = 200
_EXPECTED_WHAT = "stdout or an absolute path, a glob allowed, such as /var/log/app/*.log"
_EXPECTED_TAGS = "k1=v1,k2=v2"
_EXPECTED_TAG_KEY = "A-Z a-z 0-9 . _ -"


@dataclass(frozen=True)
class Declaration:
    """One log a container declares."""

    name: str
    kind: Kind
    path: str | None
    """The absolute path, possibly a glob, inside the container; None for stdout."""
    target: str
    """The Kafka topic, a legal name as it is; the log's name by default."""
    tags: tuple[tuple[str, str], ...]
    """Added to every record of the log, in the order given."""
    format: str
    """One of :data:`FORMATS`."""
    pattern: UserRegex | None
    """With format ``regexp`` only: its named groups are the fields."""
    source: str
    """The label or env variable that declared it, as messages name it:
    ``label 'pylog.logs.web'``."""


@dataclass(frozen=True)
class _Key:
    """One label or env variable that is part of a declaration."""

    origin: Literal["label", "env"]
    key: str
    value: str

    @property
    def what(self) -> str:
        key = self.key if len(self.key) <= _SHOWN else f"{self.key[:_SHOWN]}..."
        return f"{self.origin} '{key}'"

    def given(self) -> str | None:
        """The value without blanks around it, or None when that is empty."""
        return self.value.strip() or None


#: One declaration's keys: None is the base key (``pylog.logs.web``), the rest sub-keys.
_Group = dict[str | None, _Key]
_Splitter = Callable[[str, str], "tuple[str, str | None] | None"]


def parse_log_prefixes(text: str) -> tuple[str, ...]:
    """``PYLOG_LOG_PREFIX``: comma-separated prefixes, in precedence order, repeats dropped."""
    prefixes: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if len(item) > MAX_PREFIX or not _PREFIX.fullmatch(item):
            raise ValueError(text)
        if item not in prefixes:
            prefixes.append(item)
    if not prefixes:
        raise ValueError(text)
    return tuple(prefixes)


def parse_declarations(
    labels: Mapping[str, str],
    env: Mapping[str, str],
    prefixes: tuple[str, ...] = DEFAULT_LOG_PREFIXES,
) -> tuple[Declaration, ...]:
    """A container's declared logs, by name; :class:`OptionError` names a bad key.

    ``labels`` are the container's labels, ``env`` its env as a map
    (``ContainerInfo.env``), ``prefixes`` the recognised ones, first first.
    """
    groups = _groups(labels, env, prefixes)
    chosen: dict[str, Declaration] = {}
    for prefix in prefixes:
        for (group_prefix, name), keys in sorted(groups.items()):
            if group_prefix == prefix:
                chosen.setdefault(name, _declaration(prefix, name, keys))
    declarations = tuple(chosen[name] for name in sorted(chosen))
    stdout = [d for d in declarations if d.kind == "stdout"]
    if len(stdout) > 1:
        raise OptionError(
            f"stdout is declared by {stdout[0].source} and by {stdout[1].source}: "
            "a container's stdout goes to one log (declare it under one name)"
        )
    return declarations


# -- from keys to groups -------------------------------------------------------


def _split_label(key: str, prefix: str) -> tuple[str, str | None] | None:
    """``<prefix>.logs.<name>[.<sub-key>]`` as (name, sub-key or None); None if not one."""
    start = f"{prefix}.logs."
    if not key.startswith(start):
        return None
    name, dot, sub = key[len(start) :].partition(".")
    return name, (sub if dot else None)


def _split_env(key: str, prefix: str) -> tuple[str, str | None] | None:
    """``<prefix>_logs_<name>[_<sub-key>]``: a known sub-key's suffix ends the name."""
    start = f"{prefix}_logs_"
    if not key.startswith(start):
        return None
    rest = key[len(start) :]
    for sub in SUB_KEYS:
        suffix = "_" + sub.replace(".", "_")
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return rest[: -len(suffix)], sub
    return rest, None


def _groups(
    labels: Mapping[str, str], env: Mapping[str, str], prefixes: tuple[str, ...]
) -> dict[tuple[str, str], _Group]:
    """Every declaring key, checked on its own, grouped by (prefix, name).

    Labels go in first and env second, so an env variable replaces the label it
    spells the same way.
    """
    groups: dict[tuple[str, str], _Group] = {}
    names: set[str] = set()
    sources: tuple[tuple[Literal["label", "env"], Mapping[str, str], _Splitter], ...] = (
        ("label", labels, _split_label),
        ("env", env, _split_env),
    )
    for origin, source, split in sources:
        for key in sorted(source):
            for prefix in prefixes:
                parts = split(key, prefix)
                if parts is None:
                    continue
                name, sub = parts
                entry = _Key(origin, key, source[key])
                _check_key(entry, name, sub)
                names.add(name)
                if len(names) > MAX_DECLARED_LOGS:
                    raise OptionError(
                        f"invalid {entry.what}: more than {MAX_DECLARED_LOGS} logs are "
                        f"declared, the limit is {MAX_DECLARED_LOGS} per container"
                    )
                groups.setdefault((prefix, name), {})[sub] = entry
                break
    return groups


def _check_key(entry: _Key, name: str, sub: str | None) -> None:
    if len(entry.value) > MAX_DECLARATION_VALUE:
        raise OptionError(
            f"invalid {entry.what}: value is {len(entry.value)} characters long, "
            f"the limit is {MAX_DECLARATION_VALUE}"
        )
    if len(name) > MAX_LOG_NAME or not _NAME.fullmatch(name):
        shown = name if len(name) <= _SHOWN else f"{name[:_SHOWN]}..."
        raise OptionError(
            f"invalid {entry.what}: log name {shown!r} is not accepted "
            f"(expected 1 to {MAX_LOG_NAME} of A-Z a-z 0-9 _ -)"
        )
    if sub is not None and sub not in SUB_KEYS:
        raise OptionError(
            f"invalid {entry.what}: unknown sub-key {sub!r} (accepted: {', '.join(SUB_KEYS)})"
        )


# -- from a group to a declaration ---------------------------------------------


def _declaration(prefix: str, name: str, keys: _Group) -> Declaration:
    base = keys.get(None)
    if base is None:
        first = keys[min(k for k in keys if k is not None)]
        spelled = f"{prefix}.logs.{name}" if first.origin == "label" else f"{prefix}_logs_{name}"
        raise OptionError(
            f"invalid {first.what}: no log '{name}' is declared for it to refine "
            f"(declare it with {first.origin} '{spelled}': {_EXPECTED_WHAT})"
        )
    kind, path = _what(base)
    fmt, pattern = _format(keys.get(SUB_FORMAT), keys.get(SUB_PATTERN), base)
    return Declaration(
        name=name,
        kind=kind,
        path=path,
        target=_target(keys.get(SUB_TARGET), name),
        tags=_tags(keys.get(SUB_TAGS)),
        format=fmt,
        pattern=pattern,
        source=base.what,
    )


def _what(base: _Key) -> tuple[Kind, str | None]:
    """``stdout``, or an absolute path to a file or a glob of files."""
    text = base.value.strip()
    if not text:
        raise OptionError(f"invalid {base.what}: the value is empty (expected {_EXPECTED_WHAT})")
    if text == STDOUT:
        return "stdout", None
    if "\0" in text:
        raise OptionError(
            f"invalid {base.what}: the path contains a NUL character (expected {_EXPECTED_WHAT})"
        )
    if not text.startswith("/"):
        raise OptionError(
            f"invalid {base.what}: {text!r} is not an absolute path (expected {_EXPECTED_WHAT})"
        )
    if text.endswith("/"):
        raise OptionError(
            f"invalid {base.what}: {text!r} ends with '/', so it names a directory "
            f"(expected a file or a glob of files, such as {text}*.log)"
        )
    if any(part in (".", "..") for part in text.split("/")):
        raise OptionError(
            f"invalid {base.what}: {text!r} has a '.' or '..' component "
            f"(expected a path without them)"
        )
    return "file", text


def _target(key: _Key | None, name: str) -> str:
    """The topic as written (not a template, not made legal); the log's name by default."""
    text = None if key is None else key.given()
    if key is None or text is None:
        return name
    if not is_topic_name(text):
        raise OptionError(
            f"invalid {key.what}: {text!r} is not a valid Kafka topic name "
            f"(expected {TOPIC_NAME_RULE})"
        )
    return text


def _tags(key: _Key | None) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2``: blanks around items, keys and values dropped, empty items skipped."""
    if key is None:
        return ()
    tags: dict[str, str] = {}
    for item in (p.strip() for p in key.value.split(",")):
        if not item:
            continue
        tag, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not tag or not value or "=" in value:
            raise OptionError(
                f"invalid {key.what}: {item!r} is not key=value (expected {_EXPECTED_TAGS})"
            )
        if not _TAG_KEY.fullmatch(tag):
            raise OptionError(
                f"invalid {key.what}: tag key {tag!r} is not accepted "
                f"(expected {_EXPECTED_TAG_KEY} in a key, as in {_EXPECTED_TAGS})"
            )
        if tag in tags:
            raise OptionError(f"invalid {key.what}: tag {tag!r} is given twice")
        tags[tag] = value
    return tuple(tags.items())


def _format(
    fmt_key: _Key | None, pattern_key: _Key | None, base: _Key
) -> tuple[str, UserRegex | None]:
    """The format, and with ``regexp`` its pattern: RE2, with at least one named group."""
    fmt = None if fmt_key is None else fmt_key.given()
    pattern = None if pattern_key is None else pattern_key.value or None
    if fmt_key is None or fmt is None or fmt in ("none", "json"):
        if pattern_key is not None and pattern is not None:
            raise OptionError(
                f"invalid {pattern_key.what}: a pattern is read with format regexp only "
                f"(the format of {base.what} is {fmt or 'none'})"
            )
        return fmt or "none", None
    if fmt != "regexp":
        raise OptionError(
            f"invalid {fmt_key.what}: {fmt!r} is not a format "
            f"(expected one of {', '.join(FORMATS)})"
        )
    if pattern_key is None or pattern is None:
        raise OptionError(
            f"invalid {fmt_key.what}: format regexp needs a pattern with named groups "
            f"in the sub-key {SUB_PATTERN}"
        )
    regex = parse_regex(pattern, pattern_key.what)
    if not regex.groupindex:
        raise OptionError(
            f"invalid {pattern_key.what}: {pattern!r} has no named group (expected groups "
            "such as (?P<level>[A-Z]+), which become the record's fields)"
        )
    return fmt, regex
