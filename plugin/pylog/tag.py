"""The ``tag`` log-opt: a small, safe subset of Docker's Go log-tag templates.

Supported: ``{{.ID}}``, ``{{.FullID}}``, ``{{.Name}}``, ``{{.ImageID}}``,
``{{.ImageFullID}}``, ``{{.ImageName}}``, ``{{.DaemonName}}``, ``{{.Command}}``,
``{{.Hostname}}``, the raw Info fields (``{{.ContainerName}}`` ...),
``{{index .ContainerLabels "key"}}``, and pipes into ``lower``, ``upper`` and
``title``. Anything else is rejected when the container starts. A template
only ever reads the container's own metadata: it cannot call code or reach
anything else.

Templates come from whoever creates a container (log-opts, the ``pylog.topic``
label), and they are parsed while dockerd waits on StartLogging with the GIL
held. So parsing is a hand-written scanner that looks at each character a
bounded number of times (a backtracking regex took cubic time on ``"{{"`` and
spaces, minutes for a few thousand), and a template longer than
:data:`MAX_TEMPLATE` characters is refused before it is looked at.

The label key is a Go string literal, unquoted as Go's ``strconv.Unquote``
does, so a tag that works with Docker's own drivers means the same here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .models import ContainerInfo


class TemplateError(ValueError):
    pass


#: The longest template accepted, in characters: far above any real tag or topic.
MAX_TEMPLATE = 1024


def _command(i: ContainerInfo) -> str:
    return " ".join([i.container_entrypoint, *i.container_args])


_FIELDS: dict[str, Callable[[ContainerInfo], str]] = {
    "ID": lambda i: i.short_id,
    "FullID": lambda i: i.container_id,
    "Name": lambda i: i.name,
    "ImageID": lambda i: i.image_short_id,
    "ImageFullID": lambda i: i.container_image_id,
    "ImageName": lambda i: i.container_image_name,
    "DaemonName": lambda i: i.daemon_name,
    "Command": _command,
    "Hostname": lambda i: socket.gethostname(),
    "ContainerID": lambda i: i.container_id,
    "ContainerName": lambda i: i.container_name,
    "ContainerEntrypoint": lambda i: i.container_entrypoint,
    "ContainerImageID": lambda i: i.container_image_id,
    "ContainerImageName": lambda i: i.container_image_name,
    "ContainerCreated": lambda i: i.container_created,
}

_FUNCS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
}

_Part = Callable[[ContainerInfo], str]


def _literal(text: str) -> _Part:
    return lambda _i: text


# -- scanning -------------------------------------------------------------------


def _after_quoted(text: str, i: int) -> int:
    """The index just past the Go string literal that starts at ``text[i]``, or -1.

    A double-quoted literal ends at the first unescaped ``"`` and may not hold a
    newline; a raw (backquoted) one ends at the next backquote.
    """
    if text[i] == "`":
        end = text.find("`", i + 1)
        return -1 if end < 0 else end + 1
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\n":
            return -1
        i += 2 if c == "\\" else 1
    return -1


def _action_end(text: str, i: int) -> int:
    """The index of the ``}}`` that closes the action whose body starts at ``i``, or -1.

    A ``}}`` inside a string literal does not close the action, as in Go.
    """
    n = len(text)
    while i < n:
        c = text[i]
        if c == "}" and text.startswith("}", i + 1):
            return i
        if c in '"`':
            i = _after_quoted(text, i)
            if i < 0:
                return -1
        else:
            i += 1
    return -1


def _split_pipe(expr: str) -> list[str]:
    """The stages of a pipeline, split at the ``|`` that are not inside a string."""
    stages: list[str] = []
    start = i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        if c == "|":
            stages.append(expr[start:i].strip())
            start = i = i + 1
        elif c in '"`':
            i = _after_quoted(expr, i)
            if i < 0:
                raise TemplateError("unterminated string in template action")
        else:
            i += 1
    stages.append(expr[start:].strip())
    return stages


# -- Go string literals ----------------------------------------------------------

_SIMPLE_ESCAPES = {
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
    "\\": 0x5C,
    '"': 0x22,
}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")
_MAX_RUNE = 0x10FFFF


def _digits(s: str, i: int, count: int, base: int, what: str) -> int:
    """The number written by ``count`` digits at ``s[i]``; exactly that many, no sign."""
    part = s[i : i + count]
    allowed = _HEX if base == 16 else _OCT
    if len(part) != count or not all(ch in allowed for ch in part):
        raise TemplateError(f"invalid escape in string: {what} needs {count} digits")
    return int(part, base)


def unquote(literal: str) -> str:
    """A Go string literal's value, as ``strconv.Unquote`` gives it.

    Double-quoted: ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, ``\\xHH`` and
    ``\\NNN`` (octal, at most 377) for a byte, ``\\uXXXX`` and
    ``\\UXXXXXXXX`` for a character; nothing else (``\\'`` included, as in Go).
    Backquoted (raw): taken as is, carriage returns dropped. The bytes must
    make valid UTF-8, as every label key does.
    """
    if len(literal) >= 2 and literal[0] == literal[-1] == "`":
        body = literal[1:-1]
        if "`" in body:
            raise TemplateError(f"not a single string literal: {literal!r}")
        return body.replace("\r", "")
    if len(literal) < 2 or literal[0] != '"':
        raise TemplateError(f"expected a quoted string, got {literal!r}")
    out = bytearray()
    i, n = 1, len(literal)
    while i < n:
        c = literal[i]
        if c == '"':
            if i != n - 1:
                raise TemplateError(f"not a single string literal: {literal!r}")
            try:
                return out.decode("utf-8")
            except UnicodeDecodeError:
                raise TemplateError(f"string {literal!r} is not valid UTF-8") from None
        if c == "\n":
            break
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        esc = literal[i + 1 : i + 2]
        i += 2
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
        elif esc == "x":
            out.append(_digits(literal, i, 2, 16, "\\x"))
            i += 2
        elif esc in _OCT:
            value = _digits(literal, i - 1, 3, 8, "an octal escape")
            if value > 0xFF:
                raise TemplateError(f"invalid escape in string: octal value {value:o} > 377")
            out.append(value)
            i += 2
        elif esc in ("u", "U"):
            count = 4 if esc == "u" else 8
            value = _digits(literal, i, count, 16, "\\" + esc)
            if value > _MAX_RUNE or 0xD800 <= value <= 0xDFFF:
                raise TemplateError(f"invalid escape in string: U+{value:X} is not a character")
            out += chr(value).encode("utf-8")
            i += count
        else:
            raise TemplateError(
                f"invalid escape \\{esc} in string (accepted: \\a \\b \\f \\n \\r \\t \\v "
                '\\\\ \\" \\xHH \\NNN \\uXXXX \\UXXXXXXXX)'
            )
    raise TemplateError(f"unterminated string {literal!r}")


# -- actions ---------------------------------------------------------------------


def _field(head: str) -> str | None:
    """``Name`` for ``.Name`` (ASCII letters only), else None."""
    name = head[1:]
    if head.startswith(".") and name.isascii() and name.isalpha():
        return name
    return None


def _label_key(head: str) -> str | None:
    """The key of ``index .ContainerLabels "key"``, else None."""
    if not head.startswith("index") or not head[5:6].isspace():
        return None
    rest = head[5:].lstrip()
    labels = ".ContainerLabels"
    if not rest.startswith(labels) or not rest[len(labels) : len(labels) + 1].isspace():
        return None
    literal = rest[len(labels) :].lstrip()
    if not literal.startswith(('"', "`")):
        return None
    return unquote(literal)


def _compile_action(expr: str) -> _Part:
    stages = _split_pipe(expr)
    head, funcs = stages[0], stages[1:]
    getter: _Part
    if (name := _field(head)) is not None:
        if name not in _FIELDS:
            raise TemplateError(
                f"unknown field .{name} (known: {', '.join('.' + k for k in _FIELDS)})"
            )
        getter = _FIELDS[name]
    elif (key := _label_key(head)) is not None:

        def getter(i: ContainerInfo, key: str = key) -> str:
            return i.container_labels.get(key, "")
    else:
        raise TemplateError(f"unsupported template action {{{{{expr}}}}}")
    chain: list[Callable[[str], str]] = []
    for f in funcs:
        if f not in _FUNCS:
            raise TemplateError(f"unknown function {f!r} (known: {', '.join(_FUNCS)})")
        chain.append(_FUNCS[f])

    def run(i: ContainerInfo) -> str:
        value = getter(i)
        for fn in chain:
            value = fn(value)
        return value

    return run


def _parse(text: str) -> list[_Part]:
    """The template's parts, in one pass: literal text and ``{{ action }}``.

    ``{{-`` and ``-}}`` (Go's trim markers) are taken as plain delimiters: the
    text around them is kept as it is.
    """
    parts: list[_Part] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        body = start + 2
        if text.startswith("-", body):
            body += 1
        end = _action_end(text, body)
        if end < 0:
            raise TemplateError(f"unclosed action: '{{{{' at offset {start} has no matching '}}}}'")
        if start > pos:
            parts.append(_literal(text[pos:start]))
        expr = text[body:end]
        if expr.endswith("-"):
            expr = expr[:-1]
        parts.append(_compile_action(expr.strip()))
        pos = end + 2
    rest = text[pos:]
    if "}}" in rest:
        raise TemplateError(f"unbalanced braces: '}}}}' at offset {pos + rest.index('}}')}")
    if rest:
        parts.append(_literal(rest))
    return parts


class TagTemplate:
    """A parsed ``tag`` log-opt; :meth:`render` fills it from a container's info.

    ``limit`` is the longest text accepted (:data:`MAX_TEMPLATE`; None: any).
    """

    def __init__(self, text: str, *, limit: int | None = MAX_TEMPLATE) -> None:
        if limit is not None and len(text) > limit:
            raise TemplateError(f"template is {len(text)} characters long, the limit is {limit}")
        self.text = text
        self._parts = _parse(text)

    def render(self, info: ContainerInfo) -> str:
        return "".join(p(info) for p in self._parts)

    # Templates compare by their text, so settings holding them compare by value.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, TagTemplate) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"TagTemplate({self.text!r})"

    # Pickled as its text (the parts are closures): settings go to a shipping
    # process that way (shipper/ipc.py). The text was checked when it was parsed.
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _unlimited_template, (self.text,)


def _unlimited_template(text: str) -> TagTemplate:
    return TagTemplate(text, limit=None)
