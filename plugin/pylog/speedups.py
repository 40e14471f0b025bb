"""The compiled fast path for lines and records (``pylog._speedups``), if it was built.

Storing lines from a FIFO takes two steps per read: ``framing`` decodes the
frames and ``store.records`` makes their json-file records; for whole lines
``driver`` does both in one call (``whole_records``: the parse of
:func:`~pylog.framing.decode_whole_reference`, then ``encode_lines``), and
``encode_lines`` alone serves the rest that are whole lines
(:meth:`~pylog.store.records.RecordEncoder.encode_batch`).
Shipping a plain line (the common case: a whole line on stdout or stderr) takes
three steps per batch: ``store.records`` reads the stored records
(:func:`~pylog.store.records.split_plain_run`), ``shipper.schema`` makes
their Kafka records (:meth:`~pylog.shipper.schema.ValueBuilder.plain_records`)
and ``shipper.recordbatch`` appends them to a Kafka record batch. Serving them
to ``docker logs`` takes the first step and one more: ``readback`` turns them
into framed LogEntry messages. Each step is written twice: in Python, beside
the code that owns its format (the reference), and in C in ``_speedups.c``
(the one that runs):

=================  ==========================================================
``whole_records``  :func:`pylog.driver.whole_records_reference`
``encode_lines``   :func:`pylog.store.records.encode_lines_reference`
``scan_plain``     :func:`pylog.store.records.scan_plain_reference`
``plain_values``   :func:`pylog.shipper.schema.plain_values_reference`
``encode_records`` :func:`pylog.shipper.recordbatch.encode_records_reference`
``plain_frames``   :func:`pylog.readback.plain_frames_reference`
=================  ==========================================================

In Python, Python's regular-expression engine and a value template per line
cost about 2 us a line, as much as all the rest of a shipping process; in C
both cost about 0.2 us. Escaping a line with Python's JSON encoder (any line
with a quote, as every JSON log line has) costs 3.3 us, 0.3 us in C. A JSON
decode and a protobuf message per line made ``docker logs`` of a million
lines slower than json-file's (8.2 us a line, 0.3 us in C).

The package always builds the extension (``setup.py``; the plugin's rootfs
gets it from a wheel built on the host), so :data:`COMPILED` is True wherever
pylog is installed as documented; the Python twins keep a source checkout that
was never built working, at their speed. ``tests/unit/test_speedups.py`` runs
both on the same inputs and requires the same results, and fails when the
extension is missing from the test environment.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("pylog._speedups")
    except ImportError:  # a checkout that was never built
        return None


#: ``pylog._speedups``, or None.
compiled = _load()

#: Whether the compiled twins are in use.
COMPILED = compiled is not None
