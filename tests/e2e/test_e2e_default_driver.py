"""pylog as the daemon's default log driver, from daemon.json.

dockerd is started with ``--config-file`` naming a daemon.json that sets
``"log-driver": "pylog"`` and ``log-opts``; a container run without ``--log-driver``
then logs through pylog with those options, frozen into its config at create time.
dockerd checks only its own keys (``mode``, ``max-buffer-size``) of a plugin's opts, so
an option pylog does not know reaches pylog's StartLogging, which refuses the
container with a message naming the option.

At startup dockerd looks the default driver up to check the daemon.json log-opts: with
pylog installed but disabled, dockerd does not start at all ("failed to set log opts:
... plugin pylog found but disabled"). dockerd enables the plugins it has before it
checks, so an enabled pylog is found.

The engine is put back in its normal configuration afterwards, whatever happens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .e2e_helpers import IMAGE, LABEL, PLUGIN, Docker, docker_cli
from .engine_control import dockerd_args, engine, reconfigured_engine, restore_normal_engine

pytestmark = pytest.mark.e2e

OPTS = {"tag": "dj-{{.Name}}", "max-size": "10k", "max-file": "2"}


def run_default(*cmd: str, name: str = "") -> str:
    """`docker run -d` without --log-driver and without --log-opt."""
    args = ["run", "-d", "--network", "none", "--label", f"{LABEL}=1"]
    if name:
        args += ["--name", name]
    return docker_cli([*args, IMAGE, *cmd]).stdout.decode().strip()


def daemon_json(tmp_path: Path, opts: dict[str, str]) -> Path:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-driver": PLUGIN, "log-opts": opts}))
    return path


def test_daemon_json_default_driver_with_log_opts(docker: Docker, tmp_path: Path) -> None:
    config = daemon_json(tmp_path, OPTS)
    with reconfigured_engine(f"--config-file {config}"):
        assert str(config) in dockerd_args()
        info = docker_cli(["info", "--format", "{{.LoggingDriver}}"]).stdout.decode().strip()
        assert info == PLUGIN
        name = f"pylog-e2e-dj-{tmp_path.name[-6:]}"
        # 3,000 lines of ~60 bytes: more than two 10 KiB files hold.
        cid = run_default(
            "sh",
            "-c",
            "seq 1 3000 | sed 's/$/ a line from the default driver/'",
            name=name,
        )
        try:
            assert docker.wait(cid) == 0
            log_config = json.loads(docker.inspect(cid, "{{json .HostConfig.LogConfig}}"))
            assert log_config == {"Type": PLUGIN, "Config": OPTS}
            # pylog may still be storing the last lines dockerd wrote before it closed
            # the FIFO (seen once, right after the engine restart): wait for the last one.
            deadline = time.monotonic() + 30
            while not (logs := docker.logs(cid)).stdout.endswith(
                b"3000 a line from the default driver\n"
            ):
                assert time.monotonic() < deadline, (
                    f"last line never stored: {logs.stdout[-200:]!r}"
                )
                time.sleep(0.2)
            # max-size/max-file applied: only the newest lines are kept, and they end
            # with the last one, in order.
            kept = [int(line.split()[0]) for line in logs.stdout.splitlines()]
            assert kept and kept[-1] == 3000
            assert kept == list(range(kept[0], 3001))
            assert kept[0] > 1, "max-size/max-file from daemon.json were not applied"
            # An explicit driver still wins over the default.
            other = docker.run_and_wait("json-file", "echo beside")
            assert docker.inspect(other, "{{.HostConfig.LogConfig.Type}}") == "json-file"
        finally:
            docker_cli(["rm", "-f", cid], check=False)


def test_daemon_json_unknown_log_opt_fails_docker_run(docker: Docker, tmp_path: Path) -> None:
    config = daemon_json(tmp_path, {"tag": "x", "no-such-opt": "1"})
    with reconfigured_engine(f"--config-file {config}"):
        # dockerd starts: it does not check a plugin's options.
        assert docker_cli(["info", "--format", "{{.LoggingDriver}}"]).stdout.strip() == b"pylog"
        args = ["run", "-d", "--network", "none", "--label", f"{LABEL}=1", IMAGE, "true"]
        run = docker_cli(args, check=False)
        assert run.returncode != 0
        err = run.stderr.decode()
        assert "unknown log opt 'no-such-opt' for pylog log driver" in err, err


def test_dockerd_refuses_to_start_when_the_default_plugin_is_disabled(
    docker: Docker, tmp_path: Path
) -> None:
    config = daemon_json(tmp_path, OPTS)
    try:
        docker_cli(["plugin", "disable", PLUGIN], timeout=120)
        engine("stop")
        with pytest.raises(AssertionError) as failed:
            engine("start", f"--config-file {config}")
        assert "plugin pylog found but disabled" in str(failed.value), failed.value
    finally:
        restore_normal_engine()
