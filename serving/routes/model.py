"""``GET /v1/model``: the model being served."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.auth import require_client
from serving.deps import ModelDep
from serving.routes import errors_doc
from serving.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_client)])


@router.get(
    "/model",
    summary="the model serving: version, horizons, how many bars a request needs",
    responses=errors_doc(401, 503),
)
async def model_info(model: ModelDep) -> ModelInfo:
    config = model.config
    return ModelInfo(
        name=model.name,
        version=model.version,
        run_id=model.target.run_id,
        uri=model.target.uri,
        source_uri=model.source_uri,
        model_name=str(config["model_name"]),
        family=str(config.get("model_family", "unknown")),
        horizons=model.horizons,
        min_rows=model.min_rows,
        needs_iv=bool(config["needs_iv"]),
        iv_units=str(config["iv_units"]),
        bar_length=model.bar_length.isoformat(),
        bar_label=str(config.get("bar_label", "end")),
        loaded_at=model.loaded_at,
    )
