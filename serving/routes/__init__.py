"""One router per resource: health (open), model, forecast, portfolio, admin.

A new route joins a router (or a new router joins :data:`ROUTERS`) and gets, with no more code: the request id,
the body-size limit, metrics and the access log (the middleware), JSON errors (the handlers), and auth (the
router's dependency). It documents its errors with :func:`errors_doc`. Routers with a JSON body use
:class:`JsonRoute`.

Routes and dependencies are ``async def`` and compute on the event loop's thread. The work is CPU-bound Python
that holds the GIL, so FastAPI's thread pool (where it runs plain ``def``) bought no parallelism: it cost a thread
hop per dependency and route (five a request), and two threads taking turns at the GIL, every turn up to the
5 ms switch interval, stretched requests that overlapped into queues that took a second to drain. The
revaluation's own pool still runs its numpy blocks on every core. Throughput beyond one core: more ``forecaster
serve`` processes behind a load balancer.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from serving.schemas import ErrorResponse

_WHY = {
    400: "malformed JSON or header (code bad_request)",
    401: "missing or unknown API key (code unauthorized)",
    403: "the key lacks the route's role (code forbidden)",
    413: "body, bars or positions over the server's limits (payload_too_large, too_many_rows, too_many_positions)",
    422: "the body breaks the schema (validation_error) or the data contract / the model refuse it (invalid_input)",
    500: "a bug (code internal_error): quote the request id",
    503: "no model is loaded (code model_unavailable)",
}


def errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of these error statuses, all :class:`~serving.schemas.ErrorResponse`."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in (*statuses, 500)}


class JsonRoute(APIRoute):
    """A route whose JSON body pydantic-core validates straight from the bytes (``model_validate_json``).

    FastAPI parses a body with ``json.loads`` and then validates the Python objects: for 1,440 bars that is about
    9 ms against 1.6 ms. The model is put where FastAPI looks for the parsed JSON (``request._json``, Starlette's
    cache of ``Request.json()``), and FastAPI's own validation then passes the model instance through unchanged.
    A body that fails is left to FastAPI, which parses it again and answers as always (after auth: an
    unauthenticated client gets 401, not the schema's errors).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        model = self.body_field.field_info.annotation if self.body_field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return handler

        async def validated_then_handled(request: Request) -> Response:
            if _is_json(request.headers.get("content-type")):
                raw = await request.body()
                if raw:
                    try:
                        request._json = model.model_validate_json(raw)  # Starlette's json() cache
                    except ValidationError:
                        pass  # FastAPI parses the body again and answers its errors in its own order
            return await handler(request)

        return validated_then_handled


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read a body of this content type as JSON (``application/json``, ``...+json``)."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
