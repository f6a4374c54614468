"""The request middleware (pure ASGI, outermost): request id, body-size limit, metrics, access log, last resort.

For every HTTP request it

1. takes the client's ``X-Request-ID`` when it is a plain token (letters, digits, ``._:-``, at most 128), else
   makes one; it is in ``request.state.request_id``, in every error body and in the ``X-Request-ID`` header;
2. refuses a body over ``max_body_bytes`` with 413 ``payload_too_large`` before any of it is parsed (by its
   ``Content-Length``, or by counting what arrives), else hands the app the body it read;
3. answers 500 ``internal_error`` (no traceback: that goes to the server log with the request id) when the app
   raises, so a client never sees a stack trace;
4. counts the request and its latency per route template and status, and writes one access-log line. The
   template is the one the router matched (``scope["route"]``); a request it never matched (404, or one refused
   here for its size) counts as ``<unmatched>``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.errors import ErrorCode, error_response
from serving.logs import ACCESS_LOGGER
from serving.metrics import UNMATCHED, Metrics

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _TooLarge(Exception):
    pass


class RequestContextMiddleware:
    """See the module docstring."""

    def __init__(self, app: Any, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start = time.perf_counter()
        sent = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"], sent["started"] = message["status"], True
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER.encode()]
                message["headers"] = [*headers, (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            await self.app(scope, _replay(body, receive), send_with_id)
        except _TooLarge:
            message = (
                f"the request body exceeds {self.max_body_bytes:,} bytes (the server's --max-body-bytes): send fewer "
                "bars (the model needs only GET /v1/model's min_rows) or fewer positions"
            )
            await error_response(413, ErrorCode.PAYLOAD_TOO_LARGE, message, request_id)(scope, receive, send_with_id)
        except _BadLength:
            message = "the Content-Length header must be a whole number of bytes"
            await error_response(400, ErrorCode.BAD_REQUEST, message, request_id)(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s %s %s failed", request_id, scope.get("method"), scope.get("path"))
            if not sent["started"]:
                message = f"internal error; quote request id {request_id} when you report it"
                response = error_response(500, ErrorCode.INTERNAL_ERROR, message, request_id)
                await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            status = int(sent["status"])
            route = route_template(scope)
            self.metrics.observe_request(scope.get("method", "?"), route, status, seconds)
            access_log.info(
                "%s %s %d",
                scope.get("method"),
                route,
                status,
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "route": route,
                    "path": scope.get("path"),
                    "status": status,
                    "latency_ms": round(seconds * 1000.0, 3),
                    "model_version": state.get("model_version"),
                    "client": (scope.get("client") or ("?",))[0],
                },
            )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _BadLength(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise _BadLength from None
            if length < 0:
                raise _BadLength
            return length
    return None


def route_template(scope: Scope) -> str:
    """The template of the route the router matched (``/v1/forecast``; also on 405), else :data:`UNMATCHED`."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            if _TOKEN.match(text):
                return text
    return uuid.uuid4().hex


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the client's later messages (disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
