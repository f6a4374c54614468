"""The app on uvicorn against a registered model: forecast and drift round-trips, model info, errors with stable
codes, request limits, request ids, metrics and the access log."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from models.base import QUANTILES
from serving.logs import JsonFormatter

NUMBERS = ["var", "q05", "q25", "q50", "q75", "q95", "p_calm", "p_normal", "p_stressed"]
ONE_MINUTE_YEARS = 1 / (365 * 1440)


@pytest.fixture(scope="module")
def live(registry, serve):
    settings = registry.settings(max_rows=400, max_positions=5, max_body_bytes=80_000)
    with serve(settings) as running:
        yield running


def test_forecast_round_trip(live, registry, auth):
    from models.pyfunc import request_frame

    frame = request_frame(registry.market, registry.min_rows + 10)
    sent = live.http.post(
        "/v1/forecast", json={"bars": frame.to_dict("records")}, headers={**auth, "X-Request-ID": "fc-1"}
    )
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert sent.headers["x-request-id"] == body["request_id"] == "fc-1"
    assert body["model"] == {"name": registry.name, "version": "1", "model_name": "har"}
    assert pd.Timestamp(body["as_of"]) == registry.market.index[-1]
    assert body["warnings"] == [] and [row["horizon"] for row in body["forecasts"]] == [30, 60]
    expected = registry.bundle.loaded().forecast(frame)
    got = pd.DataFrame(body["forecasts"])
    np.testing.assert_allclose(got[NUMBERS].to_numpy(float), expected[NUMBERS].to_numpy(float), rtol=1e-12)
    vol = np.sqrt(expected["var"].to_numpy() / (expected["horizon"].to_numpy() * ONE_MINUTE_YEARS))
    np.testing.assert_allclose(got["ann_vol"], vol, rtol=1e-12)


def test_bars_as_columns_answer_as_rows_do(live, registry, auth, book):
    """``bar_columns`` (one array per field, null iv entries) is the same request as ``bars`` rows: the same
    forecast and drift, bit for bit."""
    from models.pyfunc import request_frame

    frame = request_frame(registry.market, registry.min_rows + 5)
    frame.loc[frame.index[3], "iv"] = np.nan  # an empty iv cell: null in both forms
    rows = [{k: v for k, v in row.items() if not (k == "iv" and pd.isna(v))} for row in frame.to_dict("records")]
    columns = {c: [None if pd.isna(v) else v for v in frame[c]] for c in frame.columns}
    for route, extra in (("/v1/forecast", {}), ("/v1/portfolio/drift", {"portfolio": book(), "n_scenarios": 256})):
        by_rows = live.http.post(route, json={"bars": rows, **extra}, headers=auth)
        by_columns = live.http.post(route, json={"bar_columns": columns, **extra}, headers=auth)
        assert by_rows.status_code == by_columns.status_code == 200, by_columns.text
        a, b = by_rows.json(), by_columns.json()
        a.pop("request_id"), b.pop("request_id")
        assert a == b


def test_bar_columns_of_unequal_length_and_both_forms_are_refused(live, registry, auth):
    from models.pyfunc import request_frame

    frame = request_frame(registry.market, registry.min_rows)
    columns = {c: frame[c].tolist() for c in frame.columns}
    short = {**columns, "close": columns["close"][:-1]}
    body = _error(live.http.post("/v1/forecast", json={"bar_columns": short}, headers=auth), 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "bar_columns"]
    assert f"timestamp has {len(frame)}, close has {len(frame) - 1}" in body["message"]
    both = {"bars": frame.to_dict("records"), "bar_columns": columns}
    body = _error(live.http.post("/v1/forecast", json=both, headers=auth), 422, "validation_error")
    assert "both were sent" in body["message"]


def test_a_bad_body_without_a_key_is_401_not_its_schema_errors(live):
    """The body is read before auth (the fast JSON path), but its errors are only answered to a known caller."""
    sent = live.http.post("/v1/forecast", json={"bars": [{"close": -1}]})
    assert sent.status_code == 401 and sent.json()["code"] == "unauthorized"
    sent = live.http.post("/v1/forecast", content=b"{not json", headers={"content-type": "application/json"})
    assert sent.status_code == 400 and sent.json()["code"] == "bad_request"  # as FastAPI answers: JSON first


def test_drift_round_trip_matches_the_engine(live, registry, auth, book):
    from forecaster.drift import drift_distribution
    from forecaster.drift.config import DriftConfig
    from forecaster.drift.sources import forecast_from_predictions
    from forecaster.margin import MarginConfig
    from forecaster.market.portfolio_file import portfolio_from_mapping
    from forecaster.portfolio import book_from_portfolio
    from forecaster.pricing.surface import flat_surface
    from models.pyfunc import request_frame

    frame = request_frame(registry.market, registry.min_rows)
    request = {"bars": frame.to_dict("records"), "portfolio": book(), "horizon": 60, "n_scenarios": 512, "seed": 11}
    sent = live.http.post("/v1/portfolio/drift", json=request, headers=auth)
    assert sent.status_code == 200, sent.text
    body = sent.json()

    as_of = registry.market.index[-1]
    spot, iv = float(frame["close"].iloc[-1]), float(frame["iv"].iloc[-1])
    forecast = registry.bundle.loaded().forecast(frame)
    outlook = forecast_from_predictions(
        forecast, horizon=60, as_of=as_of, bar_years=ONE_MINUTE_YEARS, config=DriftConfig()
    )
    portfolio = portfolio_from_mapping(book(), as_of=as_of).data
    priced = book_from_portfolio(portfolio, as_of=as_of, spot={"BTC": spot}, vols={"BTC": flat_surface(iv)})
    want = drift_distribution(
        priced, outlook, n_scenarios=512, seed=11, quantiles=QUANTILES, margin=MarginConfig()
    ).to_json()

    assert (body["horizon"], body["n_scenarios"], body["margin_model"]) == (60, 512, "risk_matrix")
    assert body["spot"] == spot and body["atm_iv"] == iv and pd.Timestamp(body["as_of"]) == as_of
    assert body["quantiles"] == list(QUANTILES) and body["forecast"]["horizon"] == 60
    for metric in ("delta", "gamma", "vega", "pnl", "margin_initial"):
        for key, value in want[metric].items():  # now, mean, q05 ... q95, and drift: {mean, q05 ... q95}
            assert body[metric][key] == pytest.approx(value, rel=1e-9), (metric, key)
    assert body["pnl"]["now"] == 0.0 and body["margin_initial"]["now"] > 0


def test_drift_defaults_and_overrides(live, registry, auth, book):
    bars = registry.bars()
    default = live.http.post("/v1/portfolio/drift", json={"bars": bars, "portfolio": book()}, headers=auth).json()
    assert default["horizon"] == 30  # the model's first horizon, as `forecaster drift` takes the spec's first
    assert default["n_scenarios"] == 2048  # the spec's drift.n_scenarios (the defaults here)
    moved = {"bars": bars, "portfolio": book(), "spot": 70000.0, "atm_iv": 0.9}
    other = live.http.post("/v1/portfolio/drift", json=moved, headers=auth).json()
    assert (other["spot"], other["atm_iv"]) == (70000.0, 0.9)
    assert other["vega"]["now"] != default["vega"]["now"]
    linear = {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 1}], "collateral": 0}
    perp = live.http.post("/v1/portfolio/drift", json={"bars": bars, "portfolio": linear}, headers=auth).json()
    assert perp["gamma"]["now"] == 0.0 and perp["delta"]["now"] == pytest.approx(bars[-1]["close"])


def test_model_info_and_health(live, registry, auth):
    info = live.http.get("/v1/model", headers=auth).json()
    assert info["name"] == registry.name and info["version"] == "1" and info["horizons"] == [30, 60]
    assert (info["min_rows"], info["needs_iv"], info["family"]) == (registry.min_rows, True, "har")
    assert info["uri"] == f"models:/{registry.name}/1" and info["source_uri"] == f"models:/{registry.name}@champion"
    assert live.http.get("/healthz").json() == {"status": "ok"}
    ready = live.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["model_version"] == "1"
    assert ready.json()["last_reload_error"] is None and ready.json()["watching"] is False


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def test_schema_errors_are_422_with_the_field(live, auth):
    body = _error(live.http.post("/v1/forecast", json={}, headers=auth), 422, "validation_error")
    assert body["details"][0]["loc"] == ["body"] and "either as rows in 'bars' or as columns" in body["message"]
    body = _error(live.http.post("/v1/forecast", json={"bars": []}, headers=auth), 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "bars"] and body["message"].startswith("body.bars:")
    bar = {"timestamp": "2026-01-01T00:00:00Z", "open": 1, "high": 1, "low": 1, "close": -1, "volume": 0}
    body = _error(live.http.post("/v1/forecast", json={"bars": [bar]}, headers=auth), 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "bars", 0, "close"]
    extra = {**bar, "close": 1, "vwap": 1}
    body = _error(live.http.post("/v1/forecast", json={"bars": [extra]}, headers=auth), 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "bars", 0, "vwap"]
    bad_json = live.http.post(
        "/v1/forecast", content=b"{not json", headers={**auth, "content-type": "application/json"}
    )
    _error(bad_json, 400, "bad_request")


def test_contract_and_model_errors_are_422_invalid_input(live, registry, auth, book):
    bars = registry.bars()
    short = _error(live.http.post("/v1/forecast", json={"bars": bars[1:]}, headers=auth), 422, "invalid_input")
    assert f"needs at least min_rows = {registry.min_rows}" in short["message"]
    broken = [dict(bar) for bar in bars]
    broken[4]["high"] = broken[4]["low"] * 0.5
    body = _error(live.http.post("/v1/forecast", json={"bars": broken}, headers=auth), 422, "invalid_input")
    assert "row 5" in body["message"] and "column 'high'" in body["message"]

    def drift(**changes) -> dict:
        request = {"bars": bars, "portfolio": book(), **changes}
        return _error(live.http.post("/v1/portfolio/drift", json=request, headers=auth), 422, "invalid_input")

    assert "pick one of [30, 60]" in drift(horizon=45)["message"]
    expired = drift(portfolio=book(expiry="2026-01-01T08:00:00Z"))["message"]
    assert "portfolio, row 1" in expired and "expired option" in expired
    no_strike = book()
    del no_strike["positions"][1]["strike"]
    assert "needs 'strike'" in drift(portfolio=no_strike)["message"]
    two = book()
    two["positions"][2]["underlying"] = "ETH"
    assert "BTC, ETH" in drift(portfolio=two)["message"]


def test_limits(live, registry, auth, book):
    rows = _error(live.http.post("/v1/forecast", json={"bars": registry.bars(401)}, headers=auth), 413, "too_many_rows")
    assert "at most 400" in rows["message"] and "--max-rows" in rows["message"]
    many = book()
    many["positions"] = [{"instrument": "perp", "underlying": "BTC", "quantity": 1} for _ in range(6)]
    request = {"bars": registry.bars(), "portfolio": many}
    _error(live.http.post("/v1/portfolio/drift", json=request, headers=auth), 413, "too_many_positions")
    big = json.dumps({"bars": registry.bars(600)}).encode()
    assert len(big) > 80_000
    _error(live.http.post("/v1/forecast", content=big, headers=auth), 413, "payload_too_large")

    def chunks():  # no Content-Length: the server counts what arrives
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    _error(live.http.post("/v1/forecast", content=chunks(), headers=auth), 413, "payload_too_large")


def test_unknown_routes_and_methods(live, auth):
    _error(live.http.get("/v1/nothing/here", headers=auth), 404, "not_found")
    _error(live.http.get("/v1/forecast", headers=auth), 405, "method_not_allowed")


def test_internal_errors_hide_the_cause(live, registry, auth, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail of the bug")

    monkeypatch.setattr("serving.routes.forecast.forecast_for", explode)
    sent = live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=auth)
    body = _error(sent, 500, "internal_error")
    assert "secret" not in sent.text and body["request_id"] in body["message"]


def test_request_ids(live):
    given = live.http.get("/healthz", headers={"X-Request-ID": "client.id:42"})
    assert given.headers["x-request-id"] == "client.id:42"
    unsafe = live.http.get("/healthz", headers={"X-Request-ID": "no spaces <allowed>"})
    made = unsafe.headers["x-request-id"]
    assert made != "no spaces <allowed>" and len(made) == 32


def test_metrics_by_route_template(live, registry, auth):
    live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=auth)
    live.http.get("/v1/unknown/12345", headers=auth)
    text = live.http.get("/metrics").text
    assert 'forecaster_http_requests_total{method="POST",route="/v1/forecast",status="200"}' in text
    assert 'forecaster_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/forecast"' in text
    assert 'route="<unmatched>",status="404"' in text and "12345" not in text
    assert 'forecaster_inference_duration_seconds_count{kind="forecast"}' in text
    assert 'forecaster_inference_duration_seconds_count{kind="drift"}' in text
    assert f'forecaster_model_version{{model="{registry.name}"}} 1.0' in text
    assert 'forecaster_model_reloads_total{outcome="loaded"} 1.0' in text


def test_one_json_access_log_line_per_request(live, registry, auth, caplog):
    caplog.set_level(logging.INFO, logger="serving.access")
    sent = live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers={**auth, "X-Request-ID": "log-1"})
    assert sent.status_code == 200
    records = [r for r in caplog.records if r.name == "serving.access" and r.request_id == "log-1"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["route"] == "/v1/forecast" and line["status"] == 200 and line["model_version"] == "1"
    assert line["method"] == "POST" and line["latency_ms"] > 0 and line["level"] == "INFO"
    assert set(line) >= {"ts", "logger", "message", "request_id", "path", "client"}
