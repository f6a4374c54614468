"""``forecaster demo``: simulate a market (30 days by default), read it back through the data contracts, and
print a summary of it.

The demo grows with the product: later releases run features, models, drift and policy on the same market.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys

from forecaster.commands._simulation import add_simulator_arguments, format_summary, resolve_sim_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_simulator_arguments(parser, default_out="demo_out")


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
    market_log = logging.getLogger("forecaster.market")
    level = market_log.level
    market_log.setLevel(logging.WARNING)  # the loaders' unit notes are for users' own files, not the demo's
    try:
        checked = [f"{name} {len(loaders[name][0](path).data):,} rows" for name, path in written.items()]
    finally:
        market_log.setLevel(level)
    print(f"\nwritten to {args.out}/ and validated against the data contracts: " + ", ".join(checked))
    prog = "forecaster" if shutil.which("forecaster") else os.path.relpath(sys.argv[0])
    flags = " ".join(f"{loaders[name][1]} {path}" for name, path in written.items())
    print(f"look closer: {prog} validate {flags}")
    return 0
