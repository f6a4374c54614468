"""``POST /v1/portfolio/drift``: recent bars and a portfolio in, the drift distribution of its Greeks, P&L and
margin over a horizon out (DESIGN section 11's ``drift`` JSON, with the model's forecast as the source).
``POST /v1/portfolio/adjustments``: recent bars, the desk's book and state in, the hedge orders and the collateral
move of the spec's policies out (:mod:`serving.adjust`), each written to the audit log before it is returned.

The book is valued at the last bar (the forecast origin): spot = the last close unless ``spot`` is sent, options
on a flat surface at ``atm_iv`` (default the bars' last ``iv``). Scenarios come from the forecast of ``horizon``
(default the model's first) with the spec's ``drift`` settings; the margin model is the spec's ``margin`` one.
Quantiles are always the five of DESIGN section 5 (0.05 ... 0.95), whatever the spec reports elsewhere.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends

from forecaster.drift import DriftResult, drift_distribution
from models.base import QUANTILES
from serving.adjust import decide
from serving.auth import require_client
from serving.deps import ModelDep, RequestIdDep, ServiceDep, check_rows_and_positions
from serving.errors import ApiError, ErrorCode
from serving.inference import book_for, finite_or_none, forecast_for, horizon_forecast, last_iv, pick_horizon
from serving.routes import JsonRoute, errors_doc
from serving.routes.forecast import model_ref
from serving.schemas import AdjustmentRequest, AdjustmentResponse, Change, DriftRequest, DriftResponse, MetricDrift

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/portfolio", tags=["portfolio"], dependencies=[Depends(require_client)], route_class=JsonRoute
)


@router.post(
    "/drift",
    summary="the distribution of the book's delta, gamma, vega, P&L and initial margin at t+h, and their drift",
    responses=errors_doc(400, 401, 413, 422, 503),
)
async def portfolio_drift(
    body: DriftRequest, model: ModelDep, service: ServiceDep, request_id: RequestIdDep
) -> DriftResponse:
    settings = service.settings
    check_rows_and_positions(body, settings)
    horizon = pick_horizon(body.horizon, model)
    forecast = forecast_for(model, body.bars, service.metrics)
    outlook = horizon_forecast(forecast, horizon, model, settings.drift)
    spot = body.spot if body.spot is not None else float(body.bars.close[-1])
    atm_iv = body.atm_iv if body.atm_iv is not None else last_iv(body.bars, model)
    book = book_for(body.portfolio, as_of=forecast.as_of, spot=spot, atm_iv=atm_iv)
    config = settings.drift
    with service.metrics.timed("drift"):
        result = drift_distribution(
            book,
            outlook,
            n_scenarios=body.n_scenarios or config.n_scenarios,
            seed=config.seed if body.seed is None else body.seed,
            method=config.sampling,
            quantiles=QUANTILES,
            vol_floor=config.vol_floor,
            margin=settings.margin,
        )
    warnings = list(forecast.warnings)
    metrics = {name: metric_drift(result, name, warnings) for name in result.metrics}
    return DriftResponse(
        request_id=request_id,
        model=model_ref(model),
        as_of=forecast.as_of,
        spot=spot,
        atm_iv=atm_iv,
        horizon=horizon,
        years=result.years,
        quantiles=list(result.quantiles),
        forecast=forecast.row(horizon),
        margin_model=settings.margin.model,
        n_scenarios=len(result.scenarios),
        notes=list(result.notes),
        warnings=warnings,
        **metrics,
    )


def metric_drift(result: DriftResult, metric: str, warnings: list[str]) -> MetricDrift:
    """One metric of the result: now, its distribution at t+h and its change (non-finite values as null)."""
    summary = {k: finite_or_none(v, f"{metric}.{k}", warnings) for k, v in result.summary(metric).items()}
    change = {k: finite_or_none(v, f"{metric}.drift.{k}", warnings) for k, v in result.drift(metric).items()}
    return MetricDrift(**summary, drift=Change(**change))


@router.post(
    "/adjustments",
    summary="the hedge orders and the collateral move the spec's policies decide at the last bar, and why",
    responses=errors_doc(400, 401, 413, 422, 503),
)
async def portfolio_adjustments(
    body: AdjustmentRequest, model: ModelDep, service: ServiceDep, request_id: RequestIdDep
) -> AdjustmentResponse:
    settings = service.settings
    check_rows_and_positions(body, settings)
    response = decide(body, model, settings, service.metrics, request_id)
    record = response.model_dump(mode="json")
    try:  # no decision leaves without its audit line
        service.audit.append(kind="adjustment", request_id=request_id, model_version=model.version, record=record)
    except Exception as exc:
        log.exception("request %s: the audit log %s refused the decision", request_id, service.audit.path)
        raise ApiError(
            500,
            ErrorCode.INTERNAL_ERROR,
            f"the decision could not be written to the audit log ({type(exc).__name__}), so it is not returned and "
            f"nothing was decided: retry; quote request id {request_id} when you report it",
        ) from exc
    return response
