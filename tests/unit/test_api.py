"""The HTTP shapes dockerd depends on (shared/docs/logdriver-protocol.md)."""

import json
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from pylog.api import create_app
from pylog.framing import FrameDecoder, encode_entries
from pylog.models import Entry
from pylog.service import LoggingService

from .conftest import Fifo, wait_for

CT = "application/vnd.docker.plugins.v1.2+json"
CID = "f" * 64


@pytest.fixture
def client(service: LoggingService) -> Iterator[FlaskClient]:
    yield create_app(service).test_client()


def post(
    client: FlaskClient, method: str, body: object = None, raw: bytes | None = None
) -> tuple[int, dict[str, object]]:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    resp = client.post(f"/{method}", data=data, headers={"Content-Type": CT})
    return resp.status_code, json.loads(resp.data)


def test_activate_for_legacy_socket_plugins(client: FlaskClient) -> None:
    assert post(client, "Plugin.Activate") == (200, {"Implements": ["LogDriver"]})


def test_capabilities_shape(client: FlaskClient) -> None:
    assert post(client, "LogDriver.Capabilities") == (200, {"Cap": {"ReadLogs": True}, "Err": ""})


def test_start_read_stop(
    client: FlaskClient, service: LoggingService, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f")
    status, body = post(
        client,
        "LogDriver.StartLogging",
        {"File": str(fifo.path), "Info": {"ContainerID": CID, "Config": {}}},
    )
    assert (status, body) == (200, {"Err": ""})
    fifo.write(encode_entries([Entry("stdout", 7, b"hello"), Entry("stderr", 8, b"bye")]))
    wait_for(lambda: (service.store.directory(CID) / "json.log").stat().st_size > 0)
    wait_for(lambda: (service.store.directory(CID) / "json.log").read_bytes().count(b"\n") == 2)
    resp = client.post(
        "/LogDriver.ReadLogs",
        data=json.dumps(
            {
                "Info": {"ContainerID": CID},
                "Config": {
                    "Tail": -1,
                    "Follow": False,
                    "Since": "0001-01-01T00:00:00Z",
                    "Until": "0001-01-01T00:00:00Z",
                },
            }
        ),
        headers={"Content-Type": CT},
    )
    assert resp.status_code == 200
    got = FrameDecoder().feed(resp.data)
    # Every line ends with \n and the source is exactly stdout/stderr, or dockerd drops it.
    assert got == [Entry("stdout", 7, b"hello\n"), Entry("stderr", 8, b"bye\n")]
    assert post(client, "LogDriver.StopLogging", {"File": str(fifo.path)}) == (200, {"Err": ""})


def test_start_errors_come_back_in_err(
    client: FlaskClient, make_fifo: Callable[[str], Fifo]
) -> None:
    fifo = make_fifo("f")
    status, body = post(
        client,
        "LogDriver.StartLogging",
        {"File": str(fifo.path), "Info": {"ContainerID": CID, "Config": {"nope": "1"}}},
    )
    assert status == 200
    assert "nope" in str(body["Err"])


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1,2]",
        b'"str"',
        json.dumps({"File": "/etc/passwd", "Info": {"ContainerID": CID}}).encode(),
        json.dumps({"Info": {"ContainerID": "../../x"}}).encode(),
        json.dumps({"File": 3}).encode(),
    ],
)
def test_malformed_start_requests_get_a_clear_error(client: FlaskClient, raw: bytes) -> None:
    status, body = post(client, "LogDriver.StartLogging", raw=raw)
    assert status == 200
    assert body["Err"]


def test_stop_logging_never_fails(client: FlaskClient) -> None:
    assert post(client, "LogDriver.StopLogging", raw=b"garbage") == (200, {"Err": ""})
    assert post(client, "LogDriver.StopLogging", {"File": "/run/docker/logging/unknown"}) == (
        200,
        {"Err": ""},
    )


def test_read_logs_bad_request_is_an_error_not_a_stream(client: FlaskClient) -> None:
    status, body = post(
        client, "LogDriver.ReadLogs", {"Info": {"ContainerID": "a/b"}, "Config": {}}
    )
    assert status == 200 and "ContainerID" in str(body["Err"])
