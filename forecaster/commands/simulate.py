"""``forecaster simulate``: write bars, trades, option chain, IV index and truth of a simulated market."""

from __future__ import annotations

import argparse
import json

from forecaster.commands._simulation import add_simulator_arguments, format_summary, resolve_sim_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_simulator_arguments(parser, default_out=None)
    parser.add_argument("--json", help="write the summary as JSON to this path")


def run(args: argparse.Namespace) -> int:
    from forecaster.market.simulator import simulate, summarize

    config = resolve_sim_config(args)
    market = simulate(
        config,
        out_dir=args.out,
        fmt=args.format,
        with_trades=not args.no_trades,
        with_chain=not args.no_chain,
    )
    summary = summarize(market)
    print(format_summary(summary))
    print()
    for name, path in market.files.items():
        print(f"  {name:<14} {path}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
    return 0
