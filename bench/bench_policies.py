"""The policy acceptance study: hedge and margin policies on several simulated markets, pooled.

CVaR95 of daily P&L over one 60- or 120-day market rests on 3 to 6 days, so one market cannot tell a 10% difference
from noise. This script runs the same pipeline as ``forecaster backtest --sweep`` (``forecaster.backtest.run``:
the model fitted on each market's first ``train_days``, the policies on the rest) on several markets (simulator
seeds) in parallel processes and pools them:

- **hedge frontiers**: per policy and swept value, the mean hedging cost per market and the CVaR95 (and std) of the
  daily P&L of all markets together; then the predictive policies' CVaR at matched cost against the best reactive
  band (the lower envelope of ``band``, ``band_edge`` and ``threshold``, interpolated along their frontiers) and
  against Whalley-Wilmott, and the zero-cost every-bar hedge (the floor no delta hedge goes below);
- **margin**: every margin policy's sweep under the spec's predictive hedge: breaches (summed over markets) against
  mean idle collateral, and the predictive top-up's breaches against the static buffer's at the same idle
  collateral (interpolated along the static sweep);
- **Greek-drift forecasts** at the spec's horizon (and ``--drift-horizons``): coverage of the 90% interval and
  pinball loss of the model-fed drift engine, the naive forecast and the direct LightGBM model, pooled over
  markets (origins every ``margin_every`` bars).

    python bench/bench_policies.py                                   # seeds 9-12, 120 days each, 2 processes
    python bench/bench_policies.py --seeds 9 --days 30 --json out.json --drift-horizons 60
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

REACTIVE = ("band", "band_edge", "threshold")


def one_market(config: str, seed: int, days: float, drift_horizons: tuple[int, ...]) -> dict[str, Any]:
    """Every swept hedge policy, every margin sweep and the drift evaluation on one simulated market."""
    from forecaster.backtest.costs import CostModel
    from forecaster.backtest.metrics import daily_pnl
    from forecaster.backtest.run import backtest_spec, drift_evaluation, run_policy, simulated_setup, with_engine
    from forecaster.config import load_spec

    started = time.perf_counter()
    spec = load_spec(config)
    bt = replace(backtest_spec(spec.values, where=spec.path), seed=seed, days=days)
    setup = simulated_setup(spec, bt)

    def daily(result) -> list[float]:
        rec = result.record
        return daily_pnl(pd.Series(rec["pnl"].to_numpy(), index=pd.DatetimeIndex(rec["timestamp"]))).tolist()

    hedge: dict[str, list[dict[str, Any]]] = {}
    for name, p in bt.policies.items():
        for value in p.sweep or ([None] if p.kind == "none" else []):
            result = run_policy(setup, bt, p, value=value)
            hedge.setdefault(name, []).append(
                {"param": value, "cost": result.metrics["hedging_cost"], "daily": daily(result)}
            )
    free = with_engine(bt, decision_every=1, costs=CostModel(fee_rate=0.0, impact_coef=0.0))
    band = replace(bt.policies["band"], params={**bt.policies["band"].params, "band_units": 0.0})
    hedge["floor"] = [{"param": 0.0, "cost": 0.0, "daily": daily(run_policy(setup, free, band))}]

    predictive = next(n for n, p in bt.policies.items() if p.kind == "predictive" and p.source != "oracle")
    margin = []
    for name, values in bt.margin_sweeps.items():
        for value in values:
            m = run_policy(setup, bt, bt.policies[predictive], margin=name, margin_value=value).metrics
            keys = ("margin_breaches", "breach_bars", "forced_liquidations", "mean_idle_collateral")
            margin.append({"policy": name, "param": value, **{k: m[k] for k in keys}})

    drift = []
    for h in drift_horizons:
        if h == bt.horizon:
            s, b = setup, bt
        else:  # views at another horizon: the model-fed predictive policy's only
            b = replace(bt, horizon=h, policies={predictive: bt.policies[predictive]}, margin_policies={})
            s = simulated_setup(spec, b)
        table = drift_evaluation(s, b)["table"]
        drift.extend({"horizon": h, **row} for row in table.to_dict(orient="records"))
    return {
        "seed": seed,
        "days": days,
        "description": setup.description,
        "hedge": hedge,
        "margin": margin,
        "drift": drift,
        "seconds": time.perf_counter() - started,
    }


def pooled_frontiers(markets: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per policy: one row per swept value, mean cost per market, CVaR95 and std of the pooled daily P&L."""
    from forecaster.backtest.metrics import expected_shortfall

    out = {}
    for name in markets[0]["hedge"]:
        rows = []
        for i, point in enumerate(markets[0]["hedge"][name]):
            days = np.concatenate([m["hedge"][name][i]["daily"] for m in markets])
            cost = float(np.mean([m["hedge"][name][i]["cost"] for m in markets]))
            rows.append({"param": point["param"], "cost": cost, "cvar95": expected_shortfall(days, 0.95),
                         "std": float(np.std(days, ddof=1)), "days": days.size})  # fmt: skip
        out[name] = pd.DataFrame(rows).sort_values("cost", kind="stable").reset_index(drop=True)
    return out


def _at(frame: pd.DataFrame, cost: float, column: str = "cvar95") -> float:
    from forecaster.backtest.metrics import value_at_cost

    if not frame["cost"].min() <= cost <= frame["cost"].max():
        return math.nan
    return value_at_cost(frame["cost"], frame[column], cost)


def matched(frontiers: dict[str, pd.DataFrame], ours: str) -> pd.DataFrame:
    """At each swept point of ``ours``: its CVaR against the best reactive band's and Whalley-Wilmott's there."""
    rows = []
    for point in frontiers[ours].itertuples():
        reactive = {n: _at(frontiers[n], point.cost) for n in REACTIVE if n in frontiers}
        finite = {n: v for n, v in reactive.items() if math.isfinite(v)}
        best = min(finite, key=finite.get) if finite else None
        ww = _at(frontiers["ww"], point.cost) if "ww" in frontiers else math.nan
        rows.append(
            {
                "param": point.param,
                "cost": point.cost,
                "cvar95": point.cvar95,
                "best_reactive": best,
                "reactive_cvar95": finite.get(best, math.nan) if best else math.nan,
                "ratio_reactive": point.cvar95 / finite[best] if best else math.nan,
                "ww_cvar95": ww,
                "ratio_ww": point.cvar95 / ww if math.isfinite(ww) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def margin_table(markets: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summed breaches and mean idle collateral per (policy, param); and each predictive point against the static
    buffer's breaches interpolated at the same idle collateral."""
    frame = pd.concat([pd.DataFrame(m["margin"]) for m in markets])
    sums = frame.groupby(["policy", "param"], sort=False).agg(
        margin_breaches=("margin_breaches", "sum"),
        forced_liquidations=("forced_liquidations", "sum"),
        mean_idle_collateral=("mean_idle_collateral", "mean"),
    )
    sums = sums.reset_index()
    static = sums[sums["policy"] == "static"].rename(columns={"mean_idle_collateral": "cost"})
    rows = []
    for point in sums[sums["policy"] == "predictive"].itertuples():
        at = _at(static.sort_values("cost"), point.mean_idle_collateral, "margin_breaches")
        rows.append(
            {
                "cushion": point.param,
                "idle": point.mean_idle_collateral,
                "breaches": point.margin_breaches,
                "static_breaches_at_idle": at,
                "ratio": point.margin_breaches / at if math.isfinite(at) and at > 0 else math.nan,
            }
        )
    return sums, pd.DataFrame(rows)


def drift_table(markets: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([row for m in markets for row in m["drift"]])
    weights = frame["n"]
    cols = ["coverage_interval", "coverage_q05", "coverage_q95", "pinball_mean"]
    out = (
        frame.assign(**{c: frame[c] * weights for c in cols})
        .groupby(["horizon", "target", "source"])[[*cols, "n"]]
        .sum()
    )
    for c in cols:
        out[c] = out[c] / out["n"]
    return out.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="sim_intraday")
    parser.add_argument("--seeds", default="9,10,11,12", help="simulator seeds of the markets (comma-separated)")
    parser.add_argument("--days", type=float, default=120.0, help="backtested days per market")
    parser.add_argument("--drift-horizons", default="60,240", help="horizons (bars) of the drift evaluation")
    parser.add_argument("--jobs", type=int, default=2, help="markets run at once (processes)")
    parser.add_argument("--json", help="write everything (frontiers, matched, margin, drift) here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    horizons = tuple(int(h) for h in args.drift_horizons.split(",") if h.strip())
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(one_market, args.config, s, args.days, horizons) for s in seeds]
        markets = []
        for future in futures:
            markets.append(future.result())
            m = markets[-1]
            print(f"seed {m['seed']}: {m['description']} ({m['seconds']:.0f} s)", flush=True)
    wall = time.perf_counter() - started
    frontiers = pooled_frontiers(markets)
    days = int(frontiers["floor"]["days"].iloc[0])
    fmt = {"display.width": 200, "display.max_columns": 20, "display.float_format": "{:,.4g}".format}
    with pd.option_context(*[x for kv in fmt.items() for x in kv]):
        print(f"\n{len(markets)} markets x {args.days:g} days = {days} daily P&Ls pooled; {wall:.0f} s wall")
        print(f"floor (zero-cost hedge at every bar): CVaR95 {frontiers['floor']['cvar95'].iloc[0]:,.0f}")
        for name, frame in frontiers.items():
            if name != "floor":
                points = "; ".join(f"{r.param:g}: {r.cost:,.0f} -> {r.cvar95:,.0f}" for r in frame.itertuples()
                                   if r.param is not None)  # fmt: skip
                print(f"  {name:<12} {points or frame[['cost', 'cvar95']].to_string(index=False)}")
        comparisons = {}
        for name in frontiers:
            if name.startswith(("predictive", "oracle")):
                comparisons[name] = matched(frontiers, name)
                print(f"\n{name} at matched cost (ratio < 1: less tail risk than the other at the same cost):")
                print(comparisons[name].to_string(index=False))
        sums, versus = margin_table(markets)
        print("\nmargin policies (breaches summed over the markets, idle collateral averaged):")
        print(sums.to_string(index=False))
        print("\npredictive top-up against the static buffer at the same idle collateral:")
        print(versus.to_string(index=False))
        drift = drift_table(markets)
        print("\nGreek-drift forecasts (pooled over the markets):")
        print(drift.to_string(index=False))
    if args.json:
        payload = {
            "seeds": seeds,
            "days": args.days,
            "wall_s": wall,
            "frontiers": {n: f.to_dict(orient="records") for n, f in frontiers.items()},
            "matched": {n: f.to_dict(orient="records") for n, f in comparisons.items()},
            "margin": sums.to_dict(orient="records"),
            "margin_vs_static": versus.to_dict(orient="records"),
            "drift": drift.to_dict(orient="records"),
        }
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=2, default=lambda x: None)


if __name__ == "__main__":
    main()
