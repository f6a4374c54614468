"""The FastAPI app of ``forecaster serve`` (DESIGN section 9).

:func:`create_app` wires the parts: the model holder and its alias watcher (:mod:`serving.models`), the routers
(:mod:`serving.routes`), the request middleware (request id, body limit, metrics, access log:
:mod:`serving.middleware`), JSON errors (:mod:`serving.errors`), the audit log (:mod:`serving.audit`).
The first model load happens at startup; if it fails the app still starts, ``/readyz`` answers 503 with the
reason, model routes answer 503 ``model_unavailable``, and the watcher (or ``/v1/admin/reload``) keeps trying.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import forecaster
from serving.audit import AuditLog
from serving.deps import Service
from serving.errors import install_error_handlers
from serving.metrics import Metrics
from serving.middleware import RequestContextMiddleware
from serving.models import AliasWatcher, ModelHolder, ModelSource
from serving.routes import admin, forecast, health, model, portfolio
from serving.settings import Settings

log = logging.getLogger(__name__)

ROUTERS = (health.router, model.router, forecast.router, portfolio.router, admin.router)
DESCRIPTION = """
Forecasts of realized variance from recent bars, and the drift of an options book's Greeks and margin.

**Auth**: `Authorization: Bearer KEY`. Keys of `FORECASTER_API_KEYS` call the `/v1` routes; keys of
`FORECASTER_ADMIN_KEYS` call `/v1/admin/*` and every other `/v1` route. `/healthz`, `/readyz`, `/metrics` and
the docs are open.

**Errors**: JSON `{"code", "message", "request_id", "details"}`; branch on `code` (stable), never on the message.

**Requests are stateless**: each carries the recent bars it needs (at least `min_rows` of `GET /v1/model`).
"""


def create_app(settings: Settings, *, holder: ModelHolder | None = None) -> FastAPI:
    """The app serving ``settings.model_uri``.

    Parameters
    ----------
    settings
        Model URI, keys, limits, drift and margin settings, audit log path.
    holder
        A ready-made model holder (tests); default one on :class:`~serving.models.ModelSource` of the settings.
    """
    metrics = Metrics()
    if holder is None:
        holder = ModelHolder(ModelSource(settings.model_uri, settings.tracking_uri), on_reload=metrics.on_reload)
    service = Service(settings=settings, holder=holder, metrics=metrics, audit=AuditLog(settings.audit_log))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        report = await run_in_threadpool(holder.refresh)
        gc.freeze()  # the imports and the model live as long as the process: no collection ever walks them again
        if report.outcome == "failed":
            log.error("no model at startup (%s): /readyz answers 503 until a load succeeds", report.error)
        if holder.source.ref.watchable and settings.poll_seconds > 0:
            service.watcher = AliasWatcher(holder, settings.poll_seconds)
            service.watcher.start()
            log.info("watching %s every %gs", settings.model_uri, settings.poll_seconds)
        try:
            yield
        finally:
            if service.watcher is not None:
                service.watcher.stop()

    app = FastAPI(
        title="drift-forecaster",
        version=forecaster.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
