"""Acceptance: the rebalancer over HTTP reproduces the in-process backtest P&L to 1e-9 (relative to the book's
notional), for a reactive policy and the predictive one, on the day the registered model was fitted on.

The in-process side is ``run_backtest`` of the spec's policies with forecast views built the backtest's way
(``forecast_views``) from the registered model's forecasts on the whole market's features, one origin at a time:
a batch of origins goes through one matrix product, whose sums BLAS may order differently from a single origin's
(a last-bit difference), and the service forecasts one origin per request. The served features equal the batch
ones bit for bit (``models.pyfunc``), so both sides decide on identical numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest.run import BacktestSpec, backtest_spec
from forecaster.config import load_spec

SPEC = load_spec("sim_intraday")
START = 420  # 07:00: the warm-up holds min_rows (122) bars; the book's first straddles are sold at 08:00
END = 960  # 16:00: 36 hedge decisions
LABEL = "model:har"


def policy_spec() -> BacktestSpec:
    """The spec's backtest section at the test model's horizon (60 bars), with few scenarios and a book of 20
    straddles a day (its delta leaves the band within the hour)."""
    book = {**SPEC.values["backtest"]["book"], "size_units": 20.0}
    section = {**SPEC.values["backtest"], "horizon": 60, "scenarios": 64, "margin_horizon": 60, "book": book}
    return backtest_spec({**SPEC.values, "backtest": section}, where="test")


@pytest.fixture(scope="module")
def live(registry, serve, tmp_path_factory):
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.margin import margin_config_from_spec

    settings = registry.settings(
        backtest=policy_spec(), drift=drift_config_from_spec(SPEC.values, where=SPEC.path),
        margin=margin_config_from_spec(SPEC),
    )  # fmt: skip
    audit = tmp_path_factory.mktemp("rebalance") / "audit.jsonl"
    with serve(replace(settings, audit_log=audit)) as running:
        yield running


@pytest.fixture(scope="module")
def world(registry):
    """The registered model's day to 16:00 as the backtest's market, its book from 07:00, the request rows and the
    features."""
    from features.pipeline import feature_spec_from_spec
    from forecaster.backtest.books import OptionLegs, make_book
    from forecaster.backtest.engine import BacktestMarket, book_path
    from models.pyfunc import request_frame
    from serving.rebalancer import request_rows
    from training.data import market_iv, model_data

    market, cfg = registry.market, registry.bundle.config
    index = market.index[:END]
    close, iv = market.bars["close"].to_numpy(float)[:END], market_iv(market)[:END]
    bt_market = BacktestMarket(index, close, iv, market.bar_years)
    bt = policy_spec()
    legs = make_book(bt.book, index, bt_market.close, seed=bt.seed)
    keep = legs.start_bar >= START
    legs = OptionLegs(*(getattr(legs, f)[keep] for f in ("strike", "is_call", "weight", "start_bar", "expiry_bar")),
                      legs.expiry[keep])  # fmt: skip
    spec = feature_spec_from_spec({"features": cfg["feature_spec"]}, where="bundle")
    return {
        "bt": bt,
        "market": bt_market,
        "legs": legs,
        "path": book_path(legs, bt_market),
        "rows": request_rows(request_frame(market, len(market.index)))[:END],
        "data": model_data(market, spec, tuple(cfg["horizons"])),
    }


def in_process(world, registry, policy: str, margin: str):
    """``run_backtest`` of the spec's policies, views built as ``market_setup`` builds them (one origin each)."""
    from forecaster.backtest.engine import collateral_event_bars, run_backtest
    from forecaster.backtest.forecasts import forecast_views, views_provider
    from forecaster.backtest.run import _predict, hedge_policy, margin_policy
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.margin import margin_config_from_spec

    bt, market, legs, path, data = (world[k] for k in ("bt", "market", "legs", "path", "data"))
    model = registry.bundle.model
    n = len(market.index)
    margin_config = margin_config_from_spec(SPEC)
    common = {"drift": drift_config_from_spec(SPEC.values, where=SPEC.path), "margin_config": margin_config,
              "n_scenarios": bt.scenarios}  # fmt: skip

    def predict(bars: np.ndarray, horizon: int) -> pd.DataFrame:
        return pd.concat([_predict(model, data, np.array([t]), horizon) for t in bars])

    decisions = np.arange(START, n, bt.engine.decision_every)
    views = forecast_views(
        market, legs, decisions, predict(decisions, bt.horizon), bt.horizon, source=LABEL,
        margin_bars=np.arange(START, n, bt.engine.margin_every), **common,
    )  # fmt: skip
    moves = collateral_event_bars(bt.engine, legs, START, n)
    margin_views = forecast_views(
        market, legs, moves, predict(moves, bt.margin_h), bt.margin_h, source=f"{LABEL} margin", margin_bars=moves,
        margin_hedge_units={int(t): -float(path.delta_units[t]) for t in moves}, **common,
    )  # fmt: skip
    mpolicy = margin_policy(bt, margin)
    return run_backtest(
        market, legs, hedge_policy(bt.policies[policy], bt), mpolicy, bt.engine, margin_config=margin_config,
        forecasts=views_provider(views), margin_forecasts=views_provider(margin_views) if mpolicy.needs_forecast
        else None, path=path, start_bar=START,
    )  # fmt: skip


@pytest.mark.filterwarnings("ignore:daily_pnl_std is None")  # the record spans one day
@pytest.mark.parametrize(("policy", "margin"), [("band", "static"), ("predictive", "predictive")])
def test_rebalancer_over_http_reproduces_the_in_process_backtest_pnl(live, registry, world, auth, policy, margin):
    import httpx

    from forecaster.margin import margin_config_from_spec
    from serving.audit import read_audit
    from serving.rebalancer import AdjustmentsClient, rebalance

    bt, market, legs = world["bt"], world["market"], world["legs"]
    with httpx.Client(base_url=live.url, headers=auth, timeout=60) as http:
        client = AdjustmentsClient(http)
        remote = rebalance(
            client, world["rows"], market, legs, bt, policy=policy, margin_policy=margin, start_bar=START,
            margin_config=margin_config_from_spec(SPEC),
        )  # fmt: skip
    local = in_process(world, registry, policy, margin)

    got, want = remote.result.record, local.record
    notional = float(np.abs(legs.weight).sum() * market.close[START])
    worst = float(np.max(np.abs(got["pnl"].to_numpy() - want["pnl"].to_numpy())))
    assert worst <= 1e-9 * notional, f"per-bar P&L differs by up to {worst:.3g} (notional {notional:,.0f})"
    assert abs(got["pnl"].sum() - want["pnl"].sum()) <= 1e-9 * notional
    for column in ("hedge_units", "hedge_cost", "posted", "equity", "initial_margin"):
        np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-9 * notional, err_msg=column)
    assert list(remote.result.decisions["reason"]) == list(local.decisions["reason"])
    assert list(remote.result.decisions["fallback"]) == list(local.decisions["fallback"])
    assert list(remote.result.margin_decisions["reason"]) == list(local.margin_decisions["reason"])

    # the decisions are not trivial: trades, a collateral move at the sale, model views for the predictive one
    summary = remote.summary()
    assert summary["n_trades"] >= 3 and summary["margin_moves"] == 2 and remote.margin_gap == 0.0
    assert summary["requests"] == summary["decisions"] + summary["margin_moves"] == len(remote.calls)
    if policy == "predictive":
        assert summary["fallbacks"] == 0 and all(r.startswith(f"{LABEL}: ") for r in local.decisions["reason"])
    audited = {e["request_id"] for e in read_audit(live.service.audit.path) if e["kind"] == "adjustment"}
    assert {c.request_id for c in remote.calls} <= audited


@pytest.mark.filterwarnings("ignore:daily_pnl_std is None")
def test_rebalance_command_end_to_end(live, auth, tmp_path, capsys):
    from forecaster import cli

    out = tmp_path / "run.json"
    key = auth["Authorization"].removeprefix("Bearer ")
    words = ["rebalance", "--url", live.url, "--api-key", key, "--policy", "band", "--days", "0.35", "--seed", "5"]
    assert cli.main([*words, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert "simulated 1 + 0.35 days (seed 5)" in printed and "latency p50" in printed
    assert summary["policy"] == "band" and summary["margin_policy"] == "static" and summary["seed"] == 5
    assert summary["requests"] == summary["decisions"] + summary["margin_moves"] > 30
    assert summary["model"]["min_rows"] == 122 and summary["latency_ms"]["p99"] > 0
    assert set(summary["metrics"]) >= {"hedging_cost", "daily_pnl_cvar95", "n_trades"}

    assert cli.main([*words[:5], "--policy", "oracle"]) == 2
    assert "reads the simulator's truth" in capsys.readouterr().err
    assert cli.main(["rebalance", "--url", "http://127.0.0.1:9", "--api-key", key, "--days", "0.1"]) == 2
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
