"""The LogDriver HTTP API: decode the request, call the service, encode the reply.

dockerd sends ``POST /LogDriver.<Method>`` with a JSON body whose content type
is ``application/vnd.docker.plugins.v1.2+json`` and reads errors from ``Err``
(see shared/docs/logdriver-protocol.md). No logic lives here.
"""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, request

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .models import RequestError
from .service import LoggingService

log = logging.getLogger(__name__)

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
STREAM_CONTENT_TYPE = "application/x-json-stream"


def _body() -> Any:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        obj = json.loads(raw)
    except ValueError:
        raise RequestError("request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise RequestError("request body must be a JSON object")
    return obj


def _reply(obj: dict[str, Any], status: int = 200) -> Response:
    resp = jsonify(obj)
    resp.status_code = status
    resp.content_type = PLUGIN_CONTENT_TYPE
    return resp


def _peer_alive(environ: dict[str, Any]) -> Callable[[], bool]:
    """A check that the client (dockerd) still holds the connection, for follow streams."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: True

    def alive() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except (OSError, ValueError):
            return False

    return alive


def create_app(service: LoggingService) -> Flask:
    app = Flask("pylog")

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> Response:
        return _reply({"Err": str(exc)})

    @app.post("/Plugin.Activate")
    def activate() -> Response:
        return _reply({"Implements": ["LogDriver"]})

    @app.post("/LogDriver.StartLogging")
    def start_logging() -> Response:
        body = _body()
        service.start_logging(body.get("File"), body.get("Info"))
        return _reply({"Err": ""})

    @app.post("/LogDriver.StopLogging")
    def stop_logging() -> Response:
        try:
            body = _body()
        except RequestError:
            body = {}
        service.stop_logging(body.get("File"))
        return _reply({"Err": ""})

    @app.post("/LogDriver.Capabilities")
    def capabilities() -> Response:
        return _reply({"Cap": {"ReadLogs": True}, "Err": ""})

    @app.post("/LogDriver.ReadLogs")
    def read_logs() -> Response:
        body = _body()
        frames: Iterator[bytes] = service.read_logs(
            body.get("Info"), body.get("Config"), _peer_alive(request.environ)
        )
        return Response(frames, status=200, content_type=STREAM_CONTENT_TYPE)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics(), status=200, content_type=METRICS_CONTENT_TYPE)

    @app.get("/status")
    def status() -> Response:
        return jsonify(service.status())

    return app
