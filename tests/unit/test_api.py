"""The HTTP shapes dockerd depends on (docs/logdriver-protocol.md)."""

import json
import os
import resource
import socket
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from pylog.api import _peer_alive, create_app
from pylog.models import Entry
from pylog.service import LoggingService

from ..helpers import BufferedDecoder, Fifo, encode_entries, wait_for

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
    got = BufferedDecoder().feed(resp.data)
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


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"Info": {"ContainerID": "a/b"}, "Config": {}}).encode(),
        json.dumps({"Info": {"ContainerID": "abc\n"}, "Config": {}}).encode(),
        json.dumps({"Info": {"ContainerID": CID}, "Config": {"Tail": "x"}}).encode(),
        b"[" * 100_000,
        b"{oops",
    ],
)
def test_read_logs_errors_are_not_a_200_stream(client: FlaskClient, raw: bytes) -> None:
    # dockerd decodes any 200 body of ReadLogs as log frames: an Err must come
    # with another status to be seen at all.
    status, body = post(client, "LogDriver.ReadLogs", raw=raw)
    assert status == 400 and body["Err"]


def test_nul_in_file_is_a_clear_error(client: FlaskClient, service: LoggingService) -> None:
    file = str(service.settings.fifo_root / "a\x00b")
    status, body = post(
        client, "LogDriver.StartLogging", {"File": file, "Info": {"ContainerID": CID}}
    )
    assert status == 200 and "NUL" in str(body["Err"])


@pytest.mark.parametrize("method", ["LogDriver.StartLogging", "LogDriver.StopLogging"])
def test_deeply_nested_bodies_are_refused(client: FlaskClient, method: str) -> None:
    status, body = post(client, method, raw=b'{"File":' + b"[" * 100_000)
    assert status == 200
    assert method.endswith("StopLogging") or "nested" in str(body["Err"])


def test_unexpected_exceptions_answer_err_and_log_the_traceback(
    client: FlaskClient,
    service: LoggingService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(file: object, info: object) -> None:
        raise KeyError("secret-ish detail")

    monkeypatch.setattr(service, "start_logging", boom)
    resp = client.post("/LogDriver.StartLogging", data=b"{}", headers={"Content-Type": CT})
    assert resp.status_code == 500
    body = json.loads(resp.data)
    assert "KeyError" in body["Err"] and "StartLogging" in body["Err"]
    assert b"Traceback" not in resp.data and b"secret-ish" not in resp.data
    assert any(r.exc_info and "secret-ish" in str(r.exc_info[1]) for r in caplog.records)


def test_unknown_paths_answer_json(client: FlaskClient) -> None:
    status, body = post(client, "LogDriver.Nope")
    assert status == 404 and "Not Found" in str(body["Err"])


def test_bodies_over_the_limit_are_refused(client: FlaskClient, service: LoggingService) -> None:
    limit = service.settings.max_request
    status, body = post(client, "LogDriver.StartLogging", raw=b" " * (limit + 1))
    assert status == 413 and str(limit) in str(body["Err"])


def test_a_large_real_info_fits_under_the_limit(
    client: FlaskClient, make_fifo: Callable[[str], Fifo]
) -> None:
    # Linux caps a process's args and env at about 2 MiB in all; labels have no
    # such cap, but 2 MiB of them is far beyond any real container.
    fifo = make_fifo("f")
    env = [f"VAR{i}={'v' * 1000}" for i in range(2000)]
    labels = {f"label{i}": "l" * 1000 for i in range(2000)}
    info = {"ContainerID": CID, "Config": {}, "ContainerEnv": env, "ContainerLabels": labels}
    raw = json.dumps({"File": str(fifo.path), "Info": info}).encode()
    assert len(raw) > 4_000_000
    assert post(client, "LogDriver.StartLogging", raw=raw) == (200, {"Err": ""})


@pytest.mark.parametrize("high", [False, True])
def test_a_follower_is_alive_until_its_client_goes_whatever_its_descriptor(high: bool) -> None:
    # pylog raises its open-file limit and holds thousands of descriptors: a
    # follower's socket above 1023 once counted as gone at once (select's limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if high and min(soft, hard) < 2100:
        pytest.skip("needs an open-file limit above 2100")
    ours, theirs = socket.socketpair()
    if high:
        fd = os.dup2(ours.fileno(), 2000)
        ours.close()
        ours = socket.socket(fileno=fd)
    try:
        alive = _peer_alive({"gunicorn.socket": ours})
        assert alive()
        theirs.close()
        assert not alive()
    finally:
        ours.close()
