"""Logs declared by container labels and env (pylog.config.declarations): every rule
and every message."""

from __future__ import annotations

import pytest
from pylog.config import (
    DEFAULT_LOG_PREFIXES,
    MAX_DECLARATION_VALUE,
    MAX_DECLARED_LOGS,
    MAX_LOG_NAME,
    Declaration,
    OptionError,
    Settings,
    parse_declarations,
)

Labels = dict[str, str]


def declare(labels: Labels | None = None, env: Labels | None = None) -> tuple[Declaration, ...]:
    return parse_declarations(labels or {}, env or {})


def one(labels: Labels | None = None, env: Labels | None = None) -> Declaration:
    (declaration,) = declare(labels, env)
    return declaration


def refused(labels: Labels | None = None, env: Labels | None = None) -> str:
    with pytest.raises(OptionError) as exc:
        declare(labels, env)
    return str(exc.value)


# -- what is declared ----------------------------------------------------------


def test_no_declaring_key_declares_nothing() -> None:
    assert declare({"app": "web", "pylog.topic": "t", "pylog.logsx": "/a"}, {"PATH": "/bin"}) == ()


def test_a_file_log_and_its_defaults() -> None:
    d = one({"pylog.logs.access": "/usr/local/tomcat/logs/localhost_access_log.*.txt"})
    assert d.name == "access"
    assert d.kind == "file"
    assert d.path == "/usr/local/tomcat/logs/localhost_access_log.*.txt"
    assert d.target == "access"
    assert d.tags == ()
    assert d.format == "none"
    assert d.pattern is None
    assert d.source == "label 'pylog.logs.access'"


def test_stdout_is_a_log_without_a_path() -> None:
    d = one({"pylog.logs.catalina": "stdout"})
    assert (d.kind, d.path, d.target) == ("stdout", None, "catalina")


def test_stdout_takes_sub_keys_too() -> None:
    d = one(
        {"pylog.logs.out": "stdout", "pylog.logs.out.target": "t", "pylog.logs.out.tags": "a=b"}
    )
    assert (d.kind, d.target, d.tags) == ("stdout", "t", (("a", "b"),))


def test_several_logs_come_back_by_name() -> None:
    names = [
        d.name
        for d in declare(
            {"pylog.logs.b": "/b.log", "pylog.logs.a": "stdout"}, {"pylog_logs_c": "/c/*.log"}
        )
    ]
    assert names == ["a", "b", "c"]


def test_blanks_around_values_are_dropped() -> None:
    d = one({"pylog.logs.a": "  /var/log/a.log \n", "pylog.logs.a.target": " t "})
    assert (d.path, d.target) == ("/var/log/a.log", "t")
    assert one({"pylog.logs.a": " stdout "}).kind == "stdout"


@pytest.mark.parametrize(
    "path", ["/a.log", "/var/log/*.log", "/var/log/app-[0-9]?.txt", "/var//log/a", "/a b/c d"]
)
def test_absolute_paths_and_globs_are_taken_as_written(path: str) -> None:
    assert one({"pylog.logs.a": path}).path == path


@pytest.mark.parametrize("name", ["a", "A-b_9", "_", "-", "x" * MAX_LOG_NAME])
def test_names_accepted(name: str) -> None:
    assert one({f"pylog.logs.{name}": "stdout"}).name == name


def test_target_tags_format() -> None:
    d = one(
        {
            "pylog.logs.gc": "/logs/gc.log",
            "pylog.logs.gc.target": "jvm.gc-logs_1",
            "pylog.logs.gc.tags": "app=shop, env = prod ,,team=core,",
            "pylog.logs.gc.format": "json",
        }
    )
    assert d.target == "jvm.gc-logs_1"
    assert d.tags == (("app", "shop"), ("env", "prod"), ("team", "core"))
    assert d.format == "json"
    assert d.pattern is None


def test_regexp_format_compiles_the_pattern_with_re2() -> None:
    d = one(
        {
            "pylog.logs.a": "/a.log",
            "pylog.logs.a.format": "regexp",
            "pylog.logs.a.format.pattern": r"^(?P<level>[A-Z]+) (?P<msg>.*)$",
        }
    )
    assert d.format == "regexp"
    assert d.pattern is not None
    match = d.pattern.search("WARN disk full")
    assert match is not None and match.group("level") == "WARN"
    assert type(d.pattern).__module__.startswith("re2")


def test_pattern_is_not_stripped() -> None:
    pattern = r" (?P<x>\d+) "
    d = one(
        {
            "pylog.logs.a": "/a",
            "pylog.logs.a.format": "regexp",
            "pylog.logs.a.format.pattern": pattern,
        }
    )
    assert d.pattern is not None and d.pattern.pattern == pattern


@pytest.mark.parametrize("sub", ["target", "tags", "format", "format.pattern"])
def test_an_empty_sub_key_is_not_given(sub: str) -> None:
    d = one({"pylog.logs.a": "/a", f"pylog.logs.a.{sub}": "  " if sub != "format.pattern" else ""})
    assert (d.target, d.tags, d.format, d.pattern) == ("a", (), "none", None)


def test_format_none_is_explicit_too() -> None:
    assert one({"pylog.logs.a": "/a", "pylog.logs.a.format": "none"}).format == "none"


# -- env form --------------------------------------------------------------------


def test_env_form_declares_and_refines() -> None:
    d = one(
        env={
            "pylog_logs_access": "/var/log/access.log",
            "pylog_logs_access_target": "web-access",
            "pylog_logs_access_tags": "k=v",
            "pylog_logs_access_format": "regexp",
            "pylog_logs_access_format_pattern": "(?P<ip>\\S+)",
        }
    )
    assert (d.name, d.path, d.target, d.tags, d.format) == (
        "access",
        "/var/log/access.log",
        "web-access",
        (("k", "v"),),
        "regexp",
    )
    assert d.source == "env 'pylog_logs_access'"


def test_env_names_may_contain_underscores() -> None:
    d = one(env={"pylog_logs_my_app": "stdout", "pylog_logs_my_app_target": "t"})
    assert (d.name, d.target) == ("my_app", "t")


def test_env_sub_key_suffix_ends_the_name() -> None:
    """``x_target`` is the target of ``x``: a log cannot be named ``x_target`` in env."""
    message = refused(env={"pylog_logs_x_target": "t"})
    assert message == (
        "invalid env 'pylog_logs_x_target': no log 'x' is declared for it to refine "
        "(declare it with env 'pylog_logs_x': stdout or an absolute path, a glob allowed, "
        "such as /var/log/app/*.log)"
    )


def test_a_bare_suffix_is_a_name() -> None:
    assert one(env={"pylog_logs__tags": "stdout"}).name == "_tags"


def test_aliyun_prefix_in_labels_and_env() -> None:
    (a, b) = declare({"aliyun.logs.catalina": "stdout"}, {"aliyun_logs_access": "/a/*.log"})
    assert (a.name, a.kind, a.source) == ("access", "file", "env 'aliyun_logs_access'")
    assert (b.name, b.kind, b.source) == ("catalina", "stdout", "label 'aliyun.logs.catalina'")


def test_unrecognised_prefixes_are_ignored() -> None:
    assert declare({"other.logs.a": "relative"}, {"other_logs_a": ""}) == ()
    assert parse_declarations({"aliyun.logs.a": "/a"}, {}, ("pylog",)) == ()


def test_custom_prefixes() -> None:
    d = parse_declarations({"acme.logs.a": "/a"}, {"acme_logs_a_target": "t"}, ("acme",))[0]
    assert (d.name, d.path, d.target) == ("a", "/a", "t")


def test_prefix_with_a_dot() -> None:
    (d,) = parse_declarations({"com.acme.logs.a": "/a"}, {}, ("com.acme",))
    assert d.source == "label 'com.acme.logs.a'"


# -- precedence ------------------------------------------------------------------


def test_env_replaces_the_label_it_spells_key_by_key() -> None:
    d = one(
        {"pylog.logs.a": "/from/label", "pylog.logs.a.target": "label-topic"},
        {"pylog_logs_a": "/from/env"},
    )
    assert (d.path, d.target, d.source) == ("/from/env", "label-topic", "env 'pylog_logs_a'")


def test_label_and_env_under_one_prefix_make_one_declaration() -> None:
    d = one({"pylog.logs.a": "/a"}, {"pylog_logs_a_tags": "k=v"})
    assert d.tags == (("k", "v"),)


def test_first_prefix_wins_whole() -> None:
    d = one(
        {
            "pylog.logs.web": "/pylog.log",
            "aliyun.logs.web": "stdout",
            "aliyun.logs.web.target": "aliyun-topic",
        }
    )
    assert (d.kind, d.path, d.target, d.source) == (
        "file",
        "/pylog.log",
        "web",
        "label 'pylog.logs.web'",
    )


def test_prefix_order_is_the_setting_order() -> None:
    labels = {"pylog.logs.web": "/pylog.log", "aliyun.logs.web": "/aliyun.log"}
    (d,) = parse_declarations(labels, {}, ("aliyun", "pylog"))
    assert d.path == "/aliyun.log"


def test_first_prefix_label_wins_over_second_prefix_env() -> None:
    d = one({"pylog.logs.web": "/label.log"}, {"aliyun_logs_web": "/env.log"})
    assert d.path == "/label.log"


def test_a_shadowed_declaration_is_still_validated() -> None:
    message = refused({"pylog.logs.web": "/ok.log", "aliyun.logs.web": "relative.log"})
    assert message.startswith(
        "invalid label 'aliyun.logs.web': 'relative.log' is not an absolute path"
    )


def test_a_sub_key_cannot_refine_another_prefix_declaration() -> None:
    message = refused({"pylog.logs.web": "/ok.log", "aliyun.logs.web.target": "t"})
    assert message.startswith(
        "invalid label 'aliyun.logs.web.target': no log 'web' is declared for it to refine "
        "(declare it with label 'aliyun.logs.web': "
    )


def test_a_key_that_matches_two_prefixes_belongs_to_the_first() -> None:
    (d,) = parse_declarations({"x.logs.logs.a": "/a"}, {}, ("x.logs", "x"))
    assert d.name == "a"
    with pytest.raises(OptionError, match=r"'x\.logs\.logs\.a': unknown sub-key 'a'"):
        parse_declarations({"x.logs.logs.a": "/a"}, {}, ("x", "x.logs"))


def test_stdout_under_two_names_is_refused() -> None:
    message = refused({"pylog.logs.a": "stdout"}, {"aliyun_logs_b": "stdout"})
    assert message == (
        "stdout is declared by label 'pylog.logs.a' and by env 'aliyun_logs_b': a container's "
        "stdout goes to one log (declare it under one name)"
    )


def test_stdout_under_one_name_and_two_prefixes_is_one_log() -> None:
    d = one({"pylog.logs.out": "stdout", "aliyun.logs.out": "stdout"})
    assert d.source == "label 'pylog.logs.out'"


# -- every bad declaration -------------------------------------------------------

EXPECTED = "(expected stdout or an absolute path, a glob allowed, such as /var/log/app/*.log)"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_path(value: str) -> None:
    assert (
        refused({"pylog.logs.a": value})
        == f"invalid label 'pylog.logs.a': the value is empty {EXPECTED}"
    )


@pytest.mark.parametrize("value", ["logs/a.log", "a.log", "*.log", "STDOUT", "~/a.log", "./a"])
def test_relative_path(value: str) -> None:
    assert refused(env={"aliyun_logs_a": value}) == (
        f"invalid env 'aliyun_logs_a': {value!r} is not an absolute path {EXPECTED}"
    )


@pytest.mark.parametrize("value", ["/var/log/a\0.log", "\0/a", "/a\0"])
def test_nul_in_path(value: str) -> None:
    assert refused({"pylog.logs.a": value}) == (
        f"invalid label 'pylog.logs.a': the path contains a NUL character {EXPECTED}"
    )


@pytest.mark.parametrize("value", ["/", "/var/log/"])
def test_directory(value: str) -> None:
    assert refused({"pylog.logs.a": value}) == (
        f"invalid label 'pylog.logs.a': {value!r} ends with '/', so it names a directory "
        f"(expected a file or a glob of files, such as {value}*.log)"
    )


@pytest.mark.parametrize("value", ["/var/../etc/passwd", "/var/log/./a.log", "/..", "/a/.."])
def test_dot_components(value: str) -> None:
    assert refused({"pylog.logs.a": value}) == (
        f"invalid label 'pylog.logs.a': {value!r} has a '.' or '..' component "
        "(expected a path without them)"
    )


def test_dots_inside_names_of_files_are_fine() -> None:
    assert one({"pylog.logs.a": "/var/log/..hidden/.a..log"}).path == "/var/log/..hidden/.a..log"


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("pylog.logs.", ""),
        ("pylog.logs.a b", "a b"),
        ("pylog.logs.é", "é"),
        ("pylog.logs.a/b", "a/b"),
        ("pylog.logs." + "x" * (MAX_LOG_NAME + 1), "x" * (MAX_LOG_NAME + 1)),
    ],
)
def test_bad_name_in_label(key: str, name: str) -> None:
    assert refused({key: "/a"}) == (
        f"invalid label '{key}': log name {name!r} is not accepted "
        f"(expected 1 to {MAX_LOG_NAME} of A-Z a-z 0-9 _ -)"
    )


@pytest.mark.parametrize(("key", "name"), [("pylog_logs_", ""), ("pylog_logs_a.b", "a.b")])
def test_bad_name_in_env(key: str, name: str) -> None:
    assert refused(env={key: "/a"}) == (
        f"invalid env '{key}': log name {name!r} is not accepted "
        f"(expected 1 to {MAX_LOG_NAME} of A-Z a-z 0-9 _ -)"
    )


def test_a_bad_sub_key_name_is_reported_before_anything_else() -> None:
    assert refused({"pylog.logs.a!.target": "t"}).startswith(
        "invalid label 'pylog.logs.a!.target': log name 'a!' is not accepted"
    )


@pytest.mark.parametrize("sub", ["time_key", "", "format.time_key", "Target", "target.x", "tags."])
def test_unknown_sub_key(sub: str) -> None:
    key = f"pylog.logs.a.{sub}"
    assert refused({"pylog.logs.a": "/a", key: "x"}) == (
        f"invalid label '{key}': unknown sub-key {sub!r} "
        "(accepted: target, tags, format, format.pattern)"
    )


@pytest.mark.parametrize("sub", ["target", "tags", "format", "format.pattern"])
def test_sub_key_without_base(sub: str) -> None:
    assert refused({f"pylog.logs.a.{sub}": "x"}) == (
        f"invalid label 'pylog.logs.a.{sub}': no log 'a' is declared for it to refine "
        f"(declare it with label 'pylog.logs.a': stdout or an absolute path, a glob allowed, "
        "such as /var/log/app/*.log)"
    )


@pytest.mark.parametrize("target", ["a b", "a/b", ".", "..", "é", "x" * 250, "a:b"])
def test_bad_target(target: str) -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.target": target}) == (
        f"invalid label 'pylog.logs.a.target': {target!r} is not a valid Kafka topic name "
        "(expected 1 to 249 of A-Z a-z 0-9 . _ -, and not '.' or '..')"
    )


def test_longest_target() -> None:
    assert one({"pylog.logs.a": "/a", "pylog.logs.a.target": "t" * 249}).target == "t" * 249


@pytest.mark.parametrize("item", ["k", "=v", "k=", "k=v=w", " = "])
def test_tag_not_key_value(item: str) -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.tags": f"ok=1,{item}"}) == (
        f"invalid label 'pylog.logs.a.tags': {item.strip()!r} is not key=value "
        "(expected k1=v1,k2=v2)"
    )


@pytest.mark.parametrize("tag", ["a b", "a/b", "é", '"k"'])
def test_bad_tag_key(tag: str) -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.tags": f"{tag}=v"}) == (
        f"invalid label 'pylog.logs.a.tags': tag key {tag!r} is not accepted "
        "(expected A-Z a-z 0-9 . _ - in a key, as in k1=v1,k2=v2)"
    )


def test_tag_given_twice() -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.tags": "k=1,k=2"}) == (
        "invalid label 'pylog.logs.a.tags': tag 'k' is given twice"
    )


@pytest.mark.parametrize("fmt", ["xml", "JSON", "csv", "nginx", "regex"])
def test_unknown_format(fmt: str) -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.format": fmt}) == (
        f"invalid label 'pylog.logs.a.format': {fmt!r} is not a format "
        "(expected one of none, json, regexp)"
    )


def test_regexp_without_pattern() -> None:
    assert refused({"pylog.logs.a": "/a", "pylog.logs.a.format": "regexp"}) == (
        "invalid label 'pylog.logs.a.format': format regexp needs a pattern with named "
        "groups in the sub-key format.pattern"
    )


@pytest.mark.parametrize("fmt", [None, "none", "json"])
def test_pattern_without_regexp(fmt: str | None) -> None:
    labels = {"pylog.logs.a": "/a", "pylog.logs.a.format.pattern": "(?P<x>.)"}
    if fmt is not None:
        labels["pylog.logs.a.format"] = fmt
    assert refused(labels) == (
        "invalid label 'pylog.logs.a.format.pattern': a pattern is read with format regexp "
        f"only (the format of label 'pylog.logs.a' is {fmt or 'none'})"
    )


@pytest.mark.parametrize("pattern", ["(?P<x>a", r"(?P<x>a)\1", "(?=x)(?P<y>.)", "(?P<x>a{1001})"])
def test_pattern_that_does_not_compile(pattern: str) -> None:
    message = refused(
        env={
            "pylog_logs_a": "/a",
            "pylog_logs_a_format": "regexp",
            "pylog_logs_a_format_pattern": pattern,
        }
    )
    assert message.startswith(f"invalid env 'pylog_logs_a_format_pattern' {pattern!r}: ")
    assert message.endswith("(RE2 syntax is accepted: no backreferences or lookaround)")


@pytest.mark.parametrize("pattern", ["a+", "(a)(b)", " "])
def test_pattern_without_named_group(pattern: str) -> None:
    labels = {
        "pylog.logs.a": "/a",
        "pylog.logs.a.format": "regexp",
        "pylog.logs.a.format.pattern": pattern,
    }
    assert refused(labels) == (
        f"invalid label 'pylog.logs.a.format.pattern': {pattern!r} has no named group "
        "(expected groups such as (?P<level>[A-Z]+), which become the record's fields)"
    )


# -- hostile labels --------------------------------------------------------------


def test_value_length_limit() -> None:
    path = "/" + "a" * (MAX_DECLARATION_VALUE - 1)
    assert one({"pylog.logs.a": path}).path == path
    for key in ("pylog.logs.a", "pylog.logs.a.tags"):
        assert refused({"pylog.logs.a": "/a", key: path + "b"}) == (
            f"invalid label '{key}': value is {MAX_DECLARATION_VALUE + 1} characters long, "
            f"the limit is {MAX_DECLARATION_VALUE}"
        )


def test_declared_logs_limit() -> None:
    labels = {f"pylog.logs.l{i:02}": f"/l{i}.log" for i in range(MAX_DECLARED_LOGS)}
    assert len(declare(labels)) == MAX_DECLARED_LOGS
    # The same names again under the other prefix and in env are not more logs.
    more = {f"aliyun.logs.l{i:02}": "/x" for i in range(MAX_DECLARED_LOGS)}
    assert len(declare({**labels, **more}, {"pylog_logs_l00_tags": "k=v"})) == MAX_DECLARED_LOGS
    labels["pylog.logs.zz"] = "/one-more.log"
    assert refused(labels) == (
        f"invalid label 'pylog.logs.zz': more than {MAX_DECLARED_LOGS} logs are declared, "
        f"the limit is {MAX_DECLARED_LOGS} per container"
    )


def test_thousands_of_labels_fail_fast_with_a_short_message() -> None:
    labels = {f"pylog.logs.n{i}": "/a" for i in range(100_000)}
    message = refused(labels)
    assert "the limit is 32 per container" in message and len(message) < 200


def test_a_huge_key_is_cut_in_the_message() -> None:
    key = "pylog.logs." + "x" * 100_000
    message = refused({key: "/a"})
    assert len(message) < 600
    assert message.startswith("invalid label 'pylog.logs.xxx")


# -- the setting -----------------------------------------------------------------


def test_prefix_setting_default() -> None:
    assert Settings.from_env({}).log_prefixes == DEFAULT_LOG_PREFIXES == ("pylog", "aliyun")


@pytest.mark.parametrize(
    ("text", "prefixes"),
    [
        ("aliyun", ("aliyun",)),
        (" aliyun , pylog ,", ("aliyun", "pylog")),
        ("pylog,pylog,acme", ("pylog", "acme")),
        ("com.acme,my_co,x-y", ("com.acme", "my_co", "x-y")),
    ],
)
def test_prefix_setting(text: str, prefixes: tuple[str, ...]) -> None:
    assert Settings.from_env({"PYLOG_LOG_PREFIX": text}).log_prefixes == prefixes


@pytest.mark.parametrize("text", [",", " , ", "a b", ".pylog", "pylog/x", "é", "x" * 65])
def test_bad_prefix_setting(text: str) -> None:
    with pytest.raises(OptionError) as exc:
        Settings.from_env({"PYLOG_LOG_PREFIX": text})
    assert str(exc.value) == (
        "PYLOG_LOG_PREFIX must be comma-separated label prefixes such as pylog,aliyun, "
        f"got {text.strip()!r}"
    )
