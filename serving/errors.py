"""Errors as clients see them: JSON ``{"code", "message", "request_id", "details"}`` with a stable ``code``.

A route raises :class:`ApiError` (or lets a :class:`~forecaster.errors.ForecasterError` from the model, the
portfolio validator or the drift engine through: that is the client's input, 422 ``invalid_input``). Anything
else is a bug: the request middleware answers 500 ``internal_error`` and logs the traceback on the server only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from forecaster.errors import ForecasterError

log = logging.getLogger(__name__)

MAX_MESSAGE = 4000  # characters of an error message sent back; the rest is cut (the server log has it whole)
MAX_DETAILS = 50  # validation errors listed per response


class ErrorCode(StrEnum):
    """The stable ``code`` of every error response (clients branch on it, never on the message)."""

    BAD_REQUEST = "bad_request"  # 400: malformed JSON or header
    UNAUTHORIZED = "unauthorized"  # 401: no or unknown API key
    FORBIDDEN = "forbidden"  # 403: a valid key without the route's role
    NOT_FOUND = "not_found"  # 404
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    PAYLOAD_TOO_LARGE = "payload_too_large"  # 413: body over max_body_bytes
    TOO_MANY_ROWS = "too_many_rows"  # 413: more bars than max_rows
    TOO_MANY_POSITIONS = "too_many_positions"  # 413: more positions than max_positions
    VALIDATION_ERROR = "validation_error"  # 422: the body breaks the schema (details list each field)
    INVALID_INPUT = "invalid_input"  # 422: schema-valid, but the data contract, the model or the book refuse it
    MODEL_UNAVAILABLE = "model_unavailable"  # 503: no model loaded (yet)
    INTERNAL_ERROR = "internal_error"  # 500: a bug; quote the request id


_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    422: ErrorCode.VALIDATION_ERROR,
    503: ErrorCode.MODEL_UNAVAILABLE,
}


class ApiError(Exception):
    """An error answered as it is: HTTP ``status``, stable ``code``, a message that says what to fix."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def error_body(
    code: ErrorCode, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON body of an error (:class:`serving.schemas.ErrorResponse`)."""
    text = message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + " …[cut]"
    return {"code": code.value, "message": text, "request_id": request_id, "details": details}


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    request_id: str | None,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, request_id, details), status_code=status, headers=headers)


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every anticipated error as JSON with a stable code (module docstring)."""

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, request_id_of(request), details=exc.details, headers=exc.headers
        )

    async def invalid_input(request: Request, exc: ForecasterError) -> JSONResponse:
        log.info("request %s refused: %s", request_id_of(request), exc)
        return error_response(422, ErrorCode.INVALID_INPUT, str(exc), request_id_of(request))

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(
                400, ErrorCode.BAD_REQUEST, "the body is not valid JSON: send a JSON object", request_id_of(request)
            )
        details = [_detail(e) for e in errors[:MAX_DETAILS]]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(str(part) for part in first["loc"]) or "the request"
        more = f" ({len(errors) - 1} more in details)" if len(errors) > 1 else ""
        message = f"{where}: {first['message']}{more}"
        return error_response(422, ErrorCode.VALIDATION_ERROR, message, request_id_of(request), details=details)

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST)
        message = exc.detail if isinstance(exc.detail, str) else code.value.replace("_", " ")
        return error_response(exc.status_code, code, message, request_id_of(request), headers=exc.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ForecasterError, invalid_input)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _detail(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error without its ``input`` and ``ctx`` (they can echo a whole body or hold exceptions)."""
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    return {"loc": loc, "message": str(error.get("msg", "invalid")), "type": str(error.get("type", "value_error"))}
