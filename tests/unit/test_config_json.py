"""Every plugin setting's default is written twice: in pylog.config's settings tables and as
the ``value`` of its env in config.json (what ``docker plugin inspect`` shows and what
the plugin actually starts with). These tests keep the two, and README.md, in step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pylog import config
from pylog.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG_JSON = json.loads((ROOT / "config.json").read_text(encoding="utf-8"))
DECLARED: dict[str, dict[str, Any]] = {e["name"]: e for e in CONFIG_JSON["env"]}

#: Settings pylog reads that config.json deliberately does not declare.
INTERNAL = {
    # The socket and the FIFO directory are where dockerd puts them inside a managed
    # plugin; changing them would only break the plugin. Tests and a plugin run by
    # hand outside Docker set them.
    config.ENV_SOCKET: "fixed by dockerd's managed-plugin layout",
    config.ENV_FIFO_ROOT: "fixed by dockerd's managed-plugin layout",
}
#: Env that config.json declares for the Python runtime, not for pylog.
RUNTIME = {"PYTHONUNBUFFERED"}

#: Settings whose default is "not set", declared with an empty value.
UNSET_BY_DEFAULT = {
    config.ENV_KAFKA_BROKERS,
    config.ENV_KAFKA_TLS_CA,
    config.ENV_KAFKA_TLS_CERT,
    config.ENV_KAFKA_TLS_KEY,
    config.ENV_KAFKA_SASL_MECHANISM,
    config.ENV_KAFKA_SASL_USERNAME,
    config.ENV_KAFKA_SASL_PASSWORD,
    config.ENV_KAFKA_SASL_PASSWORD_FILE,
}


def env_names_read() -> set[str]:
    """Every env name Settings.from_env reads: the rows of its two tables."""
    return {option.name for option in (*config.PYLOG_SETTINGS, *config.KAFKA_SETTINGS)}


def test_every_env_constant_is_a_table_row() -> None:
    """An ENV_* name that no table row reads would be a setting pylog ignores."""
    constants = {
        value
        for name, value in vars(config).items()
        if name.startswith("ENV_") and isinstance(value, str)
    }
    assert constants == env_names_read()


def test_every_setting_read_is_declared_or_internal() -> None:
    missing = env_names_read() - set(DECLARED) - set(INTERNAL)
    assert not missing, f"read by pylog but not declared in config.json: {sorted(missing)}"


def test_everything_declared_is_read() -> None:
    unknown = set(DECLARED) - env_names_read() - RUNTIME
    assert not unknown, f"declared in config.json but never read: {sorted(unknown)}"


def test_internal_settings_are_not_declared() -> None:
    assert not set(INTERNAL) & set(DECLARED)


@pytest.mark.parametrize("name", sorted(set(DECLARED) - RUNTIME))
def test_declared_value_is_the_default(name: str) -> None:
    """The declared value, read through the same parser, gives the built-in default."""
    value = DECLARED[name]["value"]
    assert isinstance(value, str)
    if name in UNSET_BY_DEFAULT:
        assert value == "", f"{name} has no default, config.json says {value!r}"
    else:
        assert value != "", f"{name} has a default, config.json declares it empty"
    assert Settings.from_env({name: value}) == Settings.from_env({}), (
        f"config.json's {name}={value!r} is not pylog.config's default"
    )


@pytest.mark.parametrize("name", sorted(set(DECLARED) - RUNTIME))
def test_declared_setting_is_settable_described_and_documented(name: str) -> None:
    env = DECLARED[name]
    assert env.get("settable") == ["value"]
    assert env.get("description", "").strip()
    assert f"`{name}`" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_unset_by_default_really_defaults_to_nothing() -> None:
    """A setting declared empty must be one whose built-in default is empty too."""
    kafka = Settings.from_env({}).kafka
    assert kafka.brokers == ()
    assert (kafka.tls_ca, kafka.tls_cert, kafka.tls_key) == (None, None, None)
    assert (kafka.sasl_mechanism, kafka.sasl_username, kafka.sasl_password) == (None,) * 3


def test_the_privileges_the_file_collector_needs_are_declared() -> None:
    """Docker 20.10's plugin config (types.PluginConfig): ``pidhost`` and
    ``linux.capabilities``; the README's Privileges section names the same."""
    assert CONFIG_JSON["pidhost"] is True
    caps = CONFIG_JSON["linux"]["capabilities"]
    assert caps == ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Privileges") :]
    assert all(f"`{cap}`" in section for cap in caps) and "pidhost" in section
