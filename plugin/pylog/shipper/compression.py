"""LZ4 at its fast level for the record batches aiokafka builds.

aiokafka **0.14.0** compresses LZ4 batches at level 9 (LZ4 HC: the default of
``aiokafka.codec.lz4_encode``) and has no setting for it. On log lines HC is
hardly smaller (measured on 100-byte lines: 57.6x against 56.8x at level 1)
but costs ten times the CPU (1.0 against 0.09 us a record), CPU taken from
the process that also ingests. Any LZ4 level decodes
the same, so brokers and consumers see no difference but the size.

The batch builder looks ``lz4_encode`` up in its module's globals on every
call, in the compiled and the pure-Python variant alike; :func:`use_fast_lz4`
points both at aiokafka's own encoder with a lower level.
``tests/unit/shipper/test_aiokafka_contract.py`` fails when any of this changes.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from aiokafka import codec

#: The LZ4 level used (LZ4F: below 3 is the fast compressor).
LZ4_LEVEL = 1

_BUILDER_MODULES = ("aiokafka.record.default_records", "aiokafka.record._crecords.default_records")


def _modules() -> list[ModuleType]:
    found = []
    for name in _BUILDER_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ImportError:  # the compiled variant is optional
            continue
    return found


def use_fast_lz4() -> int:
    """Make aiokafka's batch builders compress LZ4 at ``LZ4_LEVEL``; safe to call
    again. Returns how many builder modules were changed (0 if aiokafka no
    longer looks the encoder up this way: then it keeps its own level)."""
    fast = functools.partial(codec.lz4_encode, level=LZ4_LEVEL)
    changed = 0
    for module in _modules():
        if hasattr(module, "lz4_encode"):
            module.lz4_encode = fast  # type: ignore[attr-defined]
            changed += 1
    return changed
