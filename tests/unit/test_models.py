import pytest
from pylog.models import ContainerInfo, ReadConfig, RequestError


def test_info_from_dockerd_json() -> None:
    info = ContainerInfo.from_json(
        {
            "Config": {"tag": "x"},
            "ContainerID": "a" * 64,
            "ContainerName": "/c",
            "ContainerEntrypoint": "sh",
            "ContainerArgs": ["-c", "x"],
            "ContainerImageID": "sha256:" + "b" * 64,
            "ContainerImageName": "busybox",
            "ContainerCreated": "2024-01-01T00:00:00.123456789Z",
            "ContainerEnv": ["A=1", "B=x=y", "NOEQ"],
            "ContainerLabels": {"l": "v"},
            "LogPath": "",
            "DaemonName": "docker",
        }
    )
    assert info.name == "c"
    assert info.env == {"A": "1", "B": "x=y"}
    assert ContainerInfo.from_json(info.to_json()) == info


def test_info_tolerates_nulls() -> None:
    info = ContainerInfo.from_json(
        {"ContainerID": "a" * 64, "ContainerEnv": None, "ContainerLabels": None}
    )
    assert info.env == {}
    assert info.container_labels == {}


@pytest.mark.parametrize(
    "cid",
    ["", "../etc", "a/b", ".hidden", "a" * 200, "x/../../y", "..", "a..b", "abc\n", "a\x00b"],
)
def test_container_id_cannot_escape_the_log_folder(cid: str) -> None:
    with pytest.raises(RequestError):
        ContainerInfo.from_json({"ContainerID": cid})


@pytest.mark.parametrize(
    "bad", [[], "x", {"ContainerID": 5}, {"ContainerID": "a" * 64, "Config": {"a": 1}}]
)
def test_info_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(RequestError):
        ContainerInfo.from_json(bad)


def test_read_config() -> None:
    cfg = ReadConfig.from_json(
        {
            "Since": "0001-01-01T00:00:00Z",
            "Until": "1970-01-01T00:00:01.5Z",
            "Tail": 10,
            "Follow": True,
        }
    )
    assert cfg == ReadConfig(since_ns=None, until_ns=1_500_000_000, tail=10, follow=True)
    assert ReadConfig.from_json(None) == ReadConfig()


@pytest.mark.parametrize("bad", [{"Tail": "10"}, {"Follow": 1}, {"Since": "soon"}, []])
def test_read_config_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(RequestError):
        ReadConfig.from_json(bad)
