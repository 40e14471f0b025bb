import pytest
from pylog.models import ContainerInfo
from pylog.tag import TagTemplate, TemplateError

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
