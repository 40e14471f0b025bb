"""LZ4 at its fast level for pylog's record batches.

aiokafka **0.14.0**'s LZ4 encoder (``aiokafka.codec.lz4_encode``, which
:mod:`.recordbatch` calls) compresses at level 9 (LZ4 HC) unless told a level.
On log lines HC is hardly smaller (measured on 100-byte lines: 57.6x against
56.8x at level 1) but costs ten times the CPU (1.0 against 0.09 us a record).
Any LZ4 level decodes the same, so brokers and consumers see no difference but
the size. ``tests/unit/shipper/test_aiokafka_contract.py`` fails when the
encoder stops taking a level.
"""

from __future__ import annotations

#: The LZ4 level used (LZ4F: below 3 is the fast compressor).
LZ4_LEVEL = 1
