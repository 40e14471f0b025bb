from pathlib import Path

import pytest
from pylog.config import (
    DEFAULT_COMPRESS,
    DEFAULT_MAX_FILE,
    DEFAULT_MAX_SIZE,
    OptionError,
    Settings,
    parse_duration,
    parse_log_opts,
    parse_size,
)


def test_defaults_bound_disk_use() -> None:
    opts = parse_log_opts({})
    assert opts.rotation.max_size == DEFAULT_MAX_SIZE == 20 * 1024 * 1024
    assert opts.rotation.max_files == DEFAULT_MAX_FILE == 5
    assert opts.rotation.compress is DEFAULT_COMPRESS is True


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10", 10),
        ("10k", 10240),
        ("10K", 10240),
        ("1.5m", 1572864),
        ("2g", 2 << 30),
        ("10kb", 10240),
        ("3MiB", 3 << 20),
    ],
)
def test_sizes_like_json_file(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_json_file_options() -> None:
    opts = parse_log_opts(
        {
            "max-size": "10k",
            "max-file": "3",
            "compress": "false",
            "labels": "a, b",
            "labels-regex": "^x",
            "env": "E1",
            "env-regex": "^F",
            "tag": "{{.Name}}",
        }
    )
    assert (opts.rotation.max_size, opts.rotation.max_files, opts.rotation.compress) == (
        10240,
        3,
        False,
    )
    attrs = opts.extra_attributes({"a": "1", "c": "2", "xy": "3"}, {"E1": "e", "F2": "f", "G": "g"})
    assert attrs == {"a": "1", "xy": "3", "E1": "e", "F2": "f"}


def test_unlimited_size() -> None:
    assert parse_log_opts({"max-size": "-1"}).rotation.max_size == -1


def test_dockerd_keys_are_accepted_and_ignored() -> None:
    parse_log_opts({"mode": "non-blocking", "max-buffer-size": "4m", "cache-disabled": "true"})


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        ({"bogus": "1"}, "bogus"),
        ({"max-size": "abc"}, "max-size"),
        ({"max-size": "0"}, "max-size"),
        ({"max-size": "9" * 400}, "max-size"),
        ({"max-size": "1e400"}, "max-size"),
        ({"max-file": "0"}, "max-file"),
        ({"max-file": "x"}, "max-file"),
        ({"compress": "maybe"}, "compress"),
        ({"labels-regex": "("}, "labels-regex"),
        ({"env-regex": "[", "max-size": "1m"}, "env-regex"),
        ({"tag": "{{.Nope}}"}, "tag"),
        ({"max-size": "-1", "max-file": "3"}, "max-file"),
    ],
)
def test_bad_options_are_named(opts: dict[str, str], named: str) -> None:
    with pytest.raises(OptionError, match=named):
        parse_log_opts(opts)


def test_unknown_option_message_lists_what_is_accepted() -> None:
    with pytest.raises(OptionError) as exc:
        parse_log_opts({"max_size": "1m"})
    assert "max_size" in str(exc.value)
    assert "max-size" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("168h", 604800),
        ("7d", 604800),
        ("1h30m", 5400),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "h", "5x", "5m junk", "-1h"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "PYLOG_STATE_DIR": "/x",
            "PYLOG_LOG_LEVEL": "DEBUG",
            "PYLOG_THREADS": "16",
            "PYLOG_RETENTION": "1h",
            "PYLOG_MAX_FRAME": "2m",
        }
    )
    assert s.state_dir == Path("/x")
    assert (s.log_level, s.threads, s.retention_seconds, s.max_frame) == (
        "debug",
        16,
        3600,
        2 << 20,
    )
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    "env",
    [
        {"PYLOG_LOG_LEVEL": "loud"},
        {"PYLOG_THREADS": "two"},
        {"PYLOG_THREADS": "1"},
        {"PYLOG_RETENTION": "soon"},
        {"PYLOG_MAX_FRAME": "1k"},
    ],
)
def test_bad_settings(env: dict[str, str]) -> None:
    with pytest.raises(OptionError):
        Settings.from_env(env)
