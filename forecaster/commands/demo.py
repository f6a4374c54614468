"""``forecaster demo``: simulate a market (30 days by default) and print a summary of it.

The demo grows with the product: later releases run features, models, drift and policy on the same market.
"""

from __future__ import annotations

import argparse

from forecaster.commands._simulation import add_simulator_arguments, format_summary, resolve_sim_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_simulator_arguments(parser, default_out="demo_out")


def run(args: argparse.Namespace) -> int:
    from forecaster.market.simulator import simulate, summarize

    config = resolve_sim_config(args)
    print(f"drift-forecaster demo: simulating {config.days:g} days of {config.freq} bars (seed {config.seed})...")
    market = simulate(
        config,
        out_dir=args.out,
        fmt=args.format,
        with_trades=not args.no_trades,
        with_chain=not args.no_chain,
    )
    print(format_summary(summarize(market)))
    print(f"\nfiles in {args.out}/: " + ", ".join(sorted(p.rsplit("/", 1)[-1] for p in market.files.values())))
    print(f"validate them: forecaster validate --bars {market.files['bars']} --iv-index {market.files['iv_index']}")
    return 0
