"""``forecaster drift``: the distribution of a book's Greeks, P&L and margin at t+h, and their drift from now."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from forecaster.commands._market import add_market_arguments, load_book, resolve_market
from forecaster.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_market_arguments(parser)
    parser.add_argument("--horizon", type=int, metavar="H", help="horizon in bars; default the spec's first horizon")
    parser.add_argument(
        "--forecast",
        type=Path,
        metavar="PATH",
        help="predictions file (DESIGN section 5); default: the simulator's oracle on simulated data, else the "
        "ATM implied vol",
    )
    parser.add_argument("--model", help="which model's rows of --forecast to use when it holds several")
    parser.add_argument("--scenarios", type=int, metavar="N", help="scenario count (overrides drift.n_scenarios)")
    parser.add_argument("--seed", type=int, help="scenario seed (overrides drift.seed)")
    parser.add_argument("--sampling", choices=("sobol", "antithetic", "random"), help="overrides drift.sampling")
    parser.add_argument("--margin-model", choices=("risk_matrix", "span"), help="overrides margin.model of the spec")
    parser.add_argument("--json", metavar="PATH", help="write the drift distribution as JSON (DESIGN section 11)")
    parser.add_argument("--plot", metavar="PNG", help="draw the distributions at t+h and the P&L profile to this PNG")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from forecaster.drift import drift_distribution
    from forecaster.drift.config import bar_years, drift_config_from_spec
    from forecaster.margin import margin_config_from_spec

    market = resolve_market(args)
    spec = market.spec
    config = drift_config_from_spec(spec.values, where=spec.path)
    overrides = {"n_scenarios": args.scenarios, "seed": args.seed, "sampling": args.sampling}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if config.n_scenarios < 2:
        raise UsageError(f"--scenarios must be ≥ 2; got {config.n_scenarios}")
    horizon = args.horizon if args.horizon is not None else int((spec.get("horizons") or [1])[0])
    if horizon < 1:
        raise UsageError(f"--horizon must be a number of bars ≥ 1; got {horizon}")
    book = load_book(args, market)
    forecast, source = _forecast(args, market, horizon, bar_years(spec.values, where=spec.path), config)
    margin = margin_config_from_spec(spec)
    if args.margin_model:
        margin = replace(margin, model=args.margin_model)
    result = drift_distribution(
        book,
        forecast,
        n_scenarios=config.n_scenarios,
        seed=config.seed,
        method=config.sampling,
        quantiles=config.quantiles,
        vol_floor=config.vol_floor,
        margin=margin,
    )
    print(_header(market, book, forecast, source, config))
    print()
    print(format_drift(result))
    for note in result.notes:
        print(f"note: {note}")
    if args.plot:
        from forecaster.drift.plots import plot_drift

        title = f"{args.portfolio.name}: {forecast.horizon} bars from {market.as_of:%Y-%m-%d %H:%M} UTC"
        print(f"plot: {plot_drift(result, args.plot, title)}")
    if args.json:
        payload = {
            **result.to_json(),
            "as_of": market.as_of.isoformat(),
            "forecast": source,
            "margin_model": margin.model,
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return 0


def _forecast(args, market, horizon: int, one_bar: float, config):
    from forecaster.drift import sources

    if args.forecast is not None:
        frame = sources.read_predictions(args.forecast)
        fc = sources.forecast_from_predictions(
            frame,
            horizon=horizon,
            as_of=market.as_of,
            bar_years=one_bar,
            config=config,
            model=args.model,
            path=str(args.forecast),
        )
        return fc, f"predictions file {args.forecast}" + (f" (model {args.model})" if args.model else "")
    if args.model:
        raise UsageError("--model picks rows of a predictions file: pass --forecast PATH too")
    if market.truth is not None:
        fc = sources.forecast_from_truth(
            market.truth, horizon=horizon, as_of=market.as_of, bar_years=one_bar, config=config
        )
        return fc, "the simulator's oracle (exact expected rv_h and IV change given the latent state)"
    if market.atm_iv is not None:
        fc = sources.forecast_from_implied_vol(market.atm_iv, horizon=horizon, bar_years=one_bar, config=config)
        return fc, f"30-day ATM implied vol {market.atm_iv:.2%} as the forecast of realized vol (no --forecast given)"
    raise UsageError("no forecast: pass --forecast PREDICTIONS, or --options / --iv-index for an implied forecast")


def _header(market, book, forecast, source: str, config) -> str:
    vol = math.sqrt(forecast.var / forecast.years) if forecast.var > 0 else 0.0
    return "\n".join(
        [
            f"drift of a {len(book)}-position book over {forecast.horizon} bars ({_duration(forecast.years)}) "
            f"from {market.as_of:%Y-%m-%d %H:%M} UTC, spot {market.spot:,.2f}",
            f"  forecast: {source}",
            f"  rv_h {forecast.var:.3g} ({vol:.1%} annualized), IV change mean {forecast.div_mean:+.4f}, "
            f"spot-vol correlation {forecast.spot_vol_corr:+.2f}",
            f"  {config.n_scenarios:,} {config.sampling} scenarios, seed {config.seed}",
            *(f"  {name}: {text}" for name, text in market.sources.items()),
        ]
    )


def format_drift(result) -> str:
    rows = {}
    for metric in result.metrics:
        summary, change = result.summary(metric), result.drift(metric)
        rows[metric] = {**summary, **{f"drift {k}": v for k, v in change.items()}}
    frame = pd.DataFrame(rows).T
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.float_format", "{:,.2f}".format):
        return "at t+h (quote currency: delta per 100% move, gamma per 1%, vega per vol point)\n" + frame.to_string()


def _duration(years: float) -> str:
    hours = years * 365 * 24
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"
