"""The LogDriver HTTP API: decode the request, call the service, encode the reply.

dockerd sends ``POST /LogDriver.<Method>`` with a JSON body whose content type
is ``application/vnd.docker.plugins.v1.2+json`` and reads errors from ``Err``,
either in a 200 reply or in the JSON body of any other status. No logic lives here.

Every request gets a JSON answer, whatever goes wrong: a request pylog refuses
gets its reason in ``Err``; an unexpected exception is logged with its traceback
in pylog's log and answered 500 with a short ``Err`` (never the traceback). A
ReadLogs error is never a 200: dockerd decodes any 200 body of ReadLogs as
log frames, so an ``Err`` there would be read as garbage, not shown.
"""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .models import BusyError, RequestError
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
    except RecursionError:
        raise RequestError("request body is nested too deeply") from None
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
        # poll, not select: select refuses descriptors above 1023, and pylog runs
        # with thousands open: every such stream ended at its first check.
        poller = select.poll()
        try:
            poller.register(sock, select.POLLIN)
            if not poller.poll(0):
                return True
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except (OSError, ValueError):
            return False

    return alive


def create_app(service: LoggingService) -> Flask:
    app = Flask("pylog")
    # Checked on Content-Length before the body is read (and while reading one sent
    # chunked): a 100 MB body cost 400 MB of memory once decoded.
    app.config["MAX_CONTENT_LENGTH"] = service.settings.max_request

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> Response:
        if request.path == "/LogDriver.ReadLogs":
            return _reply({"Err": str(exc)}, 503 if isinstance(exc, BusyError) else 400)
        return _reply({"Err": str(exc)})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Flask's own refusals (unknown path, wrong method, body too large) in
        # the protocol's shape instead of an HTML page.
        code = exc.code or 500
        if code == 413:
            message = f"request body larger than {service.settings.max_request} bytes"
        else:
            message = f"{request.method} {request.path}: {exc.name}"
        return _reply({"Err": message}, code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("%s failed", request.path, exc_info=exc)
        return _reply(
            {"Err": f"pylog failed on {request.path}: {type(exc).__name__} (see pylog's log)"},
            500,
        )

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
