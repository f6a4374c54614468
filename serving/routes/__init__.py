"""One router per resource: health (open), model, forecast, portfolio, admin.

A new route joins a router (or a new router joins :data:`ROUTERS`) and gets, with no more code: the request id,
the body-size limit, metrics and the access log (the middleware), JSON errors (the handlers), and auth (the
router's dependency). It documents its errors with :func:`errors_doc`.
"""

from __future__ import annotations

from typing import Any

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
