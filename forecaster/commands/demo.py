"""``forecaster demo``: simulate a market (30 days by default), read it back through the data contracts, and
print a summary of it.

Then it computes the features, values a short-straddle book at the last chain snapshot (Greeks by position,
risk-matrix margin) and prints its drift over the longest horizon under the simulator's oracle forecast. Last,
the models: ``train`` on the spec's longer simulated training market (walk-forward over the spec's
``training.demo_models``, logged to MLflow, the best servable one registered), then ``compare`` prints the models
side by side and writes a report with the plots (``--no-train`` skips this part). It ends with the policy
comparison: ``backtest`` over ``backtest.demo_days`` simulated days (``--no-backtest`` skips it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TYPE_CHECKING

from forecaster.commands._simulation import add_simulator_arguments, format_summary, quiet_logs, resolve_sim_config

if TYPE_CHECKING:
    import pandas as pd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_simulator_arguments(parser, default_out="demo_out")
    parser.add_argument(
        "--no-train", action="store_true", help="skip the models (train, evaluate, compare): the market part only"
    )
    parser.add_argument("--train-days", type=float, help="simulated days the models learn on (training.days)")
    parser.add_argument(
        "--no-backtest", action="store_true", help="skip the closing policy backtest (backtest.demo_days of the spec)"
    )


def run(args: argparse.Namespace) -> int:
    from forecaster import market as md
    from forecaster.market.simulator import simulate, summarize

    config = resolve_sim_config(args)
    print(f"drift-forecaster demo: simulating {config.days:g} days of {config.freq} bars (seed {config.seed})...")
    market = simulate(
        config, out_dir=args.out, fmt=args.format, with_trades=not args.no_trades, with_chain=not args.no_chain
    )
    print(format_summary(summarize(market)))

    # read every file back through the loaders: the same checks real market data gets
    loaders = {
        "bars": (md.load_bars, "--bars"),
        "iv_index": (md.load_iv_index, "--iv-index"),
        "trades": (md.load_trades, "--trades"),
        "options_chain": (md.load_options_chain, "--options"),
    }
    written = {name: path for name, path in market.files.items() if name in loaders}
    with quiet_logs("forecaster.market"):
        loaded = {name: loaders[name][0](path).data for name, path in written.items()}
    checked = [f"{name} {len(frame):,} rows" for name, frame in loaded.items()]
    print(f"\nwritten to {args.out}/ and validated against the data contracts: " + ", ".join(checked))
    prog = "forecaster" if shutil.which("forecaster") else os.path.relpath(sys.argv[0])
    flags = " ".join(f"{loaders[name][1]} {path}" for name, path in written.items())
    print(f"look closer: {prog} validate {flags}")
    _features(loaded, config, args, prog)
    if "options_chain" in written:
        with quiet_logs("forecaster.market", "forecaster.config"):
            _book_at_the_end(market, loaded["options_chain"], written["options_chain"], args, prog)
    if not args.no_train:
        code = _models(args, prog)
        if code != 0:
            return code
    if not args.no_backtest:
        return _policies(args, prog)
    return 0


def _policies(args: argparse.Namespace, prog: str) -> int:
    """The policy comparison on a short out-of-sample simulated backtest (``backtest.demo_days``)."""
    import time

    from forecaster import cli

    started = time.perf_counter()
    days = _spec_value(args.config, "backtest.demo_days") or 10
    print(f"\npolicies: hedge and margin policies on {days:g} simulated days the forecasting model never saw")
    command = ["backtest", "--days", str(days), "--out", f"{args.out}/backtest", "--json", f"{args.out}/backtest.json"]
    command += ["--config", args.config] if args.config else []
    code = cli.main(command)
    print(f"\npolicies took {time.perf_counter() - started:.0f} s")
    print(f"look closer: {prog} backtest --sweep --days 60   (cost-risk frontiers; see docs/BENCHMARKS.md)")
    return code


def _spec_value(config: str | None, key: str):
    from forecaster.config import load_spec

    with quiet_logs("forecaster.config"):
        return load_spec(config).get(key)


def _models(args: argparse.Namespace, prog: str) -> int:
    """Train and evaluate the spec's models on its simulated training market, register the best, compare."""
    import time

    from forecaster import cli
    from training.tracking import tracking_uri

    started = time.perf_counter()
    print("\nmodels: walk-forward training and evaluation of the spec's models on a longer simulated market")
    train = ["train", "--predictions", f"{args.out}/predictions.parquet", "--json", f"{args.out}/metrics.json"]
    train += ["--config", args.config] if args.config else []
    train += ["--days", str(args.train_days)] if args.train_days else []
    demo_models = _spec_value(args.config, "training.demo_models")
    train += ["--models", ",".join(demo_models)] if demo_models else []
    code = cli.main(train)
    if code != 0:
        return code
    compare = ["compare", "--out", f"{args.out}/report.md"] + (["--config", args.config] if args.config else [])
    code = cli.main(compare)
    print(f"\nmodels took {time.perf_counter() - started:.0f} s. MLflow: {tracking_uri()}")
    print(f"open the MLflow UI: mlflow ui --backend-store-uri {tracking_uri()}  (then http://127.0.0.1:5000)")
    print(f"look closer: {prog} evaluate --models har,lgbm,net --json metrics.json; {prog} tune --trials 20")
    return code


def _features(loaded: dict, config, args: argparse.Namespace, prog: str) -> None:
    """The market's feature table (the spec's groups and windows), written beside the market files."""
    import time

    from features.market import market_data
    from features.pipeline import build_features, feature_spec_from_spec
    from forecaster.commands.features import format_table_summary
    from forecaster.config import load_spec

    with quiet_logs("forecaster.config"):  # the demo says which spec it runs already
        spec = load_spec(args.config)
    data = market_data(
        loaded["bars"],
        freq=config.freq,
        trades=loaded.get("trades"),
        iv=loaded.get("iv_index"),
        chain=loaded.get("options_chain"),
    )
    started = time.perf_counter()
    table = build_features(data, feature_spec_from_spec(spec.values, where=spec.path), show_progress=True)
    out = f"{args.out}/features.parquet"
    table.frame.to_parquet(out)
    print("\nfeatures: " + format_table_summary(table, data, time.perf_counter() - started, out))
    inputs = {"bars": "--bars", "trades": "--trades", "iv_index": "--iv-index", "options_chain": "--options"}
    flags = " ".join(f"{flag} {args.out}/{name}.{args.format}" for name, flag in inputs.items() if name in loaded)
    print(f"look closer: {prog} features {flags} --out features.parquet --json features.json")


def _book_at_the_end(market, chain: pd.DataFrame, chain_path: str, args: argparse.Namespace, prog: str) -> None:
    """Value a short-vol book at the market's last snapshot, then its drift over the longest horizon."""
    import numpy as np
    import pandas as pd
    import yaml

    from forecaster.commands._market import chain_spot
    from forecaster.commands.drift import format_drift
    from forecaster.commands.greeks import format_margin, format_positions, format_totals
    from forecaster.config import load_spec
    from forecaster.drift import drift_distribution
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.drift.sources import forecast_from_truth
    from forecaster.margin import margin_config_from_spec, portfolio_margin
    from forecaster.market import load_portfolio
    from forecaster.portfolio import book_from_portfolio, position_greeks, total_greeks
    from forecaster.pricing.surface import surface_from_chain

    spec = load_spec(args.config)
    as_of = chain.index[-1]
    snapshot = chain.loc[chain.index == as_of]
    spot = chain_spot(snapshot)
    expiries = pd.DatetimeIndex(sorted(snapshot["expiration"].unique()))
    days = (expiries - as_of) / pd.Timedelta(days=1)
    front = expiries[int(np.argmin(np.abs(days - 30)))]  # the expiry nearest a month out
    back = expiries[int(np.argmin(np.abs(days - 90)))]
    step = 10 ** np.floor(np.log10(spot / 20))
    strike = float(np.round(spot / step) * step)
    wing = float(np.round(0.8 * spot / step) * step)
    positions = [
        {"id": "short-call", "instrument": "option", "underlying": "BTC", "option_type": "call",
         "strike": strike, "expiry": front.isoformat(), "quantity": -10},
        {"id": "short-put", "instrument": "option", "underlying": "BTC", "option_type": "put",
         "strike": strike, "expiry": front.isoformat(), "quantity": -10},
        {"id": "wing-put", "instrument": "option", "underlying": "BTC", "option_type": "put",
         "strike": wing, "expiry": back.isoformat(), "quantity": 5},
        {"id": "hedge", "instrument": "perp", "underlying": "BTC", "quantity": 1.0},
    ]  # fmt: skip
    book_path = f"{args.out}/book.yaml"
    with open(book_path, "w") as fh:
        yaml.safe_dump({"positions": positions, "collateral": round(2 * spot, -3)}, fh, sort_keys=False)
    surface = surface_from_chain(snapshot)
    book = book_from_portfolio(
        load_portfolio(book_path, as_of=as_of).data, as_of=as_of, spot={"BTC": spot}, vols={"BTC": surface}
    )
    table = position_greeks(book)
    margin_config = margin_config_from_spec(spec)
    print(f"\na short-straddle book ({book_path}) at {as_of:%Y-%m-%d %H:%M} UTC, spot {spot:,.2f}, vols from an SVI "
          f"surface fitted to the last chain snapshot ({len(snapshot)} quotes)")  # fmt: skip
    print(format_positions(book, table))
    print(format_totals(total_greeks(table)))
    print(format_margin((portfolio_margin(book, margin_config), margin_config), book.collateral))
    horizon = market.config.horizons[-1]
    drift_config = drift_config_from_spec(spec.values, where=spec.path)
    forecast = forecast_from_truth(
        market.truth, horizon=horizon, as_of=as_of, bar_years=market.config.bar_minutes / 525_600, config=drift_config
    )
    result = drift_distribution(
        book, forecast, n_scenarios=drift_config.n_scenarios, seed=drift_config.seed, margin=margin_config
    )
    print(f"\nits drift over {horizon} bars under the simulator's oracle forecast ({drift_config.n_scenarios:,} "
          "scenarios):")  # fmt: skip
    print(format_drift(result))
    print(f"look closer: {prog} drift --portfolio {book_path} --options {chain_path} --horizon {horizon}")
