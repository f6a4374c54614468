"""``forecaster backtest`` end to end on a small simulated market (4 training days, 3 backtested): every policy's
metrics, the margin comparison, the sweep frontiers and the matched-cost table, plots, JSON and the MLflow runs; and
spec errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from forecaster import cli
from forecaster.config import resolve_spec_path

POLICIES = ["none", "fixed", "band", "band_edge", "threshold", "ww", "predictive", "oracle"]


@pytest.fixture(scope="module")
def small_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sim_intraday with short feature windows (a warm-up under a day), so 4 training days suffice."""
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["name"] = "backtest_cli"
    values["features"].update({"windows": [15, 60, 240], "iv_percentile_days": 1, "chain_tenors_days": [7, 30]})
    values["backtest"]["hedge_policies"]["band"]["sweep"] = [0.4, 1.6]
    values["backtest"]["calibration_days"] = 1  # the last training day calibrates the drift forecasts
    values["backtest"]["collateral_every"] = 240  # a day's margin horizon would leave too few training days
    path = tmp_path_factory.mktemp("backtest_cli") / "backtest_cli.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def test_backtest_runs_every_policy_sweeps_and_tracks(small_spec: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["backtest", "--config", str(small_spec), "--days", "3", "--train-days", "5", "--sweep", "--json", "bt.json"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "policies on the last 3 days (4,320 bars, 6 option legs)" in out
    report = json.loads((tmp_path / "bt.json").read_text())
    assert list(report["policies"]) == POLICIES
    design = {"cost", "pnl_total", "pnl_std_daily", "cvar95_daily", "max_abs_delta", "margin_breaches",
              "forced_liquidations", "mean_idle_collateral", "n_trades"}  # fmt: skip  # DESIGN section 11
    for metrics in report["policies"].values():
        assert design <= set(metrics)
        assert metrics["days"] == 3 and metrics["cost"] >= 0 and metrics["cvar95_daily"] is not None
    assert report["policies"]["none"]["cost"] == 0.0 and report["policies"]["none"]["n_trades"] == 0
    assert report["policies"]["band"]["n_trades"] > 0
    assert set(report["margin_policies"]) == {"static", "reactive", "predictive"}
    # the static buffer holds 1.5 x IM at every check: more idle collateral than the reactive top-up
    margin = report["margin_policies"]
    assert margin["static"]["mean_idle_collateral"] > margin["reactive"]["mean_idle_collateral"]
    assert [row["param"] for row in report["frontier"]["band"]] == [0.4, 1.6]
    assert all(set(row) == {"param", "cost", "cvar95_daily", "pnl_std_daily"} for row in report["frontier"]["band"])
    assert {row["policy"] for row in report["matched"]} == {p for p in POLICIES if p in report["frontier"]} - {
        "predictive"
    }
    swept = pd.DataFrame(report["margin_frontier"])
    assert sorted(swept.groupby("policy").size().items()) == [("predictive", 5), ("reactive", 3), ("static", 6)]
    static = swept[swept["policy"] == "static"].sort_values("param")
    assert static["mean_idle_collateral"].is_monotonic_increasing  # a bigger buffer holds more idle collateral
    drift = {(row["source"], row["target"]) for row in report["drift_forecasts"]}
    assert {("model", "delta"), ("naive", "delta"), ("model", "margin"), ("naive", "gamma")} <= drift
    assert {("model_uncalibrated", "delta"), ("direct", "vega")} <= drift
    for row in report["drift_forecasts"]:
        assert row["n"] > 10 and 0 <= row["coverage_interval"] <= 1 and row["pinball_mean"] >= 0
    for name in ("pnl_paths", "drawdowns", "frontiers", "margin_static", "margin_predictive", "fan_delta"):
        assert (tmp_path / "backtest_out" / f"{name}.png").stat().st_size > 10_000
    runs = mlflow.search_runs(experiment_names=["backtest_cli"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("command") == "backtest"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and sorted(r.info.run_name for r in children) == sorted(POLICIES)
    band = next(r for r in children if r.info.run_name == "band")
    assert band.data.metrics["daily_pnl_cvar95"] == pytest.approx(report["policies"]["band"]["cvar95_daily"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, "backtest.bogus: unknown key"),
        ({"hedge_policies": {"x": {"policy": "yolo"}}}, "backtest.hedge_policies.x.policy: unknown 'yolo'"),
        ({"hedge_policies": {"x": {"policy": "none", "sweep": [1]}}}, "has no parameter to sweep"),
        ({"margin_policy": "maybe"}, "backtest.margin_policy: unknown 'maybe'"),
        ({"costs": {"fee": 0.1}}, "backtest.costs.fee: unknown key"),
    ],
)
def test_spec_errors_name_the_key(small_spec: Path, tmp_path: Path, change: dict, message: str, capsys) -> None:
    values = yaml.safe_load(small_spec.read_text())
    values["backtest"].update(change)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values, sort_keys=False))
    assert cli.main(["backtest", "--config", str(bad), "--no-track"]) == 2
    assert message in capsys.readouterr().err


def test_unknown_policy_flag(small_spec: Path, capsys) -> None:
    assert cli.main(["backtest", "--config", str(small_spec), "--policy", "band,nope", "--no-track"]) == 2
    assert "--policy: ['nope'] not in backtest.hedge_policies" in capsys.readouterr().err


def test_a_har_learns_from_the_end_of_its_own_inputs_warm_up(small_spec: Path) -> None:
    """The longest warm-up of the small spec is the 1-day IV percentile (1,440 bars); harx_range reads only the
    realized windows (rv_240 is known from bar 240: the first bar has no return) and the IV, so it is fitted from bar
    240 (every 15 bars), not from 1,440."""
    from features.pipeline import feature_spec_from_spec
    from forecaster.backtest.run import backtest_spec, fit_forecaster
    from forecaster.config import load_spec
    from forecaster.market.simulator import sim_config_from_spec
    from training.data import model_data, simulated_market

    spec = load_spec(str(small_spec))
    bt = backtest_spec(spec.values, where=spec.path)
    values = {**spec.values, "simulator": {**spec.values["simulator"], "days": 5}}
    market, truth = simulated_market(sim_config_from_spec(values, where=spec.path), with_trades=False)
    data = model_data(market, feature_spec_from_spec(values, where=spec.path), [bt.horizon], truth=truth)
    warmup = data.info["warmup"]
    assert max(warmup.values()) >= 1_440 and max(warmup[c] for c in ("rv_240", "gk_240")) == 240
    start = 4 * 1440
    model = fit_forecaster(spec, bt, data, start, "model")
    expected = np.arange(240, start - bt.horizon, 15)  # origins with a finite target, all of them here
    assert model.n_fit_rows_[bt.horizon] == expected.size


def test_backtest_on_market_files(small_spec: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Bars and an IV index as files (written by ``simulate``): the policies run on the last 2 days, the model learns
    on the 5 before; the oracle-fed policy is left out (files have no truth); no IV is a usage error."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["simulate", "--config", str(small_spec), "--days", "7", "--out", "sim", "--no-trades"]) == 0
    capsys.readouterr()
    files = ["--bars", "sim/bars.parquet", "--iv-index", "sim/iv_index.parquet"]
    args = ["backtest", "--config", str(small_spec), *files, "--days", "2", "--no-track", "--json", "bt.json"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "note: oracle left out" in out and "sim/bars.parquet: 5.0 days of training + the last 2 days" in out
    report = json.loads((tmp_path / "bt.json").read_text())
    assert list(report["policies"]) == [p for p in POLICIES if p != "oracle"]
    assert all(m["days"] == 2 for m in report["policies"].values())
    # a portfolio file as the book: its options traded at the first backtested bar, its perp the starting hedge
    book = tmp_path / "book.yaml"
    book.write_text(
        "positions:\n"
        "  - {id: c, instrument: option, underlying: BTC, option_type: call, strike: 50000,"
        " expiry: '2026-01-07T08:00:00Z', quantity: -2}\n"
        "  - {id: p, instrument: option, underlying: BTC, option_type: put, strike: 45000,"
        " expiry: '2026-02-27T08:00:00Z', quantity: -3}\n"
        "  - {id: h, instrument: perp, underlying: BTC, quantity: 1.5}\n"
        "collateral: 250000\n"
    )
    args = ["backtest", "--config", str(small_spec), *files, "--portfolio", str(book), "--days", "2", "--no-track",
            "--policy", "none,band", "--sweep", "--json", "book.json"]  # fmt: skip
    assert cli.main(args) == 0
    assert "(2,880 bars, 2 option legs)" in capsys.readouterr().out
    held = json.loads((tmp_path / "book.json").read_text())
    assert list(held["policies"]) == ["none", "band"] and held["policies"]["none"]["n_trades"] == 0
    assert [row["param"] for row in held["frontier"]["band"]] == [0.4, 1.6]
    assert cli.main(["backtest", "--config", str(small_spec), "--portfolio", str(book), "--no-track"]) == 2
    assert "--portfolio needs --bars" in capsys.readouterr().err
    assert cli.main(["backtest", "--config", str(small_spec), "--bars", "sim/bars.parquet", "--no-track"]) == 2
    assert "give --iv-index or --options" in capsys.readouterr().err
    assert cli.main(["backtest", "--config", str(small_spec), *files, "--days", "6.5", "--no-track"]) == 2
    assert "too short to backtest 6.5 days" in capsys.readouterr().err
    assert cli.main(["backtest", "--config", str(small_spec), *files, "--seed", "3", "--no-track"]) == 2
    assert "--train-days and --seed apply to the simulated market" in capsys.readouterr().err


def test_the_predictive_margin_policy_reads_views_to_the_next_collateral_move(small_spec: Path) -> None:
    """With collateral moved every 240 bars (and at each day's sale), the model forecasts 239 bars ahead (the bar
    before the next move), one view per move; the predictive margin policy decides from the forecast margin need at
    every move, without the fallback, and moves nothing between them."""
    from dataclasses import replace

    from forecaster.backtest.engine import collateral_event_bars
    from forecaster.backtest.run import backtest_spec, run_policy, simulated_setup
    from forecaster.config import load_spec

    spec = load_spec(str(small_spec))
    bt = backtest_spec(spec.values, where=spec.path)
    bt = replace(bt, days=2, train_days=5, policies={"band": bt.policies["band"]}, calibration_days=0)
    assert bt.margin_h == 239
    setup = simulated_setup(spec, bt)
    moves = collateral_event_bars(bt.engine, setup.legs, setup.start_bar, len(setup.market.index))
    assert sorted(setup.margin_views) == moves.tolist()
    assert all(v.horizon == 239 and set(v.margin_need_quantiles) >= {0.95, 0.99} for v in setup.margin_views.values())
    result = run_policy(setup, bt, bt.policies["band"], margin="predictive")
    decided = result.margin_decisions[result.margin_decisions["collateral_move"]]
    assert decided["bar"].tolist() == moves.tolist()
    assert not decided["fallback"].any()
    assert decided["reason"].str.contains("margin need").any()
    between = result.margin_decisions[~result.margin_decisions["collateral_move"]]
    assert (between.loc[~between["forced_liquidation"], "transfer"] == 0).all()
