"""The ``tag`` log-opt: a small, safe subset of Docker's Go log-tag templates.

Supported: ``{{.ID}}``, ``{{.FullID}}``, ``{{.Name}}``, ``{{.ImageID}}``,
``{{.ImageFullID}}``, ``{{.ImageName}}``, ``{{.DaemonName}}``, ``{{.Command}}``,
``{{.Hostname}}``, the raw Info fields (``{{.ContainerName}}`` ...),
``{{index .ContainerLabels "key"}}``, and pipes into ``lower``, ``upper`` and
``title``. Anything else is rejected when the container starts. A template
only ever reads the container's own metadata: it cannot call code or reach
anything else.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

from .models import ContainerInfo


class TemplateError(ValueError):
    pass


TagSource = ContainerInfo


def _command(i: TagSource) -> str:
    return " ".join([i.container_entrypoint, *i.container_args])


_FIELDS: dict[str, Callable[[TagSource], str]] = {
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

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_FIELD = re.compile(r"^\.([A-Za-z]+)$")
_INDEX = re.compile(r'^index\s+\.ContainerLabels\s+"((?:[^"\\]|\\.)*)"$')

_Part = Callable[[TagSource], str]


def _literal(text: str) -> _Part:
    return lambda _i: text


def _compile_action(expr: str) -> _Part:
    stages = [s.strip() for s in expr.split("|")]
    head, funcs = stages[0], stages[1:]
    getter: _Part
    if m := _FIELD.match(head):
        if m.group(1) not in _FIELDS:
            raise TemplateError(
                f"unknown field .{m.group(1)} (known: {', '.join('.' + k for k in _FIELDS)})"
            )
        getter = _FIELDS[m.group(1)]
    elif m := _INDEX.match(head):
        key = m.group(1).encode().decode("unicode_escape")

        def getter(i: TagSource, key: str = key) -> str:
            return i.container_labels.get(key, "")
    else:
        raise TemplateError(f"unsupported template action {{{{{expr}}}}}")
    chain: list[Callable[[str], str]] = []
    for f in funcs:
        if f not in _FUNCS:
            raise TemplateError(f"unknown function {f!r} (known: {', '.join(_FUNCS)})")
        chain.append(_FUNCS[f])

    def run(i: TagSource) -> str:
        value = getter(i)
        for fn in chain:
            value = fn(value)
        return value

    return run


class TagTemplate:
    """A parsed ``tag`` log-opt; :meth:`render` fills it from a container's info."""

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[_Part] = []
        pos = 0
        for m in _ACTION.finditer(text):
            if m.start() > pos:
                parts.append(_literal(text[pos : m.start()]))
            parts.append(_compile_action(m.group(1)))
            pos = m.end()
        rest = text[pos:]
        if "{{" in rest or "}}" in rest:
            raise TemplateError(f"unbalanced braces in {text!r}")
        if rest:
            parts.append(_literal(rest))
        self._parts = parts

    def render(self, info: TagSource) -> str:
        return "".join(p(info) for p in self._parts)

    # Templates compare by their text, so settings holding them compare by value.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, TagTemplate) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"TagTemplate({self.text!r})"
