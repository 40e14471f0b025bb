"""The ``pylog`` command on the host: status, metrics and logs of the installed plugin.

``pylog status`` and ``pylog metrics`` talk to the plugin over its socket. A managed
plugin's socket is ``/run/docker/plugins/<plugin id>/pylog.sock`` on the host; the
ID comes from ``docker plugin inspect``, or, when dockerd does not answer, from the
only socket of that name under ``/run/docker/plugins``. ``--socket`` overrides both.

``pylog logs`` reads the local store directly (``/var/lib/pylog`` on the host), so it
works while dockerd or the plugin is down.

Every failure is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import requests
import requests_unixsocket

from .config import LogOptions
from .models import validate_container_id
from .store import Store
from .store.logfile import LogFile
from .store.reader import DAMAGE, ReadOptions, read_records
from .store.records import RecordError, decode_record

PLUGINS_DIR = Path("/run/docker/plugins")
SOCKET_NAME = "pylog.sock"
DEFAULT_STATE_DIR = Path("/var/lib/pylog")
TIMEOUT = 30.0


class CliError(Exception):
    """A failure reported as one line and exit code 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


# -- finding the plugin ------------------------------------------------------------


def _inspect(plugin: str, docker: str) -> tuple[str, bool] | None:
    """(id, enabled) from dockerd; None when dockerd cannot be asked."""
    try:
        proc = subprocess.run(
            [docker, "plugin", "inspect", "-f", "{{.Id}} {{.Enabled}}", plugin],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        err = proc.stderr.strip()
        if "No such plugin" in err or "not found" in err:
            fail(f"plugin {plugin!r} is not installed (docker plugin ls lists the installed ones)")
        return None
    plugin_id, _, enabled = proc.stdout.strip().partition(" ")
    return plugin_id, enabled == "true"


def find_socket(plugin: str, docker: str = "docker", plugins_dir: Path = PLUGINS_DIR) -> Path:
    inspected = _inspect(plugin, docker)
    if inspected is not None:
        plugin_id, enabled = inspected
        if not enabled:
            fail(f"plugin {plugin!r} is installed but not running (docker plugin enable {plugin})")
        sock = plugins_dir / plugin_id / SOCKET_NAME
        if not sock.exists():
            fail(f"plugin {plugin!r} is not running: no socket at {sock}")
        return sock
    found = sorted(plugins_dir.glob(f"*/{SOCKET_NAME}"))
    if len(found) == 1:
        return found[0]
    if not found:
        fail(f"plugin {plugin!r} is not running: no {SOCKET_NAME} under {plugins_dir}")
    fail(f"several pylog plugins are running ({len(found)} sockets): pick one with --socket")


# -- talking to it -----------------------------------------------------------------


def get(sock: Path, path: str) -> requests.Response:
    url = f"http+unix://{quote(str(sock), safe='')}{path}"
    try:
        with requests_unixsocket.Session() as session:
            resp: requests.Response = session.get(url, timeout=TIMEOUT)
    except requests.ConnectionError:
        fail(f"plugin is not running: nothing answers on {sock}")
    except requests.RequestException as exc:
        fail(f"plugin socket {sock}: {type(exc).__name__}: {exc}")
    if resp.status_code != 200:
        fail(f"plugin answered {resp.status_code} to GET {path} (is it an older version?)")
    return resp


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_status(report: dict[str, Any]) -> str:
    lines = [f"pylog {report.get('version', '?')}: {report.get('status', '?')}"]
    containers = report.get("containers", [])
    lines.append(f"containers being logged: {len(containers)}")
    if containers:
        lines.append(
            f"  {'CONTAINER':<12}  {'NAME':<24} {'STORED':>10} {'DROPPED':>8} "
            f"{'BAD FRAMES':>10} {'BACKLOG':>10}"
        )
    for c in containers:
        ship = c.get("shipping")
        backlog = "-"
        if ship is not None:
            backlog = _human(ship["backlog_bytes"])
            if ship["backlog_files"]:
                backlog += f" +{ship['backlog_files']} files"
        lines.append(
            f"  {c['id'][:12]:<12}  {c['name'][:24]:<24} {c['lines_stored']:>10} "
            f"{c['lines_dropped']:>8} {c['frame_errors']:>10} {backlog:>10}"
        )
    for b in report.get("backlogs", []):
        of = f" of log {b['log']}" if b.get("log", "stdout") != "stdout" else ""
        lines.append(
            f"  {b['id'][:12]:<12}  {b['name'][:24]:<24} (stopped) shipping backlog{of} "
            f"{_human(b['backlog_bytes'])}"
        )
    kafka = report.get("kafka", {})
    if not kafka.get("configured"):
        lines.append("kafka: not configured (local logs only)")
    for broker in kafka.get("brokers", []):
        state = "reachable" if broker["reachable"] else f"UNREACHABLE ({broker['error']})"
        lines.append(f"kafka broker {broker['address']}: {state}")
    return "\n".join(lines)


# -- reading the store -------------------------------------------------------------


def resolve_container(state_dir: Path, ref: str) -> str:
    """The full ID of the stored container whose ID is ``ref`` or starts with it."""
    store = Store(state_dir)
    if not store.containers_dir.is_dir():
        fail(f"no pylog logs under {state_dir} (is this the host's pylog state dir?)")
    ids = store.containers()
    if ref in ids:
        return ref
    matches = [i for i in ids if ref and i.startswith(ref.lower())]
    if not matches:
        fail(f"no logs of container {ref!r} under {state_dir} (pass a container ID or prefix)")
    if len(matches) > 1:
        fail(f"container ID prefix {ref!r} is ambiguous ({len(matches)} containers)")
    return matches[0]


def print_logs(state_dir: Path, ref: str, tail: int | None, name: str | None = None) -> None:
    """The container's stdout/stderr log, or with ``name`` the log file it declared
    (``pylog.logs.<name>=/path``), collected into the store."""
    container_id = validate_container_id(resolve_container(state_dir, ref))
    store = Store(state_dir)
    directory = store.directory(container_id)
    if name is not None:
        names = store.file_log_names(container_id)
        if name not in names:
            known = ", ".join(names) if names else "none"
            fail(f"container {container_id[:12]} has no log file {name!r} (stored: {known})")
        directory = store.file_log_directory(container_id, name)
    # Read-only: nothing is created, rotated or touched.
    logfile = LogFile(directory, LogOptions().rotation, writable=False)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    damaged = DAMAGE.files
    for raw in read_records(logfile, ReadOptions(tail=tail if tail is not None else -1)):
        try:
            rec = decode_record(raw)
        except RecordError:
            continue
        stream = err if rec.stream == "stderr" else out
        stream.write(rec.log)
    out.flush()
    err.flush()
    if DAMAGE.files > damaged:
        print(
            f"pylog: {DAMAGE.files - damaged} damaged log file(s) (cut short or corrupt): "
            "printed what comes before the damage in each",
            file=sys.stderr,
        )


# -- main --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylog", description="The pylog Docker logging plugin.")
    p.add_argument("--socket", type=Path, help="the plugin's socket (default: found via docker)")
    p.add_argument("--plugin", default="pylog", help="the plugin's name or alias (pylog)")
    p.add_argument("--docker", default=os.environ.get("DOCKER", "docker"), help=argparse.SUPPRESS)
    p.add_argument("--plugins-dir", type=Path, default=PLUGINS_DIR, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="health, containers being logged, Kafka reachability")
    sub.add_parser("metrics", help="the Prometheus metrics")
    logs = sub.add_parser("logs", help="a container's logs, read from the store (no dockerd)")
    logs.add_argument("container", help="container ID or unique ID prefix")
    logs.add_argument("--tail", "-n", type=int, default=None, help="only the last N lines")
    logs.add_argument(
        "--log",
        metavar="NAME",
        default=None,
        help="the log file the container declared as pylog.logs.NAME (default: stdout/stderr)",
    )
    logs.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    return p


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # The store's own warnings are summed up in one line (see print_logs).
    logging.getLogger("pylog").setLevel(logging.ERROR)
    if args.command == "logs":
        if args.tail is not None and args.tail < 0:
            fail("--tail must be 0 or more")
        print_logs(args.state_dir, args.container, args.tail, args.log)
        return 0
    sock = args.socket or find_socket(args.plugin, args.docker, args.plugins_dir)
    if args.command == "metrics":
        sys.stdout.write(get(sock, "/metrics").text)
        return 0
    try:
        report = get(sock, "/status").json()
    except ValueError:
        fail("plugin's /status answer is not JSON")
    print(format_status(report))
    return 0


def main() -> None:
    try:
        code = run()
    except CliError as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        code = 1
    except BrokenPipeError:
        code = 0
    except OSError as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
