"""gctune.py: young collections become rare, startup's objects leave the collector."""

from __future__ import annotations

import json
import subprocess
import sys

from pylog import gctune


def test_tune_raises_the_young_threshold_and_freezes_what_is_alive() -> None:
    code = (
        "import gc, json\n"
        "from pylog import gctune\n"
        "before = gc.get_freeze_count()\n"
        "gctune.tune()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    before, after, young = json.loads(out.stdout)
    assert before == 0 and after > 1000  # modules, functions, settings: out of sight
    assert young == gctune.YOUNG_THRESHOLD != 700  # CPython's default
