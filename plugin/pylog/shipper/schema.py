"""Kafka record value, schema version 1: one JSON object per log line.

``v``         1 (``SCHEMA_VERSION``), bumped on any incompatible change
``message``   the line, without its trailing newline (chunks of a long line joined)
``stream``    ``stdout`` or ``stderr``
``time``      RFC 3339 UTC with 9 fraction digits (``2026-11-27T10:08:19.123456789Z``):
              the time dockerd read the line (for a joined or merged line, its first part)
``container`` ``{"id", "name", "image", "image_id"}`` (name without the leading ``/``)
``host``      the Docker host's name
``tag``       the ``tag`` log-opt rendered (default ``{{.ID}}``, the short container ID)
``labels``    labels selected with ``labels``/``labels-regex`` (always present, maybe ``{}``)
``env``       env selected with ``env``/``env-regex`` (always present, ``{}`` unless asked)

Present only when they apply:

``kubernetes`` ``{"pod", "namespace", "container"}`` from the ``io.kubernetes.*`` labels
              Kubernetes puts on the containers it runs (those of them present)
``compose``   ``{"project", "service"}`` from Docker Compose's labels
``swarm``     ``{"service", "stack"}`` from a swarm service's labels
``fields``    with ``kafka-json=true`` or a declared ``format=json``, the line parsed,
              when it is a JSON object; with ``format=regexp``, the pattern's named
              groups that matched (only when the pattern matches the line)
``tags``      a declared log's ``tags`` (``{"k1": "v1", ...}``), when it has any
``log``       a declared file log's record: ``{"name": <declared name>, "path": <the
              file inside the container the line was read from>}``
``lines``     with multiline merging, how many lines were merged (when more than one)
``part``      a line longer than ``KAFKA_MAX_LINE`` is shipped in pieces of that many
              bytes, numbered from 1; ``last`` is true on the final piece

Headers: ``container_name`` and ``stream`` (UTF-8), so consumers can filter
without parsing the value; a file log's records add ``log`` (its name).

Records of a declared file log (``pylog.logs.<name>=/path``, in its own topic)
have every field above, ``stream`` being ``file``: they were not written to
stdout or stderr, and a consumer that keeps ``stream == "stdout"`` (or splits
on it) must not take a file's lines for the container's output. A
``stdout`` declaration's ``tags`` and ``format`` apply to the container's
stdout/stderr records, which otherwise stay as they were (no ``log`` field,
no ``log`` header).

Why ``v`` stays 1: no field of a stdout/stderr record changed meaning or
disappeared; ``tags``, ``log`` and a declared format's ``fields`` are new
fields present only when declared, which readers of v1 (JSON objects) skip.
The new ``stream`` value ``file`` only appears in a declared file log's own
topic, which no reader of v1 consumed before.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import UserRegex
from ..models import ContainerInfo
from ..speedups import compiled
from ..store.records import (
    PLAIN_MARK,
    PLAIN_TEXT_START,
    PlainFields,
    PlainLines,
    plain_time_ns,
)
from ..timefmt import format_rfc3339_fixed as format_time_ns

#: The ``v`` of every value; every template below takes it from here.
SCHEMA_VERSION = 1

#: How every value starts: its version, then the message.
_HEAD = f'{{"v":{SCHEMA_VERSION},"message":'
_HEAD_BYTES = _HEAD.encode()

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(slots=True)
class Line:
    """A whole log line (or merged lines) ready to become a Kafka record."""

    stream: str
    time_ns: int
    message: str
    lines: int = 1
    part: int = 0
    """0 for a line shipped whole; else the piece number of an over-long line."""
    last: bool = True
    escaped: bytes | None = None
    """The message already JSON-escaped (no quotes), taken as is from the stored record;
    when set, ``message`` is not used (the fast path for plain whole lines)."""
    time_text: bytes | None = None
    """``time_ns`` already formatted as in the value, when the fast path had it."""
    path: str = ""
    """In a declared file log: the file (inside the container) the line came from."""


_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}


def plain_line(fields: PlainFields, time_ns: int | None = None) -> Line:
    """The :class:`Line` of a plain record's fields (read by ``store.records``);
    ``time_ns`` is their time when the caller has it already."""
    escaped, stream, second, nanos = fields
    return Line(
        _STREAMS[stream],
        plain_time_ns(second, nanos) if time_ns is None else time_ns,
        "",
        escaped=escaped,
        time_text=second + b"." + nanos + b"Z",
    )


@dataclass(frozen=True, slots=True)
class PlainRun:
    """Plain whole lines, consecutive in the log, kept as their stored fields
    (``store.records.split_plain_run``).

    The fast path for the common case: their values are made in one pass
    (:meth:`ValueBuilder.plain_records`), with no object per line.
    """

    plain: PlainLines

    def __len__(self) -> int:
        return len(self.plain)


@dataclass(frozen=True)
class Declared:
    """What a declaration adds to a log's records (see the module doc)."""

    name: str
    file: bool
    """A declared file log (``stream`` is ``file``, a ``log`` field and header);
    False for a ``stdout`` declaration, which adds only its tags and fields. A file
    log's lines need their path and a declared format their text: their assembler
    takes no fast path (no :class:`PlainRun`, no ``escaped`` line)."""
    tags: tuple[tuple[str, str], ...] = ()
    format: str = "none"
    pattern: UserRegex | None = field(default=None, compare=False)

    @property
    def parses(self) -> bool:
        """Whether a line's text is needed for its fields."""
        return self.format != "none"


#: The ``stream`` of a declared file log's records.
FILE_STREAM = "file"

#: A Kafka record as a shipper hands it over: (value, headers, timestamp in ms).
#: A plain tuple: one is made per log line, and a tuple is the cheapest to make.
OutRecord = tuple[bytes, list[tuple[str, bytes]], int]


class ValueBuilder:
    """Builds record values for one container; the container part is encoded once."""

    def __init__(
        self,
        info: ContainerInfo,
        *,
        tag: str,
        labels: Mapping[str, str],
        env: Mapping[str, str],
        parse_json: bool = False,
        host: str | None = None,
        declared: Declared | None = None,
    ) -> None:
        fixed: dict[str, Any] = {
            "container": {
                "id": info.container_id,
                "name": info.name,
                "image": info.container_image_name,
                "image_id": info.container_image_id,
            },
            "host": host if host is not None else socket.gethostname(),
            "tag": tag,
            "labels": dict(sorted(labels.items())),
            "env": dict(sorted(env.items())),
            **orchestration(info.container_labels),
        }
        if declared is not None and declared.tags:
            fixed["tags"] = dict(declared.tags)
        self._declared = declared
        self._file = declared is not None and declared.file
        self._format = "json" if parse_json else "none"
        if declared is not None and declared.format != "none":
            self._format = declared.format
        self._pattern = declared.pattern if declared is not None else None
        self._log_name = declared.name if declared is not None else ""
        # '{"container":...,"env":{...}' without the closing brace, appended after the line.
        self._fixed = _dumps(fixed)[1:-1]
        self._fixed_tail = ('",' + self._fixed + "}").encode()
        #: The value of a plain line per stream, with %b for its text and time;
        #: the same keyed by the stored stream for a PlainRun, with %b for the
        #: text, the second and the nine fraction digits.
        tail = self._fixed_tail.replace(b"%", b"%%")
        self._plain: dict[str, bytes] = {}
        for stream in ("stdout", "stderr"):
            head = _HEAD_BYTES + b'"%b","stream":"' + stream.encode() + b'","time":"%b'
            self._plain[stream] = head + tail
        self.headers_name = info.name.encode()
        self._headers = {
            stream: [("container_name", self.headers_name), ("stream", stream.encode())]
            for stream in ("stdout", "stderr")
        }
        if self._file:
            file_headers = [
                ("container_name", self.headers_name),
                ("stream", FILE_STREAM.encode()),
                ("log", self._log_name.encode()),
            ]
            self._headers = {"stdout": file_headers, "stderr": file_headers}
        #: A PlainRun's value per stream (by its number in PLAIN_STREAMS): head, the
        #: escaped text, mid, the time, tail; and its headers.
        self._plain_parts: _PlainParts = (
            (_HEAD_BYTES + b'"', _HEAD_BYTES + b'"'),
            (b'","stream":"stdout","time":"', b'","stream":"stderr","time":"'),
            self._fixed_tail,
            (self._headers["stdout"], self._headers["stderr"]),
        )

    def value(self, line: Line) -> bytes:
        if line.escaped is not None:
            # Whole plain line: splice the stored, already escaped text in; no JSON work.
            template = self._plain.get(line.stream)
            time_text = line.time_text or format_time_ns(line.time_ns).encode()
            if template is not None:
                return template % (line.escaped, time_text)
            return b"".join(
                (
                    _HEAD_BYTES + b'"',
                    line.escaped,
                    b'","stream":"',
                    line.stream.encode(),
                    b'","time":"',
                    time_text,
                    self._fixed_tail,
                )
            )
        head = (
            _HEAD
            + _dumps(line.message)
            + ',"stream":'
            + _dumps(FILE_STREAM if self._file else line.stream)
            + ',"time":"'
            + format_time_ns(line.time_ns)
            + '",'
            + self._fixed
        )
        extra: dict[str, Any] = {}
        if self._file:
            extra["log"] = {"name": self._log_name, "path": line.path}
        if self._format != "none" and line.part == 0:
            fields = self._fields(line.message)
            if fields is not None:
                extra["fields"] = fields
        if line.lines > 1:
            extra["lines"] = line.lines
        if line.part:
            extra["part"] = line.part
            extra["last"] = line.last
        if extra:
            head += "," + _dumps(extra)[1:-1]
        return (head + "}").encode()

    def _fields(self, text: str) -> dict[str, Any] | None:
        """The ``fields`` of a line: the JSON object it is, or the named groups of the
        declared pattern that matched (None when it does not match)."""
        if self._format == "json":
            return _json_object(text)
        if self._pattern is None:
            return None
        match = self._pattern.search(text)
        if match is None:
            return None
        return {k: v for k, v in match.groupdict().items() if v is not None}

    def plain_records(self, run: PlainRun) -> list[OutRecord]:
        """The records of a run of plain lines: each value cut out of its stored
        record and spliced into the container's template (one pass in C, see
        :mod:`pylog.speedups`)."""
        plain = run.plain
        return _plain_values(plain.records, plain.marks, *self._plain_parts)

    def headers(self, line: Line) -> list[tuple[str, bytes]]:
        """The record headers (shared lists: aiokafka only reads them)."""
        h = self._headers.get(line.stream)
        if h is None:
            h = [("container_name", self.headers_name), ("stream", line.stream.encode())]
        return h


#: Where a container's orchestrator is read from: record field -> (its key -> label).
#: The labels Kubernetes (dockershim, cri-dockerd), Docker Compose and swarm mode
#: put on the containers they create; log-pilot reads the same ones.
ORCHESTRATION_LABELS: dict[str, dict[str, str]] = {
    "kubernetes": {
        "pod": "io.kubernetes.pod.name",
        "namespace": "io.kubernetes.pod.namespace",
        "container": "io.kubernetes.container.name",
    },
    "compose": {
        "project": "com.docker.compose.project",
        "service": "com.docker.compose.service",
    },
    "swarm": {
        "service": "com.docker.swarm.service.name",
        "stack": "com.docker.stack.namespace",
    },
}


def orchestration(labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The ``kubernetes``, ``compose`` and ``swarm`` fields of a container's records:
    each only when at least one of its labels is set, with the keys that are."""
    out: dict[str, dict[str, str]] = {}
    for field_name, keys in ORCHESTRATION_LABELS.items():
        found = {key: labels[label] for key, label in keys.items() if label in labels}
        if found:
            out[field_name] = found
    return out


#: What a ValueBuilder gives :func:`plain_values_reference` besides the lines: the
#: value's head and mid per stream, its tail, the headers per stream.
_PlainParts = tuple[
    tuple[bytes, bytes], tuple[bytes, bytes], bytes, tuple[list[tuple[str, bytes]], ...]
]


def plain_values_reference(
    records: list[bytes],
    marks: bytes,
    heads: tuple[bytes, bytes],
    mids: tuple[bytes, bytes],
    tail: bytes,
    headers: tuple[list[tuple[str, bytes]], ...],
) -> list[OutRecord]:
    """The Kafka records of plain lines (``store.records.split_plain_run``): the
    Python twin (the specification) of ``_speedups.plain_values`` (see
    :mod:`pylog.speedups`). A value is ``heads[s]``, the escaped text, ``mids[s]``,
    the second, ``.``, nine fraction digits, ``Z`` and ``tail``."""
    if len(marks) != len(records) * PLAIN_MARK.size:
        raise ValueError("plain_values: marks do not match the batch")
    out: list[OutRecord] = []
    for raw, (text_end, time_start, stream, frac_len, ms) in zip(
        records, PLAIN_MARK.iter_unpack(marks), strict=True
    ):
        second_end = time_start + 19
        frac = raw[second_end + 1 : second_end + 1 + frac_len] if frac_len else b""
        value = b"".join(
            (
                heads[stream],
                raw[PLAIN_TEXT_START:text_end],
                mids[stream],
                raw[time_start:second_end],
                b".",
                frac.ljust(9, b"0"),
                b"Z",
                tail,
            )
        )
        out.append((value, headers[stream], ms))
    return out


_plain_values = compiled.plain_values if compiled is not None else plain_values_reference


def _json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = json.loads(stripped)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
