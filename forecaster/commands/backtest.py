"""``forecaster backtest``: hedge and margin policies stepped through the spec's simulated market (DESIGN section 10).

The market spans ``backtest.train_days + backtest.days``: the forecasting model (``backtest.model``) learns on the
first part only, the policies run on the last (:mod:`forecaster.backtest.run`). Every hedge policy of
``backtest.hedge_policies`` (or ``--policy``) runs with the spec's margin policy; the margin policies are then
compared under the first predictive hedge policy. ``--sweep`` traces each policy's cost-risk frontier over its
``sweep`` values and reads the predictive policy's CVaR against the others at matched cost. The Greek-drift
forecasts (model, naive, direct LightGBM) are scored against the drift realized by the fixed book. Tables are printed,
plots and tables written under ``--out``, metrics to ``--json``, and each policy is an MLflow run (nested under one
parent) so the UI compares them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster.backtest.metrics import POLICY_METRIC_KEYS

# the printed table: every policy metric but the totals a reader gets from the others
TABLE_COLUMNS = tuple(k for k in POLICY_METRIC_KEYS if k not in ("pnl_total", "breach_bars", "days"))
# DESIGN section 11: the --json keys of a policy (ours -> the metric) and of a frontier point
JSON_POLICY_KEYS = {
    "cost": "hedging_cost",
    "pnl_total": "pnl_total",
    "pnl_std_daily": "daily_pnl_std",
    "cvar95_daily": "daily_pnl_cvar95",
    "max_abs_delta": "max_abs_net_delta",
    "margin_breaches": "margin_breaches",
    "forced_liquidations": "forced_liquidations",
    "mean_idle_collateral": "mean_idle_collateral",
    "n_trades": "n_trades",
    # beyond section 11
    "pnl_mean_daily": "daily_pnl_mean",
    "time_outside_limits": "time_outside_limits",
    "breach_bars": "breach_bars",
    "days": "days",
}
JSON_FRONTIER_KEYS = {"param": "param", "cost": "hedging_cost", "cvar95_daily": "daily_pnl_cvar95",
                      "pnl_std_daily": "daily_pnl_std"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    parser.add_argument("--policy", help="comma-separated names from backtest.hedge_policies (default: all)")
    parser.add_argument("--margin-policy", choices=("static", "reactive", "predictive"), help="overrides the spec")
    parser.add_argument(
        "--sweep", action="store_true", help="trace each policy's cost-risk frontier (its sweep values)"
    )
    parser.add_argument("--days", type=float, help="backtested days (backtest.days)")
    parser.add_argument("--train-days", type=float, help="days the forecasting model learns on (backtest.train_days)")
    parser.add_argument("--seed", type=int, help="simulator seed of the backtest market (backtest.seed)")
    from forecaster.commands.features import add_market_file_arguments

    data = parser.add_argument_group(
        "market files (none: the spec's simulated market); the policies run on the last --days, the model learns on "
        "everything before"
    )
    add_market_file_arguments(data)
    data.add_argument(
        "--portfolio",
        type=Path,
        metavar="FILE",
        help="the book (with --bars): a portfolio file's options, traded at the first backtested bar, its linear "
        "positions the hedge's start, its collateral the first posted (default: the spec's generated book)",
    )
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", type=Path, default=Path("backtest_out"), help="folder for plots and tables")
    out.add_argument("--json", type=Path, metavar="PATH", help="metrics per policy (and frontiers) as JSON")
    out.add_argument("--no-track", action="store_true", help="do not log to MLflow")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from forecaster.backtest.run import backtest_spec, run_policy, simulated_setup, sweep_policy
    from forecaster.config import load_spec
    from forecaster.errors import UsageError

    spec = load_spec(args.config or "sim_intraday")
    bt = backtest_spec(spec.values, where=spec.path)
    bt = replace(
        bt,
        days=args.days if args.days is not None else bt.days,
        train_days=args.train_days if args.train_days is not None else bt.train_days,
        seed=args.seed if args.seed is not None else bt.seed,
        margin_policy=args.margin_policy or bt.margin_policy,
    )
    names = list(bt.policies)
    if args.policy:
        wanted = [s.strip() for s in args.policy.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in bt.policies]
        if unknown:
            raise UsageError(f"--policy: {unknown} not in backtest.hedge_policies ({', '.join(names)})")
        names = wanted
    if args.bars is not None:
        if args.train_days is not None or args.seed is not None:
            raise UsageError(
                "--train-days and --seed apply to the simulated market; with --bars the model learns on everything "
                "before the last --days"
            )
        oracle = [n for n in names if bt.policies[n].source == "oracle"]
        if oracle:
            print(
                f"note: {', '.join(oracle)} left out: an oracle-fed policy needs the simulator's truth; files have none"
            )
            names = [n for n in names if n not in oracle]
    if not names:
        raise UsageError("no hedge policy left to run: pick some with --policy")
    bt = replace(bt, policies={n: bt.policies[n] for n in names})
    if args.portfolio is not None and args.bars is None:
        raise UsageError("--portfolio needs --bars: the simulated market backtests the spec's generated book")
    if args.bars is not None:
        from forecaster.backtest.run import file_setup
        from forecaster.commands.features import _market

        print(f"backtest: {args.bars} (the last {bt.days:g} days), model {bt.model!r}...")
        market = _within_iv(_market(args, spec), str(args.bars))
        portfolio = None
        if args.portfolio is not None:
            from forecaster.market import load_portfolio

            portfolio = load_portfolio(args.portfolio).data
            if bt.engine.initial_collateral is None:  # the collateral the file says is posted
                bt = replace(bt, engine=replace(bt.engine, initial_collateral=float(portfolio.collateral)))
        setup = file_setup(spec, bt, market, str(args.bars), portfolio=portfolio, show_progress=True)
    else:
        print(f"backtest: simulating {bt.train_days:g} + {bt.days:g} days (seed {bt.seed}), model {bt.model!r}...")
        setup = simulated_setup(spec, bt, show_progress=True)
    print(setup.description)
    results = {}
    for name in names:
        results[name] = run_policy(setup, bt, bt.policies[name])
    table = _table({n: r.metrics for n, r in results.items()})
    fallback = {n: float(r.decisions["fallback"].mean()) if len(r.decisions) else 0.0 for n, r in results.items()}
    table["fallback_share"] = pd.Series(fallback)
    print(f"\nhedge policies (margin policy {bt.margin_policy}), {bt.days:g} days:")
    _print(table)

    reference = next((n for n in names if bt.policies[n].kind == "predictive"), names[0])
    margin_results = {}
    for mname in ("static", "reactive", "predictive"):
        margin_results[mname] = run_policy(setup, bt, bt.policies[reference], margin=mname)
    margin_table = _table({n: r.metrics for n, r in margin_results.items()})[
        ["margin_breaches", "forced_liquidations", "mean_idle_collateral"]
    ]
    print(f"\nmargin policies (hedge policy {reference}):")
    _print(margin_table)

    from forecaster.backtest.run import drift_evaluation

    evaluation = drift_evaluation(setup, bt)
    drift_table = evaluation["table"]
    if len(drift_table):
        print(
            f"\nGreek-drift forecasts over {bt.horizon} bars (book held fixed; {int(drift_table['n'].max())} origins): "
            "coverage of quantiles (a calibrated qNN covers NN%) and pinball loss"
        )
        shown = ["n", "coverage_q05", "coverage_q50", "coverage_q95", "coverage_interval", "pinball_mean"]
        _print(drift_table.set_index(["target", "source"])[shown])

    frontiers: dict[str, pd.DataFrame] = {}
    matched = None
    margin_frontier = pd.DataFrame()
    if args.sweep:
        from forecaster.backtest.metrics import matched_cost_comparison

        for name in names:
            if bt.policies[name].sweep:
                frontiers[name] = sweep_policy(setup, bt, bt.policies[name])
        for name, frame in frontiers.items():
            print(f"\nfrontier of {name} (param = {bt.policies[name].sweep_param}):")
            _print(frame.set_index("param")[["hedging_cost", "daily_pnl_std", "daily_pnl_cvar95"]])
        from forecaster.backtest.run import sweep_margin

        margin_frontier = sweep_margin(setup, bt, bt.policies[reference])
        if len(margin_frontier):
            print(f"\nmargin policies swept (hedge policy {reference}; param: multiple of IM, or cushion):")
            _print(margin_frontier.set_index(["policy", "param"]))
        predictive = [n for n in frontiers if bt.policies[n].kind == "predictive" and bt.policies[n].source == "model"]
        if predictive and len(frontiers) > 1:
            matched = matched_cost_comparison(frontiers, predictive[0])
            ours = predictive[0]
            print(f"\n{ours} against the others at matched cost (risk: CVaR95 of daily P&L; ratio: theirs / ours):")
            _print(matched)

    args.out.mkdir(parents=True, exist_ok=True)
    plots = _plots(args.out, results, margin_results, frontiers, reference)
    if "model" in evaluation["forecasts"] and len(evaluation["realized"]):
        from forecaster.backtest.plots import plot_fan

        quantiles = evaluation["forecasts"]["model"]["delta"]
        plots.append(plot_fan(evaluation["realized"], quantiles, args.out / "fan_delta.png"))
    drift_table.to_csv(args.out / "drift_forecasts.csv", index=False)
    table.to_csv(args.out / "policies.csv")
    if args.json:
        payload = {
            "description": setup.description,
            "policies": {n: _json_metrics(r.metrics, fallback[n]) for n, r in results.items()},
            "margin_policies": {n: _json_metrics(r.metrics) for n, r in margin_results.items()},
            **({"frontier": {n: _json_frontier(f) for n, f in frontiers.items()}} if args.sweep else {}),
            "matched": None if matched is None else matched.to_dict(orient="records"),
            "drift_forecasts": drift_table.to_dict(orient="records"),
            "margin_frontier": margin_frontier.to_dict(orient="records"),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False))
        print(f"metrics written to {args.json}")
    print(f"plots and tables in {args.out}/")
    if not args.no_track:
        _track(spec, bt, setup, results, frontiers, plots, drift_table)
    return 0


def _within_iv(market: Any, source: str) -> Any:
    """The market from its first bar with an implied vol (an IV index that starts after the bars), said so."""
    from dataclasses import replace

    from training.data import market_iv

    iv = market_iv(market)
    if iv is None or np.isfinite(iv[0]):
        return market
    finite = np.flatnonzero(np.isfinite(iv))
    if finite.size == 0:
        return market  # the setup says no IV covers the bars
    first = int(finite[0])
    index = market.bars.index
    print(
        f"note: {source}: the implied vol starts at {index[first]} ({first:,} earlier bars have none); the backtest "
        f"uses the bars from there ({len(index) - first:,} of {len(index):,})"
    )
    return replace(market, bars=market.bars.iloc[first:])


def _json_metrics(metrics: dict[str, Any], fallback_share: float | None = None) -> dict[str, Any]:
    """A policy's metrics under the JSON keys of DESIGN section 11 (and a few more)."""
    out = {key: metrics.get(name) for key, name in JSON_POLICY_KEYS.items()}
    if fallback_share is not None:
        out["fallback_share"] = fallback_share
    return out


def _json_frontier(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: row[name] for key, name in JSON_FRONTIER_KEYS.items()} for row in frame.to_dict(orient="records")]


def _table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(metrics).T
    return frame[[c for c in TABLE_COLUMNS if c in frame.columns]]


def _print(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:,.4g}".format):
        print(frame.to_string())


def _plots(out: Path, results, margin_results, frontiers, reference: str) -> list[Path]:
    from forecaster.backtest.plots import plot_drawdowns, plot_frontiers, plot_margin_usage, plot_pnl_paths

    records = {n: r.record for n, r in results.items()}
    paths = [plot_pnl_paths(records, out / "pnl_paths.png"), plot_drawdowns(records, out / "drawdowns.png")]
    for name, result in margin_results.items():
        paths.append(
            plot_margin_usage(result.record, out / f"margin_{name}.png", f"margin policy {name} ({reference})")
        )
    if frontiers:
        paths.append(plot_frontiers(frontiers, out / "frontiers.png"))
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def _track(spec, bt, setup, results, frontiers, plots, drift_table) -> None:
    """One parent run per backtest, one nested run per policy (metrics, parameters, decisions), plots on the parent."""
    import tempfile

    import mlflow

    from forecaster.provenance import code_version
    from training.tracking import setup_tracking

    experiment_id = setup_tracking(spec.name)
    version = code_version()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest {spec.name}") as parent:
        mlflow.set_tags({"command": "backtest", "spec": spec.name, "run_type": "command", **_tags(version)})
        mlflow.log_params({"days": bt.days, "train_days": bt.train_days, "seed": bt.seed, "model": bt.model})
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="plots")
        for row in drift_table.to_dict(orient="records"):
            prefix = f"drift/{row['source']}/{row['target']}"
            mlflow.log_metrics(
                {f"{prefix}/{k}": float(v) for k, v in row.items() if k not in ("source", "target") and _finite(v)}
            )
        for name, result in results.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True):
                p = bt.policies[name]
                mlflow.set_tags({"run_type": "policy", "policy": p.kind, "spec": spec.name})
                mlflow.log_params({"policy": p.kind, **{k: v for k, v in p.params.items()}, "source": p.source})
                mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if _finite(v)})
                with tempfile.TemporaryDirectory() as tmp:
                    decisions = Path(tmp) / "decisions.csv"
                    result.decisions.to_csv(decisions, index=False)
                    mlflow.log_artifact(str(decisions))
                if name in frontiers:
                    for step, row in enumerate(frontiers[name].itertuples(index=False)):
                        mlflow.log_metrics(
                            {"sweep/hedging_cost": row.hedging_cost, "sweep/daily_pnl_cvar95": row.daily_pnl_cvar95},
                            step=step,
                        )
    print(f"MLflow: run {parent.info.run_id} (one nested run per policy) in experiment {spec.name!r}")


def _tags(version: dict[str, Any]) -> dict[str, str]:
    return {f"code_{k}": str(v) for k, v in version.items()}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
