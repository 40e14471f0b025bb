"""The plugin process: gunicorn serving the LogDriver API on the plugin socket.

One worker process (all per-container state lives in one place) with a pool
of threads: ``PYLOG_MAX_READERS`` for ``docker logs`` streams (the service
refuses more) plus ``PYLOG_THREADS`` that are left for everything else, so
long ``docker logs -f`` streams never starve StartLogging or StopLogging.
Lifecycle: gunicorn loads the app in the worker (:meth:`PluginServer.load`,
which is also where the app's modules are first imported),
the service starts after the worker is initialised (``post_worker_init``) and
shuts down in ``worker_exit``: FIFO reading stops, stored logs stay, follow
streams end.

Run as ``python -m pylog.server`` (the plugin's entrypoint in config.json).
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from . import __version__, gctune
from .config import SHUTDOWN_DEADLINE, OptionError, Settings
from .fdlimit import raise_open_files_limit
from .lograte import log_to_stderr

if TYPE_CHECKING:
    from .service import LoggingService

log = logging.getLogger("pylog")


def configure_logging(level: str) -> None:
    """pylog's own log goes to stderr, which dockerd copies into its log, rate-limited
    (see :mod:`.lograte`) so that nothing can flood dockerd's log."""
    log_to_stderr(level)


class PluginServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: LoggingService | None = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [f"unix:{s.socket_path}"],
            "workers": 1,
            "worker_class": "gthread",
            # A thread per docker logs stream, up to the cap the service enforces,
            # and `threads` more that only the other requests can take: a
            # StartLogging or StopLogging never waits behind a follow stream.
            # gunicorn starts threads as needed: an idle one costs nothing.
            "threads": s.max_readers + s.threads,
            # Open connections; the default (1000) would stop accepting below the
            # thread count once max_readers is raised.
            "worker_connections": s.max_readers + s.threads + 256,
            "keepalive": 60,
            "timeout": 60,
            # The worker's whole exit, shutdown included, which keeps to
            # SHUTDOWN_DEADLINE; dockerd kills the plugin 10 s after SIGTERM.
            "graceful_timeout": int(SHUTDOWN_DEADLINE) + 1,
            # The socket is for dockerd (root) only.
            "umask": 0o077,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level,
            "proc_name": "pylog",
            "control_socket_disable": True,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here, in the worker: the arbiter only supervises it, and
        # without flask, protobuf, aiokafka and the rest it stays small.
        from .api import create_app
        from .service import LoggingService

        self.service = LoggingService(self.settings)
        return create_app(self.service)

    def _post_worker_init(self, worker: Any) -> None:
        configure_logging(self.settings.log_level)
        service = self.service
        assert service is not None
        service.startup()
        gctune.tune()
        # On SIGTERM gunicorn first waits for open requests, and a follow stream
        # ends only when the service stops: tell the service at once, so streams
        # end and the shutdown deadline runs from the signal.
        stop_accepting = worker.handle_exit

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            service.begin_shutdown()
            stop_accepting(sig, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _worker_exit(self, arbiter: Any, worker: Any) -> None:
        if self.service is not None:
            self.service.shutdown()


def main() -> None:
    try:
        settings = Settings.from_env()
    except OptionError as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        before, after = raise_open_files_limit()
    except (OSError, ValueError) as exc:
        log.warning("cannot raise the open-file limit: %s", exc)
    else:
        # Before gunicorn starts: its worker inherits the limit.
        log.info(
            "open-file limit: %d%s", after, f" (raised from {before})" if after != before else ""
        )
    settings.socket_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("pylog %s listening on %s", __version__, settings.socket_path)
    PluginServer(settings).run()


if __name__ == "__main__":
    main()
