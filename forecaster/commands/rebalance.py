"""``forecaster rebalance``: the reference client of the service (DESIGN section 9).

It simulates the spec's market (its ``simulator`` section, seed ``--seed``, default ``backtest.seed``): a warm-up
of whole days holding at least the served model's ``min_rows`` bars, then ``--days`` days in which the desk holds
the spec's book (``backtest.book``, short straddles by default) and asks ``POST /v1/portfolio/adjustments`` at every
decision bar (``backtest.decision_every``) and collateral move what to do, sending the last ``min_rows`` bars (and
IV), the open legs, the hedge and its account. The engine of ``forecaster backtest`` steps the market and accounts
the P&L, so a run is the backtest of the policy with the service deciding (:mod:`serving.rebalancer`).

Prints P&L, cost, trades, fallbacks, requests and their latency; ``--json`` writes them with the policy metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_KEY_ENV = "FORECASTER_API_KEY"


@dataclass(frozen=True)
class DeskMarket:
    """What the desk trades: the market (``BacktestMarket``), its bars as request rows, the book's legs from
    ``start`` (the first traded bar) on, and a description."""

    market: Any
    rows: list[dict[str, Any]]
    legs: Any
    start: int
    description: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the service's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key", metavar="KEY", help=f"a client key of the service (default: the environment's {API_KEY_ENV})"
    )
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    parser.add_argument(
        "--policy", metavar="NAME", help="a name of backtest.hedge_policies (default: its first predictive one)"
    )
    parser.add_argument(
        "--margin-policy", choices=("static", "reactive", "predictive"), help="default backtest.margin_policy"
    )
    parser.add_argument("--days", type=float, default=1.0, help="days the desk trades after the warm-up (default 1)")
    parser.add_argument("--seed", type=int, help="simulator seed of the market (default backtest.seed)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per request (default 60)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="the summary and the policy metrics as JSON")


def run(args: argparse.Namespace) -> int:
    import httpx

    from forecaster.backtest.run import backtest_spec
    from forecaster.config import load_spec
    from forecaster.errors import UsageError
    from forecaster.margin import margin_config_from_spec
    from serving.adjust import margin_policy_name, policy_spec
    from serving.rebalancer import AdjustmentsClient, ServiceError, rebalance

    spec = load_spec(args.config or "sim_intraday")
    bt = backtest_spec(spec.values, where=spec.path)
    policy = policy_spec(bt, args.policy).name
    margin = margin_policy_name(bt, args.margin_policy)
    key = args.api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise UsageError(f"no API key: pass --api-key KEY or set {API_KEY_ENV}")
    if not (math.isfinite(args.days) and args.days > 0):
        raise UsageError(f"--days must be a number of days > 0; got {args.days}")
    seed = bt.seed if args.seed is None else args.seed
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=args.timeout) as http:
        client = AdjustmentsClient(http)
        try:
            info = client.model()
        except httpx.TransportError as exc:
            raise ServiceError(f"cannot reach {args.url}: {exc!r}; is `forecaster serve` running there?") from exc
        desk = simulated_desk(spec, bt, info, days=args.days, seed=seed)
        print(
            f"rebalance: {args.url}, model {info.get('name')} v{info.get('version')} ({info.get('model_name')}); "
            f"{desk.description}; policy {policy}, margin policy {margin}"
        )
        done = rebalance(
            client, desk.rows, desk.market, desk.legs, bt, policy=policy, margin_policy=margin, start_bar=desk.start,
            margin_config=margin_config_from_spec(spec), model=info,
        )  # fmt: skip
    summary = {"url": args.url, "days": args.days, "seed": seed, **done.summary()}
    print(format_summary(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, allow_nan=False, default=str))
        print(f"summary written to {args.json}")
    return 0


def simulated_desk(spec: Any, bt: Any, info: dict[str, Any], *, days: float, seed: int) -> DeskMarket:
    """The spec's simulated market (a warm-up of whole days holding the model's ``min_rows`` bars, then ``days``),
    its rows in the model's IV units and bar labels, and the spec's book traded from the end of the warm-up on."""
    import numpy as np
    import pandas as pd

    from forecaster.backtest.books import OptionLegs, make_book
    from forecaster.backtest.engine import BacktestMarket
    from forecaster.errors import UsageError
    from forecaster.market.simulator import sim_config_from_spec
    from models.pyfunc import request_frame
    from serving.rebalancer import request_rows
    from training.data import market_iv, simulated_market

    bar = pd.Timedelta(info["bar_length"])
    warm_days = max(1, math.ceil(int(info["min_rows"]) * bar / pd.Timedelta(days=1)))
    values = {**spec.values, "simulator": {**spec.values.get("simulator", {}), "days": warm_days + days, "seed": seed}}
    config = sim_config_from_spec(values, where=spec.path)
    if pd.Timedelta(config.freq) != bar:
        raise UsageError(
            f"the served model reads {bar} bars, the spec's simulator makes {pd.Timedelta(config.freq)} bars: pass the "
            "--config the model was trained on"
        )
    market, _ = simulated_market(config, with_chain=False, with_trades=False)
    index = market.bars.index
    bt_market = BacktestMarket(index, market.bars["close"].to_numpy(float), market_iv(market), market.bar_years)
    start = int(index.searchsorted(index[0] + pd.Timedelta(days=warm_days)))
    legs = make_book(bt.book, index, bt_market.close, seed=bt.seed)
    keep = legs.start_bar >= start  # as the backtest: the book is traded from the first decision on
    legs = OptionLegs(
        legs.strike[keep], legs.is_call[keep], legs.weight[keep], legs.start_bar[keep], legs.expiry_bar[keep],
        legs.expiry[keep], tuple(np.asarray(legs.label, dtype=object)[keep]) if legs.label else (),
    )  # fmt: skip
    units = "pct" if info.get("iv_units") == "pct" else "dec"
    frame = request_frame(market, len(index), bar_label=str(info.get("bar_label", "end")), iv_units=units)
    what = f"simulated {warm_days} + {days:g} days (seed {seed}), {len(index) - start:,} bars, {len(legs)} option legs"
    return DeskMarket(bt_market, request_rows(frame), legs, start, what)


def format_summary(summary: dict[str, Any]) -> str:
    """The printed summary of a run."""
    latency = summary["latency_ms"]
    metrics = summary["metrics"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:,.4g}"

    return "\n".join(
        [
            f"{summary['start']} .. {summary['end']} ({summary['bars']:,} bars)",
            f"P&L {summary['pnl_total']:,.2f}   hedging cost {summary['cost']:,.2f}   trades {summary['n_trades']}   "
            f"decisions {summary['decisions']}   fallbacks {summary['fallbacks']}",
            f"collateral moves {summary['margin_moves']} (fallbacks {summary['margin_fallbacks']})   forced "
            f"liquidations {summary['forced_liquidations']}",
            f"daily P&L std {number(metrics.get('daily_pnl_std'))}   CVaR95 {number(metrics.get('daily_pnl_cvar95'))}"
            f"   max |net delta| {number(metrics.get('max_abs_net_delta'))}",
            f"requests {summary['requests']}   latency p50 {ms(latency['p50'])}   p90 {ms(latency['p90'])}   "
            f"p99 {ms(latency['p99'])}   max {ms(latency['max'])}",
        ]
    )
