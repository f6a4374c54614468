"""Shared by ``simulate`` and ``demo``: the simulator flags, resolved over the spec's ``simulator`` section."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from forecaster.config import load_spec


def add_simulator_arguments(parser: argparse.ArgumentParser, *, default_out: str | None) -> None:
    parser.add_argument("--config", help="experiment spec (YAML path or name); default experiments/sim_intraday.yaml")
    parser.add_argument("--days", type=float, help="simulated days (overrides simulator.days)")
    parser.add_argument("--freq", help="bar length, whole minutes: 1min, 5min, 1h (overrides data.freq)")
    parser.add_argument(
        "--horizons", type=parse_horizons, help="oracle horizons in bars, e.g. 60,240,1440 (overrides horizons)"
    )
    parser.add_argument("--seed", type=int, help="random seed (overrides simulator.seed)")
    parser.add_argument("--out", default=default_out, required=default_out is None, help="output directory")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="file format")
    parser.add_argument("--no-trades", action="store_true", help="do not write individual trades")
    parser.add_argument("--no-chain", action="store_true", help="do not write option-chain snapshots")


def parse_horizons(text: str) -> list[int]:
    """``"1,5,22"`` -> ``[1, 5, 22]``; argparse turns the ValueError into a usage error (exit 2)."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected bar counts separated by commas, e.g. 60,240,1440; got {text!r}"
        ) from exc


def resolve_sim_config(args: argparse.Namespace) -> Any:
    """The spec's simulator settings with flags applied, validated."""
    from forecaster.market.simulator import sim_config_from_spec

    spec = load_spec(args.config)
    for flag, key in (
        ("days", "simulator.days"),
        ("seed", "simulator.seed"),
        ("freq", "data.freq"),
        ("horizons", "horizons"),
    ):
        value = getattr(args, flag)
        if value is not None:
            spec.override(key, value)
    return sim_config_from_spec(spec.values, where=spec.path)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human table of the simulated market."""
    lines = [
        f"simulated {summary['days']:g} days, {summary['bars']:,} bars, seed {summary['seed']}",
        "",
        f"{'regime':<10} {'share':>7} {'(cfg)':>7} {'ann vol':>8} {'(cfg)':>6} {'stays':>6} {'mean h':>7} {'(cfg)':>6}",
    ]
    for name, r in summary["regimes"].items():
        vol = f"{r['ann_vol']:.0%}" if r["ann_vol"] is not None else "-"
        dur = f"{r['mean_duration_hours']:.1f}" if r["mean_duration_hours"] is not None else "-"
        lines.append(
            f"{name:<10} {r['share']:>7.1%} {r['configured_share']:>7.1%} {vol:>8} {r['configured_ann_vol']:>6.0%} "
            f"{r['stays']:>6d} {dur:>7} {r['configured_duration_hours']:>6.0f}"
        )
    lines += [
        "",
        f"realized vol {summary['realized_vol']:.1%} (long run {summary['long_run_vol']:.1%}), "
        f"mean 30-day ATM IV {summary['mean_iv30']:.1%}",
        f"trades per day {summary['trades_per_day']:,.0f}",
    ]
    if "chain" in summary:
        ch = summary["chain"]
        lines.append(
            f"option chain: {ch['rows']:,} rows, {ch['snapshots']:,} snapshots, {ch['instruments']:,} instruments, "
            f"{ch['expiries_per_snapshot']:.1f} expiries per snapshot"
        )
    return "\n".join(lines)


@contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """Raise the given loggers to WARNING for the block: the loaders' unit notes and the spec's path are for
    users' own files, not for data the command just simulated itself."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
