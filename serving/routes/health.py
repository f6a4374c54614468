"""Open routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from serving.deps import ServiceDep
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="the process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="a model is loaded (503 if not); the last reload failure, if any",
    responses={503: {"model": Readiness, "description": "no model is loaded"}},
)
async def readyz(service: ServiceDep, response: Response) -> Readiness:
    holder = service.holder
    model = holder.get()
    response.status_code = 200 if model is not None else 503
    return Readiness(
        ready=model is not None,
        model_version=model.version if model else None,
        model_uri=service.settings.model_uri,
        watching=service.watcher is not None,
        last_reload_error=holder.last_error,
        last_reload_at=holder.last_reload_at,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text exposition"}},
)
async def metrics(service: ServiceDep) -> PlainTextResponse:
    return PlainTextResponse(service.metrics.render(), media_type=service.metrics.content_type)
