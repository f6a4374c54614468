"""API keys: ``Authorization: Bearer KEY`` (DESIGN section 9).

Two roles: ``client`` (the keys of ``FORECASTER_API_KEYS``) for the ``/v1`` routes, ``admin`` (the keys of
``FORECASTER_ADMIN_KEYS``) for the admin routes and every client route too. Missing or unknown key: 401
``unauthorized``; a client key on an admin route: 403 ``forbidden``. Every configured key is compared with
:func:`hmac.compare_digest` (no early exit), so the time taken says nothing about how much of a key matched or
which key it was. Keys are never logged.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.errors import ApiError, ErrorCode

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key: FORECASTER_API_KEYS for /v1 routes, FORECASTER_ADMIN_KEYS for /v1/admin (and all /v1)",
)


class Role(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"


def matches(presented: str, keys: tuple[str, ...]) -> bool:
    """Whether ``presented`` is one of ``keys``: every key compared in constant time, none skipped."""
    given = presented.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found


def role_of(presented: str, api_keys: tuple[str, ...], admin_keys: tuple[str, ...]) -> Role | None:
    """The role a key carries (admin first), or None for an unknown key."""
    is_admin = matches(presented, admin_keys)
    is_client = matches(presented, api_keys)
    if is_admin:
        return Role.ADMIN
    return Role.CLIENT if is_client else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, ErrorCode.UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


async def caller_role(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Role:
    """The caller's role; 401 without a known key."""
    if credentials is None:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer KEY'")
    settings = request.app.state.service.settings
    role = role_of(credentials.credentials, settings.api_keys, settings.admin_keys)
    if role is None:
        raise _unauthorized("unknown API key: check the key sent in 'Authorization: Bearer KEY'")
    request.state.role = role
    return role


async def require_client(role: Annotated[Role, Depends(caller_role)]) -> Role:
    """Any known key (client or admin)."""
    return role


async def require_admin(role: Annotated[Role, Depends(caller_role)]) -> Role:
    """An admin key; 403 for a client key."""
    if role != Role.ADMIN:
        raise ApiError(403, ErrorCode.FORBIDDEN, "this route needs an admin key (FORECASTER_ADMIN_KEYS)")
    return role
