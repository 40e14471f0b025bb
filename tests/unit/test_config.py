from pathlib import Path

import pytest
from pylog.config import (
    DEFAULT_COMPRESS,
    DEFAULT_MAX_FILE,
    DEFAULT_MAX_SIZE,
    OptionError,
    Settings,
    parse_duration,
    parse_human_size,
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
def test_pylog_settings_sizes_are_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


KB, MB, GB, TB, PB = 10**3, 10**6, 10**9, 10**12, 10**15


@pytest.mark.parametrize(
    ("text", "size"),
    [
        # go-units' own FromHumanSize examples (size_test.go).
        ("32", 32),
        ("32b", 32),
        ("32B", 32),
        ("32k", 32 * KB),
        ("32K", 32 * KB),
        ("32kb", 32 * KB),
        ("32Kb", 32 * KB),
        ("32Mb", 32 * MB),
        ("32Gb", 32 * GB),
        ("32Tb", 32 * TB),
        ("32Pb", 32 * PB),
        ("32.5kB", 32500),
        ("32.5 kB", 32500),
        ("32.5 B", 32),
        ("0.3 K", 300),
        # The "i" is allowed and changes nothing: still decimal.
        ("32Kib", 32 * KB),
        ("32KIB", 32 * KB),
        ("1ki", KB),
        ("32i", 32),
        ("20m", 20_000_000),
        ("1g", GB),
        ("1.5m", 1_500_000),
        ("32 ", 32),
    ],
)
def test_max_size_reads_like_go_units_from_human_size(text: str, size: int) -> None:
    assert parse_human_size(text) == size


@pytest.mark.parametrize(
    "text",
    # go-units' own error examples, then what Docker 20.10's json-file refuses too.
    ["", "hello", "-32", ".3kB", " 32 ", "32m b", "32bm", " 32", "1e3", "1.2.3", "1_000", "\u0663"],
)
def test_max_size_refuses_what_go_units_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_human_size(text)


def test_max_size_is_decimal_like_json_file() -> None:
    assert parse_log_opts({"max-size": "20m"}).rotation.max_size == 20_000_000
    assert parse_log_opts({"max-size": "10KiB"}).rotation.max_size == 10_000
    # A fraction that truncates to nothing is not a positive size, as in json-file.
    with pytest.raises(OptionError, match="max-size"):
        parse_log_opts({"max-size": "0.0001k"})


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
        10000,
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


@pytest.mark.parametrize("opt", ["labels-regex", "env-regex", "kafka-multiline-pattern"])
@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=a)b", r"(?!a)b", r"(?<=a)b", r"(?<!a)b", r"a\Z", r"(?>a)", "a{1001}"],
)
def test_regex_outside_re2_is_refused_naming_the_opt(opt: str, pattern: str) -> None:
    with pytest.raises(OptionError) as exc:
        parse_log_opts({opt: pattern})
    message = str(exc.value)
    assert f"log opt '{opt}'" in message
    assert "RE2 syntax is accepted" in message
    assert ": b'" not in message  # RE2's reason, decoded from its bytes


@pytest.mark.timeout(5)
@pytest.mark.parametrize("length", [30, 100_000])
def test_catastrophic_regex_takes_linear_time(length: int) -> None:
    """(a+)+$ backtracks exponentially in Python's re: 30 a's took minutes."""
    hostile = "a" * length + "!"
    opts = parse_log_opts({"labels-regex": "(a+)+$", "env-regex": "(a+)+$"})
    assert opts.extra_attributes({hostile: "l", "aa": "m"}, {hostile: "e", "b": "x"}) == {"aa": "m"}


def test_regex_matches_text_not_bytes() -> None:
    """Keys are matched as text: ``.`` is one character, however many bytes it takes.
    ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII-only in RE2; ``\\pL`` is any letter."""
    labels = {"café": "1", "cafe": "2", "caf": "3", "日本": "4", "x": "5"}

    def selected(pattern: str) -> list[str]:
        return sorted(parse_log_opts({"labels-regex": pattern}).selected_labels(labels))

    assert selected("^caf.$") == ["cafe", "café"]
    assert selected("é") == ["café"]
    assert selected("^..$") == ["日本"]
    assert selected(r"^\w+$") == ["caf", "cafe", "x"]
    assert selected(r"^\pL+$") == ["caf", "cafe", "café", "x", "日本"]
    assert selected("(?i)CAFÉ") == ["café"]
    assert selected(r"^\x{65E5}") == ["日本"]


def test_regex_keeps_its_pattern_text() -> None:
    opts = parse_log_opts({"labels-regex": "^a|b$", "kafka-multiline-pattern": r"^\d"})
    assert opts.labels_regex is not None and opts.labels_regex.pattern == "^a|b$"
    multiline = opts.kafka.multiline_pattern
    assert multiline is not None and multiline.pattern == r"^\d"


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        ({"tag": "{{" + " " * 2000}, "log opt 'tag'"),
        ({"kafka-topic": "x" * 1025}, "log opt 'kafka-topic'"),
        ({"kafka-key": "{{" * 600}, "log opt 'kafka-key'"),
    ],
)
def test_long_template_is_refused_naming_the_opt_and_the_limit(
    opts: dict[str, str], named: str
) -> None:
    with pytest.raises(OptionError, match=f"{named}.*the limit is 1024"):
        parse_log_opts(opts)


def test_long_template_in_plugin_env_is_refused_naming_it() -> None:
    with pytest.raises(OptionError, match=r"KAFKA_TOPIC.*the limit is 1024"):
        Settings.from_env({"KAFKA_TOPIC": "{{.Name}}" + "x" * 5000})


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
    ("env", "message"),
    [
        ({"PYLOG_LOG_LEVEL": "loud"}, "PYLOG_LOG_LEVEL must be one of debug, info, warning, error"),
        ({"PYLOG_THREADS": "two"}, "PYLOG_THREADS must be an integer of at least 4"),
        ({"PYLOG_THREADS": "1"}, "PYLOG_THREADS must be an integer of at least 4"),
        ({"PYLOG_RETENTION": "soon"}, "PYLOG_RETENTION must be a duration such as 90s"),
        ({"PYLOG_MAX_FRAME": "1k"}, "PYLOG_MAX_FRAME must be a size of at least 65536 bytes"),
        ({"PYLOG_MAX_REQUEST": "junk"}, "PYLOG_MAX_REQUEST must be a size of at least 65536"),
        ({"PYLOG_MAX_READERS": "0"}, "PYLOG_MAX_READERS must be an integer of at least 1"),
    ],
)
def test_bad_settings_name_the_setting_and_the_value(env: dict[str, str], message: str) -> None:
    """Every setting is read by the same loop, so every message names the variable, what
    it accepts and the value given (``invalid plugin setting: soon`` named none)."""
    with pytest.raises(OptionError) as exc:
        Settings.from_env(env)
    assert str(exc.value).startswith(message)
    assert str(exc.value).endswith(f", got {next(iter(env.values()))!r}")


def test_blanks_around_a_setting_are_dropped() -> None:
    """As for every KAFKA_* setting: a blank value is the default, blanks around are ignored."""
    s = Settings.from_env(
        {"PYLOG_LOG_LEVEL": " debug ", "PYLOG_THREADS": " ", "PYLOG_STATE_DIR": "/x\n"}
    )
    assert (s.log_level, s.threads, s.state_dir) == ("debug", Settings().threads, Path("/x"))
