"""``POST /v1/admin/reload`` (admin key): resolve the model URI now and swap in a new version, as the watcher
does; a version that failed before is tried again. Answers 200 with what happened (``outcome``), also when the
new version failed to load (``failed``: the previous version keeps serving, ``error`` says why)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from serving.auth import require_admin
from serving.deps import ServiceDep
from serving.routes import errors_doc
from serving.schemas import ReloadReport

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/reload", summary="load the version the model URI points at now", responses=errors_doc(401, 403))
async def reload(service: ServiceDep) -> ReloadReport:
    report = await run_in_threadpool(service.holder.refresh, force=True)
    return ReloadReport(
        outcome=report.outcome,
        previous_version=report.previous_version,
        model_version=report.model_version,
        target_version=report.target_version,
        error=report.error,
        seconds=report.seconds,
    )
