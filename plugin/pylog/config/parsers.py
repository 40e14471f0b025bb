"""Text to value, for log-opts and settings alike: sizes, booleans, durations, brokers,
templates, regexes and files.

Each parser raises ``ValueError`` when the text is not of its form; the option tables
(:mod:`.logopts`, :mod:`.settings`) turn that into a message naming the option and
what it accepts. A parser that can say more than "not of the form" (a template's
error, RE2's reason, which broker is wrong) takes ``what``, the option as the user
wrote it (``log opt 'tag'``, ``KAFKA_TOPIC``), and raises :class:`OptionError` itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeAlias

import re2

from ..tag import TagTemplate, TemplateError
from .errors import OptionError

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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def parse_keys(text: str) -> tuple[str, ...]:
    """A comma-separated list of label or env keys; blanks around and between are dropped."""
    return tuple(k for k in (p.strip() for p in text.split(",")) if k)


def parse_template(text: str, what: str) -> TagTemplate:
    """A tag template (``tag``, ``kafka-topic``, ``KAFKA_KEY``...), see :mod:`pylog.tag`."""
    try:
        return TagTemplate(text)
    except TemplateError as exc:
        raise OptionError(f"invalid {what}: {exc}") from None


#: A regex from a log-opt (``labels-regex``, ``env-regex``, ``kafka-multiline-pattern``).
UserRegex: TypeAlias = "re2._Regexp[str]"

_RE2_OPTIONS = re2.Options()
# A bad pattern is the user's error, reported in their `docker run`: RE2 need not
# also print it to the plugin's stderr.
_RE2_OPTIONS.log_errors = False


def parse_regex(pattern: str, what: str) -> UserRegex:
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
            f"invalid {what} {pattern!r}: {reason} (RE2 syntax is accepted: "
            "no backreferences or lookaround)"
        ) from None


def parse_readable_file(text: str, what: str) -> Path:
    """A file named by a setting: must exist and be readable now (messages name the path only)."""
    path = Path(text)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise OptionError(f"{what}: {text} is not a readable file")
    return path
