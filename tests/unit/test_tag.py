import dataclasses

import pytest
from pylog.models import ContainerInfo
from pylog.tag import MAX_TEMPLATE, TagTemplate, TemplateError, unquote

INFO = ContainerInfo(
    container_id="0123456789abcdef" * 4,
    container_name="/web-1",
    container_image_id="sha256:" + "fedcba9876543210" * 4,
    container_image_name="busybox:latest",
    container_entrypoint="sh",
    container_args=["-c", "echo hi"],
    container_labels={"app": "shop", "team x": "blue"},
    daemon_name="docker",
)


def with_labels(extra: dict[str, str]) -> ContainerInfo:
    return dataclasses.replace(INFO, container_labels={**INFO.container_labels, **extra})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.ID}}", "0123456789ab"),
        ("{{.FullID}}", "0123456789abcdef" * 4),
        ("{{.Name}}", "web-1"),
        ("{{.ImageID}}", "fedcba987654"),
        ("{{.ImageName}}", "busybox:latest"),
        ("{{.DaemonName}}/{{.Name}}", "docker/web-1"),
        ("{{ .Name | upper }}", "WEB-1"),
        ('{{index .ContainerLabels "app"}}-{{.ID}}', "shop-0123456789ab"),
        ('{{index .ContainerLabels "team x"}}', "blue"),
        ('{{index .ContainerLabels "missing"}}', ""),
        ("{{.Command}}", "sh -c echo hi"),
        ("plain", "plain"),
        ("{{.ContainerName}}", "/web-1"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert TagTemplate(template).render(INFO) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{.Nope}}",
        "{{.Name | exec}}",
        '{{printf "%s" .Name}}',
        "{{call .Name}}",
        "{{.Name",
        "{{range .ContainerLabels}}x{{end}}",
        "{{index .ContainerEnv 0}}",
    ],
)
def test_rejects_anything_beyond_metadata(template: str) -> None:
    with pytest.raises(TemplateError):
        TagTemplate(template)


# -- hostile templates: parsed in linear time, long ones refused --------------------

HOSTILE = [
    pytest.param("{{" + " " * 100_000, id="open-then-spaces"),
    pytest.param("{{" + " " * 100_000 + "}}", id="spaces-in-action"),
    pytest.param("{{-" + " " * 100_000 + "-}}", id="spaces-between-trim-markers"),
    pytest.param("{{" * 50_000, id="many-opens"),
    pytest.param("{{" * 50_000 + "}}" * 50_000, id="nested"),
    pytest.param("}}" * 50_000, id="many-closes"),
    pytest.param('{{index .ContainerLabels "' + "\\" * 100_001, id="escapes-unclosed"),
]


@pytest.mark.timeout(5)
@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_template_is_refused_promptly(template: str) -> None:
    with pytest.raises(TemplateError):
        TagTemplate(template)


@pytest.mark.timeout(5)
@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_template_parses_in_linear_time_without_the_limit(template: str) -> None:
    with pytest.raises(TemplateError):
        TagTemplate(template, limit=None)


@pytest.mark.timeout(5)
def test_long_valid_template_parses_without_the_limit() -> None:
    text = "{{ .Name }}-" * 20_000
    assert TagTemplate(text, limit=None).render(INFO) == "web-1-" * 20_000


def test_length_limit_is_inclusive() -> None:
    assert TagTemplate("x" * MAX_TEMPLATE).render(INFO) == "x" * MAX_TEMPLATE
    with pytest.raises(TemplateError, match=r"1025 characters long, the limit is 1024"):
        TagTemplate("x" * (MAX_TEMPLATE + 1))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Trim markers are delimiters only: the text around them is kept.
        ("a {{- .Name -}} b", "a web-1 b"),
        ("{{-.Name-}}", "web-1"),
        ("{{.Name|upper|lower}}", "web-1"),
        ("{{\n.Name\n}}", "web-1"),
        # "}}" after an action is literal text, as before.
        ("a}}{{.Name}}", "a}}web-1"),
        # Inside a string, "}}" and "|" belong to the string, as in Go.
        ('{{index .ContainerLabels "a}}b"}}', "braces"),
        ('{{index .ContainerLabels "a|b" | upper}}', "PIPE"),
        ("{{index .ContainerLabels `team x`}}", "blue"),
        ("{{index  .ContainerLabels\t`a|b`}}", "pipe"),
    ],
)
def test_scanner_edge_cases(template: str, expected: str) -> None:
    info = with_labels({"a}}b": "braces", "a|b": "pipe"})
    assert TagTemplate(template).render(info) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{.Name}}}}",
        "{{.Name}}{{",
        "{{}}",
        "{{ - }}",
        "{{.Name-x}}",
        '{{index .ContainerLabels "a}}',
        '{{index .ContainerLabels "a" "b"}}',
        '{{index .ContainerLabels "a"x}}',
        "{{index .ContainerLabels `a}}",
        '{{index .ContainerLabels "a\nb"}}',
        '{{index.ContainerLabels "a"}}',
        '{{index .ContainerLabels"a"}}',
        "{{index .ContainerLabels app}}",
        "{{.Name|}}",
        "{{.Näme}}",
    ],
)
def test_scanner_rejects(template: str) -> None:
    with pytest.raises(TemplateError):
        TagTemplate(template)


# -- label keys are Go string literals ----------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"app"', "app"),
        ('""', ""),
        ('"café"', "café"),
        ('"\\a\\b\\f\\n\\r\\t\\v\\\\\\""', '\a\b\f\n\r\t\v\\"'),
        ('"caf\\xc3\\xa9"', "café"),
        ('"caf\\303\\251"', "café"),
        ('"\\101\\x42"', "AB"),
        ('"caf\\u00e9"', "café"),
        ('"\\U0001F600"', "\U0001f600"),
        ('"\\u00E9"', "é"),
        ("`raw \\n\"'`", "raw \\n\"'"),
        ("`a\r\nb`", "a\nb"),
        ("``", ""),
    ],
)
def test_unquote_go_string_literals(literal: str, value: str) -> None:
    assert unquote(literal) == value


@pytest.mark.parametrize(
    "literal",
    [
        '"\\x"',  # too few hex digits
        '"\\xg0"',
        '"\\N{EM DASH}"',  # Python's escape, not Go's
        '"\\\'"',  # \' is for rune literals only
        '"\\q"',
        '"\\7"',  # octal takes exactly three digits
        '"\\400"',  # octal above 377
        '"\\u12"',
        '"\\u+123"',
        '"\\ud800"',  # a surrogate is not a character
        '"\\U00110000"',
        '"\\xff"',  # not UTF-8
        '"a',
        '"a"b"',
        "'a'",
        "a",
        '"a\nb"',
        "`a`b`",
    ],
)
def test_unquote_rejects(literal: str) -> None:
    with pytest.raises(TemplateError):
        unquote(literal)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ('"caf\\xc3\\xa9"', "non-ascii"),
        ('"café"', "non-ascii"),
        ('"caf\\u00e9"', "non-ascii"),
        ('"team\\x20x"', "blue"),
        ('"\\x"', None),
        ('"\\N{LATIN SMALL LETTER E WITH ACUTE}"', None),
    ],
)
def test_label_key_escapes_in_templates(key: str, expected: str | None) -> None:
    info = with_labels({"café": "non-ascii"})
    template = "{{index .ContainerLabels " + key + "}}"
    if expected is None:
        with pytest.raises(TemplateError):
            TagTemplate(template)
    else:
        assert TagTemplate(template).render(info) == expected
