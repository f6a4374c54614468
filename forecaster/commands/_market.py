"""Shared by ``greeks`` and ``drift``: the market a book is valued in, from files or from the simulator.

With ``--options`` (an option chain) the vols come from an SVI surface fitted to the last snapshot at or
before the valuation time; with ``--iv-index`` alone, from a flat surface at the index level. The spot is
``--spot``, else the chain's underlying price, else the last bar's close. Without any data flag the spec's
simulated market is generated (no trades) and read back through the same loaders.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster.commands._simulation import quiet_logs
from forecaster.config import Spec, load_spec
from forecaster.errors import UsageError

log = logging.getLogger(__name__)

IV_UNITS = ("pct", "dec", "auto")
PREMIUM_UNITS = ("coin", "quote", "auto")
ATM_TENOR_YEARS = 30 / 365  # the tenor of the implied forecast's ATM vol, as the DVOL/VIX indices


def add_market_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    parser.add_argument("--portfolio", type=Path, required=True, metavar="FILE", help="portfolio, YAML or JSON")
    data = parser.add_argument_group("market data (none: the spec's simulated market)")
    data.add_argument("--options", type=Path, metavar="FILE", help="option chain (Tardis options_chain columns)")
    data.add_argument("--iv-index", type=Path, metavar="FILE", help="implied-vol index (flat surface at its level)")
    data.add_argument("--bars", type=Path, metavar="FILE", help="OHLCV bars (spot from the last close)")
    data.add_argument("--spot", type=float, metavar="S", help="spot price; overrides the market's last price")
    data.add_argument("--iv-units", choices=IV_UNITS, default="auto", help="units of IVs in the files")
    data.add_argument(
        "--premium-units",
        choices=PREMIUM_UNITS,
        default="auto",
        help="units of the chain's premiums: coin (Deribit), quote, or auto (checked against mark_iv)",
    )
    data.add_argument("--as-of", metavar="T", help="valuation time (ISO); default the last timestamp of the data")


@dataclass
class Market:
    """What a book is valued with: time, spot, vol source, and where each came from."""

    spec: Spec
    as_of: pd.Timestamp
    spot: float
    vols: Any
    atm_iv: float | None
    truth: pd.DataFrame | None = None
    sources: dict[str, str] = field(default_factory=dict)


def resolve_market(args: argparse.Namespace) -> Market:
    spec = load_spec(args.config)
    if args.spot is not None and not (np.isfinite(args.spot) and args.spot > 0):
        raise UsageError(f"--spot must be a finite price > 0; got {args.spot}")
    as_of = _parse_time(args.as_of) if args.as_of else None
    if args.options is None and args.iv_index is None and args.bars is None:
        return _simulated(args, spec, as_of)
    return _from_files(args, spec, as_of)


def _from_files(args: argparse.Namespace, spec: Spec, as_of: pd.Timestamp | None) -> Market:
    from forecaster import market as md

    chain = (
        md.load_options_chain(args.options, iv_units=args.iv_units, premium_units=args.premium_units).data
        if args.options
        else None
    )
    iv_index = md.load_iv_index(args.iv_index, iv_units=args.iv_units).data if args.iv_index else None
    bars = md.load_bars(args.bars).data if args.bars else None
    return _assemble(args, spec, as_of, chain, iv_index, bars, truth=None, origin="files")


def _simulated(args: argparse.Namespace, spec: Spec, as_of: pd.Timestamp | None) -> Market:
    from forecaster import market as md
    from forecaster.market.simulator import sim_config_from_spec, simulate

    config = sim_config_from_spec(spec.values, where=spec.path)
    print(f"no market data given: simulating the spec's market ({config.days:g} days, seed {config.seed})...")
    with quiet_logs("forecaster.market"), tempfile.TemporaryDirectory(prefix="forecaster-sim-") as tmp:
        sim = simulate(config, out_dir=tmp, with_trades=False)
        chain = md.load_options_chain(sim.files["options_chain"]).data
        iv_index = md.load_iv_index(sim.files["iv_index"]).data
        bars = md.load_bars(sim.files["bars"]).data
    return _assemble(args, spec, as_of, chain, iv_index, bars, truth=sim.truth, origin="simulated")


def _assemble(
    args: argparse.Namespace,
    spec: Spec,
    as_of: pd.Timestamp | None,
    chain: pd.DataFrame | None,
    iv_index: pd.Series | None,
    bars: pd.DataFrame | None,
    *,
    truth: pd.DataFrame | None,
    origin: str,
) -> Market:
    from forecaster.pricing.surface import flat_surface, surface_from_chain

    last = [frame.index[-1] for frame in (chain, iv_index, bars) if frame is not None and len(frame)]
    as_of = as_of if as_of is not None else max(last)
    sources: dict[str, str] = {"market": origin}
    snapshot = None
    if chain is not None:
        before = chain.loc[:as_of]
        if before.empty:
            raise UsageError(f"{args.options}: no option-chain snapshot at or before {as_of}; pick a later --as-of")
        snapshot = before.loc[before.index == before.index[-1]]
    spot, sources["spot"] = _spot(args, as_of, snapshot, bars)
    vols, atm_iv = None, None
    if snapshot is not None:
        vols = surface_from_chain(snapshot)
        atm_iv = float(np.asarray(vols.atm_term_structure(np.array([ATM_TENOR_YEARS])))[0])
        sources["vols"] = f"SVI surface fitted to the {len(snapshot)} quotes of the snapshot at {snapshot.index[-1]}"
    elif iv_index is not None:
        before = iv_index.loc[:as_of]
        if before.empty:
            raise UsageError(f"{args.iv_index}: no IV index value at or before {as_of}; pick a later --as-of")
        atm_iv = float(before.iloc[-1])
        vols = flat_surface(atm_iv)
        sources["vols"] = f"flat surface at the IV index level {atm_iv:.2%} of {before.index[-1]} (no skew)"
    return Market(spec, as_of, spot, vols, atm_iv, truth, sources)


def _spot(
    args: argparse.Namespace, as_of: pd.Timestamp, snapshot: pd.DataFrame | None, bars: pd.DataFrame | None
) -> tuple[float, str]:
    if args.spot is not None:
        return float(args.spot), "--spot"
    if snapshot is not None:
        return chain_spot(snapshot), f"underlying price of the nearest expiry in the chain at {snapshot.index[-1]}"
    if bars is not None:
        before = bars.loc[:as_of]
        if before.empty:
            raise UsageError(f"{args.bars}: no bar at or before {as_of}; pick a later --as-of")
        return float(before["close"].iloc[-1]), f"close of the bar at {before.index[-1]}"
    raise UsageError("no spot price: pass --spot, or --options / --bars to read it from the market")


def chain_spot(snapshot: pd.DataFrame) -> float:
    """The spot of a chain snapshot: its nearest expiry's underlying price, where Deribit's per-expiry forwards
    converge to the index."""
    nearest = snapshot.loc[snapshot["expiration"] == snapshot["expiration"].min(), "underlying_price"]
    return float(nearest.median())


def load_book(args: argparse.Namespace, market: Market):
    """The portfolio file valued in ``market`` (one underlying per command run)."""
    from forecaster.market import load_portfolio
    from forecaster.market.portfolio_file import one_underlying
    from forecaster.portfolio import book_from_portfolio

    portfolio = load_portfolio(args.portfolio, as_of=market.as_of).data
    underlying, has_options = one_underlying(
        portfolio, str(args.portfolio), "the command values one underlying against one market: split the portfolio "
        "per underlying and run it once for each",
    )  # fmt: skip
    if has_options and market.vols is None:
        raise UsageError(f"{args.portfolio} holds options: pass --options (a chain) or --iv-index for their vols")
    name = underlying or "?"
    return book_from_portfolio(
        portfolio, as_of=market.as_of, spot={name: market.spot}, vols={name: market.vols} if has_options else None
    )


def _parse_time(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise UsageError(f"--as-of must be an ISO date-time such as 2026-01-31T00:00:00Z; got {text!r}") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
