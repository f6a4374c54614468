"""``POST /v1/forecast``: recent bars (and IV) in, the model's forecast per horizon out."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.auth import require_client
from serving.deps import ModelDep, RequestIdDep, ServiceDep, check_limit
from serving.errors import ErrorCode
from serving.inference import forecast_for
from serving.models import LoadedModel
from serving.routes import JsonRoute, errors_doc
from serving.schemas import ForecastRequest, ForecastResponse, ModelRef

router = APIRouter(prefix="/v1", tags=["forecast"], dependencies=[Depends(require_client)], route_class=JsonRoute)


def model_ref(model: LoadedModel) -> ModelRef:
    return ModelRef(name=model.name, version=model.version, model_name=str(model.config["model_name"]))


@router.post(
    "/forecast",
    summary="the forecast of realized variance, its quantiles and regime probabilities at the last bar",
    responses=errors_doc(400, 401, 413, 422, 503),
)
async def forecast(
    body: ForecastRequest, model: ModelDep, service: ServiceDep, request_id: RequestIdDep
) -> ForecastResponse:
    check_limit(len(body.bars), service.settings.max_rows, ErrorCode.TOO_MANY_ROWS, "bars", "--max-rows")
    result = forecast_for(model, body.bars, service.metrics)
    return ForecastResponse(
        request_id=request_id,
        model=model_ref(model),
        as_of=result.as_of,
        bar_length=model.bar_length.isoformat(),
        forecasts=result.rows,
        warnings=result.warnings,
    )
