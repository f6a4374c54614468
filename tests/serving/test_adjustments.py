"""``POST /v1/portfolio/adjustments`` on uvicorn: the decision against independent references (Black-76 Greeks, the
band, the static buffer, the backtest's own forecast view), the desk's clocks, caps, the fallback, errors, the
audit log (a decision whose line cannot be written is not returned), and generated inputs never failing on the
server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecaster.backtest.run import BacktestSpec, backtest_spec
from forecaster.config import load_spec
from serving.audit import AuditLog, read_audit

ROUTE = "/v1/portfolio/adjustments"
SPEC = load_spec("sim_intraday")
KEYS = {
    "request_id", "model", "as_of", "spot", "atm_iv", "policy", "margin_policy", "fallback", "orders", "hedge",
    "margin", "suggestions", "view", "margin_view", "forecast", "desk", "notes", "warnings",
}  # fmt: skip


def policy_spec(**changes: object) -> BacktestSpec:
    """The spec's backtest section at the test model's horizon (60 bars) with few scenarios."""
    section = {**SPEC.values["backtest"], "horizon": 60, "scenarios": 64, "margin_horizon": 60, **changes}
    return backtest_spec({**SPEC.values, "backtest": section}, where="test")


@pytest.fixture(scope="module")
def live(registry, serve, tmp_path_factory):
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.margin import margin_config_from_spec

    settings = registry.settings(
        max_positions=5, backtest=policy_spec(), drift=drift_config_from_spec(SPEC.values, where=SPEC.path),
        margin=margin_config_from_spec(SPEC),
    )  # fmt: skip
    audit = tmp_path_factory.mktemp("adjust") / "audit.jsonl"
    with serve(replace(settings, audit_log=audit)) as running:
        yield running


@contextmanager
def swapped(live, **changes: object) -> Iterator[None]:
    """The running service with other settings (or audit log) for the block."""
    service = live.service
    before = (service.settings, service.audit)
    audit = changes.pop("audit", service.audit)
    service.settings, service.audit = replace(service.settings, **changes), audit
    try:
        yield
    finally:
        service.settings, service.audit = before


def _post(live, auth, body: dict, status: int = 200) -> dict:
    sent = live.http.post(ROUTE, json=body, headers=auth)
    assert sent.status_code == status, sent.text
    return sent.json()


def test_band_decision_against_black76_cost_model_and_static_buffer(live, registry, auth, book):
    from forecaster.backtest.costs import CostModel
    from forecaster.margin import margin_config_from_spec, portfolio_margin
    from forecaster.market.portfolio_file import portfolio_from_mapping
    from forecaster.portfolio import book_from_portfolio
    from forecaster.pricing.black import black76_greeks
    from forecaster.pricing.surface import flat_surface

    bars = registry.bars()
    desk = {"bars_since_trade": 30, "sigma_bar": 0.0009, "posted": 100000.0, "equity": 90000.0}
    request = {"bars": bars, "portfolio": book(), "desk": desk, "policy": "band", "margin_policy": "static"}
    sent = live.http.post(ROUTE, json=request, headers={**auth, "X-Request-ID": "adj-1"})
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert set(body) == KEYS and body["request_id"] == "adj-1" and body["warnings"] == []
    assert body["model"] == {"name": registry.name, "version": "1", "model_name": "har"}
    assert body["policy"] == {"name": "band", "kind": "band", "params": {"band_units": 0.8}, "source": None}
    assert body["margin_policy"]["name"] == "static" and body["margin_policy"]["params"] == {"multiple": 1.5}
    assert body["view"] is None and body["forecast"] is None and body["fallback"] is False

    spot, iv = bars[-1]["close"], bars[-1]["iv"]
    as_of = pd.Timestamp(bars[-1]["timestamp"])
    tau = (pd.Timestamp("2026-01-09T08:00:00Z") - as_of) / pd.Timedelta(days=365)
    call, put = (black76_greeks(spot, k, tau, iv, c) for k, c in ((62000, True), (55000, False)))
    delta = -10 * call["delta"] + 5 * put["delta"]
    hedge = body["hedge"]
    assert hedge["book_delta_units"] == pytest.approx(delta, rel=1e-12)
    assert hedge["book_gamma_units"] == pytest.approx(-10 * call["gamma"] + 5 * put["gamma"], rel=1e-12)
    assert hedge["book_vega"] == pytest.approx((-10 * call["vega"] + 5 * put["vega"]) / 100, rel=1e-12)
    assert hedge["hedge_units"] == 2.5 and abs(delta + 2.5) > 0.8  # outside the band: hedged to zero net delta
    assert hedge["trades"] is True and hedge["target_units"] == pytest.approx(-delta, rel=1e-12)
    trade = hedge["target_units"] - 2.5
    sigma_daily = 0.0009 * math.sqrt(1440)
    cost = CostModel(fee_rate=0.0005, impact_coef=0.1, adv_units=20000.0).cost(trade, spot, sigma_daily)
    assert hedge["trade_units"] == trade and hedge["estimated_cost"] == pytest.approx(cost, rel=1e-12)
    assert hedge["net_delta_after"] == pytest.approx(0.0, abs=1e-12) and hedge["fallback"] is False
    assert hedge["reason"].startswith("|net delta|") and "> band 0.8" in hedge["reason"]
    assert hedge["caps"] == {
        "max_order_units": 50.0,
        "max_notional_per_step": 5e6,
        "fallback_band_units": 0.8,
        "delta_limit_units": 3.0,
    }  # fmt: skip  (the portfolio's max_abs_delta 5 is looser)
    assert body["orders"] == [
        {"instrument": "perp", "underlying": "BTC", "side": "buy" if trade > 0 else "sell", "units": abs(trade),
         "target_units": hedge["target_units"], "estimated_cost": hedge["estimated_cost"], "reason": hedge["reason"]}
    ]  # fmt: skip

    # the requirement of the book after the trade, by the portfolio module (not the backtest's book)
    after = book()
    after["positions"][2]["quantity"] = hedge["target_units"]
    portfolio = portfolio_from_mapping(after, as_of=as_of).data
    priced = book_from_portfolio(portfolio, as_of=as_of, spot={"BTC": spot}, vols={"BTC": flat_surface(iv)})
    want = portfolio_margin(priced, margin_config_from_spec(SPEC))
    margin = body["margin"]
    assert margin["initial_margin"] == pytest.approx(want.initial, rel=1e-9)
    assert margin["maintenance_margin"] == pytest.approx(want.maintenance, rel=1e-9)
    equity = 90000.0 - hedge["estimated_cost"]
    assert margin["equity"] == pytest.approx(equity, rel=1e-12) and margin["posted"] == 100000.0
    target = 100000.0 + 1.5 * margin["initial_margin"] - equity
    assert margin["target_posted"] == pytest.approx(target, rel=1e-12)
    assert margin["amount"] == pytest.approx(target - 100000.0, rel=1e-9, abs=1e-6)
    assert margin["action"] == ("top_up" if margin["amount"] > 0 else "release")
    assert margin["reason"].startswith("static buffer: equity to 1.5 x IM") and margin["fallback"] is False
    assert body["desk"] == {"bars_since_trade": 0, "first_decision": False, "bars_since_check": None,
                            "sigma_bar": 0.0009, "hedge_units": hedge["target_units"],
                            "posted": margin["target_posted"]}  # fmt: skip

    entries = [e for e in read_audit(live.service.audit.path) if e["request_id"] == "adj-1"]
    assert len(entries) == 1 and entries[0]["kind"] == "adjustment" and entries[0]["model_version"] == "1"
    assert entries[0]["record"] == body


def test_predictive_view_is_the_backtests(live, registry, auth, book):
    """The served view equals forecast_views of the backtest on the whole market, from the registered model."""
    from features.pipeline import feature_spec_from_spec
    from forecaster.backtest.books import portfolio_book
    from forecaster.backtest.engine import BacktestMarket
    from forecaster.backtest.forecasts import forecast_views
    from forecaster.backtest.run import _predict
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.market.portfolio_file import portfolio_from_mapping
    from training.data import market_iv, model_data

    market, cfg = registry.market, registry.bundle.config
    body = _post(live, auth, {"bars": registry.bars(), "portfolio": book(), "desk": {"sigma_bar": 0.0009}})
    assert body["policy"]["name"] == "predictive" and body["policy"]["source"] == "model"  # the spec's default
    view = body["view"]
    assert view["horizon"] == 60 and view["source"] == "model:har" and body["forecast"]["horizon"] == 60

    index = market.index
    bt_market = BacktestMarket(index, market.bars["close"].to_numpy(float), market_iv(market), market.bar_years)
    portfolio = portfolio_from_mapping(book(), as_of=index[-1]).data
    legs, hedge = portfolio_book(portfolio, index)
    spec = feature_spec_from_spec({"features": cfg["feature_spec"]}, where="bundle")
    data = model_data(market, spec, tuple(cfg["horizons"]))
    t = len(index) - 1
    forecasts = _predict(registry.bundle.model, data, np.array([t]), 60)
    drift = drift_config_from_spec(SPEC.values, where=SPEC.path)
    want = forecast_views(bt_market, legs, [t], forecasts, 60, source="model:har", drift=drift, n_scenarios=64)[t]
    assert view["var"] == want.var and view["target_net_delta_units"] == want.target_net_delta_units
    for name in ("delta_drift", "gamma_drift", "vega_drift"):
        levels = getattr(want, f"{name}_quantiles")
        assert [view[name][k] for k in ("q05", "q25", "q50", "q75", "q95")] == list(levels.values()), name
    assert hedge == 2.5 and body["hedge"]["reason"].startswith("model:har: ")


def test_the_desk_carries_the_policies_memory(live, registry, auth, book):
    bars = registry.bars()

    def decide(policy: str, **desk: object) -> dict:
        request = {"bars": bars, "portfolio": book(), "policy": policy, "decide": ["hedge"], "desk": desk}
        return _post(live, auth, request)

    first = decide("fixed", first_decision=True, bars_since_trade=3)
    assert first["hedge"]["trades"] and "first decision" in first["hedge"]["reason"]
    assert first["desk"]["first_decision"] is False and first["desk"]["bars_since_trade"] == 0
    assert first["margin"] is None and first["desk"]["posted"] == 250000.0
    wait = decide("fixed", bars_since_trade=100)
    assert not wait["hedge"]["trades"] and wait["orders"] == [] and wait["desk"]["bars_since_trade"] == 100
    assert wait["hedge"]["reason"] == "fixed interval: wait, 100 bars since last trade < 240"
    assert wait["hedge"]["target_units"] == wait["hedge"]["hedge_units"] == 2.5
    check = decide("threshold")
    assert check["hedge"]["trades"] and check["desk"]["bars_since_check"] == 0
    later = decide("threshold", bars_since_check=10)
    assert not later["hedge"]["trades"] and later["desk"]["bars_since_check"] == 10
    assert later["hedge"]["reason"].startswith("no check: 10 bars since last check")
    estimated = decide("band")
    assert estimated["desk"]["sigma_bar"] > 0 and "EWMA of the request's" in estimated["notes"][0]


def test_caps_are_the_tighter_of_spec_and_portfolio(live, registry, auth, book):
    tight = book()
    tight["limits"] = {"max_order_size": 0.1, "max_abs_delta": 1.0}
    body = _post(live, auth, {"bars": registry.bars(), "portfolio": tight, "policy": "band", "decide": ["hedge"]})
    hedge = body["hedge"]
    assert hedge["caps"]["max_order_units"] == 0.1 and hedge["caps"]["delta_limit_units"] == 1.0
    assert abs(hedge["trade_units"]) == pytest.approx(0.1) and "capped: wanted" in hedge["reason"]
    assert body["orders"][0]["units"] == pytest.approx(0.1)


def test_no_forecast_of_the_horizon_falls_back_to_the_band(live, registry, auth, book):
    with swapped(live, backtest=policy_spec(horizon=240)):
        body = _post(live, auth, {"bars": registry.bars(), "portfolio": book(), "decide": ["hedge"]})
    assert body["fallback"] is True and body["hedge"]["fallback"] is True and body["view"] is None
    assert body["hedge"]["reason"].startswith("fallback (no forecast: model unavailable): |net delta|")
    assert "backtest.horizon = 240" in body["warnings"][0]


def test_a_flat_book_and_the_predictive_margin_policy(live, registry, auth):
    flat = {"positions": [], "collateral": 1000.0}
    request = {"bars": registry.bars(), "portfolio": flat, "margin_policy": "predictive", "desk": {"sigma_bar": 1e-3}}
    body = _post(live, auth, request)
    assert body["orders"] == [] and body["hedge"]["underlying"] is None and not body["hedge"]["trades"]
    assert body["margin"]["initial_margin"] == 0.0 and body["margin_view"]["horizon"] == 60
    assert body["margin_view"]["source"] == "model:har margin" and len(body["margin_view"]["margin_need"]) == 6
    assert body["margin"]["amount"] < 0 and "release" in body["margin"]["reason"]


def test_bad_choices_are_422_naming_the_fix(live, registry, auth, book):
    def refused(**changes: object) -> str:
        request = {"bars": registry.bars(), "portfolio": book(), **changes}
        body = _post(live, auth, request, status=422)
        assert body["code"] == "invalid_input"
        return body["message"]

    assert "send one of ['none', 'fixed', 'band'" in refused(policy="nope")
    assert "reads the simulator's truth" in refused(policy="oracle")
    assert "margin_policy 'tight' is unknown" in refused(margin_policy="tight")
    two = book()
    two["positions"][0]["underlying"] = "ETH"
    assert "send one request per underlying" in refused(portfolio=two)
    assert _post(live, auth, {"bars": registry.bars(), "portfolio": book(), "decide": []}, 422)["code"] == (
        "validation_error"
    )
    many = {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 1}] * 6, "collateral": 0}
    assert _post(live, auth, {"bars": registry.bars(), "portfolio": many}, 413)["code"] == "too_many_positions"


def test_a_decision_that_cannot_be_audited_is_not_returned(live, registry, auth, book, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with swapped(live, audit=AuditLog(blocker / "audit.jsonl")):
        sent = live.http.post(ROUTE, json={"bars": registry.bars(), "portfolio": book()}, headers=auth)
    assert sent.status_code == 500 and sent.json()["code"] == "internal_error"
    assert "audit log" in sent.json()["message"] and "hedge" not in sent.json()
    assert sent.headers["x-request-id"] in sent.json()["message"]


def test_open_leg_greeks_are_book_paths_bit_for_bit():
    """The request's fast Greeks against the engine's per-leg marks, on a random book at several bars."""
    from forecaster.backtest.books import OptionLegs
    from forecaster.backtest.engine import BacktestMarket, book_path
    from serving.adjust import open_leg_greeks

    rng = np.random.default_rng(4)
    index = pd.date_range("2026-01-01T00:01", periods=400, freq="min", tz="UTC")
    close = 60000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, 400)))
    market = BacktestMarket(index, close, rng.uniform(0.3, 1.2, 400), 1 / 525600)
    start = np.sort(rng.integers(0, 350, 300))
    expiry = index[start] + pd.to_timedelta(rng.integers(600, 30 * 86400, 300), unit="s")
    legs = OptionLegs(
        60000.0 * np.exp(rng.uniform(-0.3, 0.3, 300)), rng.random(300) < 0.5, rng.normal(0.0, 5.0, 300),
        start.astype(np.int64), np.maximum(index.searchsorted(expiry), start + 1).astype(np.int64), expiry,
    )  # fmt: skip
    path = book_path(legs, market)
    for t in (3, 120, 250, 399):
        open_ = (legs.start_bar <= t) & (legs.expiry_bar > t)
        held = OptionLegs(*(getattr(legs, f)[open_] for f in ("strike", "is_call", "weight", "start_bar")),
                          legs.expiry_bar[open_], legs.expiry[open_])  # fmt: skip
        got = open_leg_greeks(held, index[t], close[t], market.iv[t])
        want = (path.delta_units[t], path.gamma_units[t], path.vega[t], path.gamma_tau[t])
        assert open_.sum() > 0 and np.array_equal(got, want, equal_nan=True), (t, got, want)


NUMBER = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
QUIET = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck), "derandomize": True}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_generated_books_and_desks_never_fail_on_the_server(live, registry, auth):
    bars = registry.bars()
    option = st.fixed_dictionaries(
        {"instrument": st.just("option"), "underlying": st.just("BTC"), "option_type": st.sampled_from(["call", "put"]),
         "strike": st.floats(min_value=1e-6, max_value=1e12), "expiry": st.just("2026-01-03T08:00:00Z"),
         "quantity": NUMBER.filter(lambda q: q != 0)}
    )  # fmt: skip
    linear = st.fixed_dictionaries(
        {"instrument": st.sampled_from(["perp", "spot"]), "underlying": st.just("BTC"),
         "quantity": NUMBER.filter(lambda q: q != 0)}
    )  # fmt: skip
    desk = st.fixed_dictionaries(
        {},
        optional={"bars_since_trade": st.integers(0, 10**6), "bars_since_check": st.integers(0, 10**6),
                  "sigma_bar": st.floats(min_value=0, max_value=1e6), "posted": NUMBER, "equity": NUMBER,
                  "breached_recently": st.booleans(), "first_decision": st.booleans()},
    )  # fmt: skip

    @given(
        positions=st.lists(st.one_of(option, linear), max_size=3),
        desk=desk,
        policy=st.sampled_from(["predictive", "band", "ww", "fixed", "threshold", "none"]),
        margin_policy=st.sampled_from(["static", "reactive", "predictive"]),
    )
    @settings(max_examples=25, **QUIET)
    def check(positions, desk, policy, margin_policy):
        request = {"bars": bars, "portfolio": {"positions": positions, "collateral": 0}, "desk": desk,
                   "policy": policy, "margin_policy": margin_policy}  # fmt: skip
        sent = live.http.post(ROUTE, json=request, headers=auth)
        assert sent.status_code in (200, 422), sent.text
        assert sent.json().get("code") in (None, "invalid_input"), sent.text

    check()
