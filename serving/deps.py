"""What routes share: the :class:`Service` of the app and typed dependencies on it.

A route declares what it needs in its signature::

    def forecast(body: ForecastRequest, model: ModelDep, service: ServiceDep, request_id: RequestIdDep): ...

``ModelDep`` is the model snapshot of this request (503 ``model_unavailable`` when none is loaded); the routers
put the auth dependency first (``dependencies=[Depends(require_client)]``), so a caller without a key gets 401
before anything else is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from serving.audit import AuditLog
from serving.errors import ApiError, ErrorCode
from serving.metrics import Metrics
from serving.models import AliasWatcher, LoadedModel, ModelHolder
from serving.settings import Settings


@dataclass
class Service:
    """One app's state: settings, the model holder (and its watcher), metrics and the audit log."""

    settings: Settings
    holder: ModelHolder
    metrics: Metrics
    audit: AuditLog
    watcher: AliasWatcher | None = None


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_request_id(request: Request) -> str:
    return request.state.request_id


RequestIdDep = Annotated[str, Depends(get_request_id)]


async def current_model(request: Request, service: ServiceDep) -> LoadedModel:
    """The model serving now, taken once for the whole request; 503 when none is loaded."""
    model = service.holder.get()
    if model is None:
        why = service.holder.last_error or "the first load has not finished"
        raise ApiError(503, ErrorCode.MODEL_UNAVAILABLE, f"no model is loaded ({why}); GET /readyz says more")
    request.state.model_version = model.version
    return model


ModelDep = Annotated[LoadedModel, Depends(current_model)]


def check_limit(count: int, limit: int, code: ErrorCode, what: str, flag: str) -> None:
    """413 with ``code`` when ``count`` exceeds ``limit`` (rows, positions: limits of one request)."""
    if count > limit:
        raise ApiError(413, code, f"the request holds {count:,} {what}; this server takes at most {limit:,} ({flag})")


def check_rows_and_positions(body: Any, settings: Any) -> None:
    """The row and position limits of a request with ``bars`` and a ``portfolio``."""
    check_limit(len(body.bars), settings.max_rows, ErrorCode.TOO_MANY_ROWS, "bars", "--max-rows")
    positions = len(body.portfolio.positions)
    check_limit(positions, settings.max_positions, ErrorCode.TOO_MANY_POSITIONS, "positions", "--max-positions")
