"""Run a LoggingService in its own process, so a test can SIGKILL it.

    python service_main.py STATE_DIR FIFO_ROOT BOOTSTRAP [FIFO INFO_JSON]

Starts the service (which resumes unshipped backlogs), optionally starts
logging one FIFO, prints ``ready`` and waits to be killed (SIGTERM shuts down
cleanly).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from pylog.config import KafkaSettings, Settings
from pylog.service import LoggingService


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    state, fifo_root, bootstrap = sys.argv[1:4]
    settings = Settings(
        state_dir=Path(state),
        socket_path=Path(state) / "unused.sock",
        fifo_root=Path(fifo_root),
        kafka=KafkaSettings(brokers=(bootstrap,), linger_ms=5),
    )
    svc = LoggingService(settings)
    svc.startup()
    if len(sys.argv) > 5:
        svc.start_logging(sys.argv[4], json.loads(sys.argv[5]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    svc.shutdown()


if __name__ == "__main__":
    main()
