"""``forecaster greeks``: a book's Greeks in quote currency, by position and by expiry bucket, and its margin."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pandas as pd

from forecaster.commands._market import add_market_arguments, load_book, resolve_market


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_market_arguments(parser)
    parser.add_argument("--margin-model", choices=("risk_matrix", "span"), help="overrides margin.model of the spec")
    parser.add_argument("--json", metavar="PATH", help="write the Greeks and margin as JSON (DESIGN section 11)")


def run(args: argparse.Namespace) -> int:
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.portfolio import aggregate_greeks, position_greeks, total_greeks

    market = resolve_market(args)
    book = load_book(args, market)
    config = drift_config_from_spec(market.spec.values, where=market.spec.path)
    table = position_greeks(book, config.bucket_days)
    totals = total_greeks(table)
    margin = compute_margin(book, market, args.margin_model)
    print(format_header(market, book))
    print()
    print(format_positions(book, table))
    print()
    print("by underlying and expiry bucket")
    print(_frame_text(aggregate_greeks(table)))
    print()
    print(format_totals(totals))
    print(format_margin(margin, book.collateral))
    if args.json:
        payload = greeks_json(market, table, totals, margin)
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return 0


def compute_margin(book, market, model: str | None):
    from forecaster.margin import margin_config_from_spec, portfolio_margin

    config = margin_config_from_spec(market.spec)
    if model is not None:
        from dataclasses import replace

        config = replace(config, model=model)
    return portfolio_margin(book, config), config


def format_header(market, book) -> str:
    lines = [f"book of {len(book)} positions at {market.as_of:%Y-%m-%d %H:%M} UTC, spot {market.spot:,.2f}"]
    lines += [f"  {name}: {text}" for name, text in market.sources.items()]
    return "\n".join(lines)


def format_positions(book, table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "instrument": table["instrument"],
            "type": ["" if t is None else t[0] for t in _option_types(book)],
            "strike": book.strike,
            "expiry": [e.strftime("%Y-%m-%d %H:%M") if e is not None else "" for e in _expiries(book)],
            "units": book.weight,
            "iv": table["iv"],
            "price": table["price"],
            "value": table["value"],
            "delta": table["delta"],
            "gamma": table["gamma"],
            "vega": table["vega"],
            "theta": table["theta"],
        },
        index=table.index,
    )
    return "positions (quote currency: delta per 100% move, gamma per 1%, vega per vol point, theta per day)\n" + (
        _frame_text(shown)
    )


def format_totals(totals: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {value:,.2f}" for name, value in totals.items())
    return f"total: {parts}"


def format_margin(result, collateral: float) -> str:
    margin, config = result
    excess = collateral - margin.initial
    return (
        f"margin ({config.model}): initial {margin.initial:,.2f}, maintenance {margin.maintenance:,.2f}; "
        f"worst scenario: {margin.worst_scenario}; collateral {collateral:,.2f}, "
        f"{'excess' if excess >= 0 else 'SHORTFALL'} {abs(excess):,.2f}"
    )


def greeks_json(market, table: pd.DataFrame, totals: dict[str, float], result) -> dict[str, Any]:
    margin, config = result
    greek_names = ("delta", "gamma", "vega", "theta", "vanna", "volga")
    return {
        "as_of": market.as_of.isoformat(),
        "spot": market.spot,
        "greeks": {name: totals[name] for name in greek_names},
        "value": totals["value"],
        "margin": {
            "initial": margin.initial,
            "maintenance": margin.maintenance,
            "model": config.model,
            "worst_scenario": margin.worst_scenario,
        },
        "positions": [
            {
                "id": str(pid),
                "bucket": str(row["bucket"]),
                "price": float(row["price"]),
                "value": float(row["value"]),
                "delta_units": float(row["delta_units"]),
                **{name: float(row[name]) for name in greek_names},
            }
            for pid, row in table.iterrows()
        ],
        "units": {
            "delta": "quote currency per 100% move of the underlying (cash delta)",
            "gamma": "change of cash delta for a 1% move",
            "vega": "quote currency per vol point",
            "theta": "quote currency per calendar day",
            "vanna": "change of cash delta per vol point",
            "volga": "change of vega per vol point",
        },
        "sources": market.sources,
    }


def _option_types(book) -> list[str | None]:
    return [("call" if c else "put") if o else None for c, o in zip(book.is_call, book.is_option, strict=True)]


def _expiries(book) -> list[Any]:
    return list(book.expiry) if book.expiry else [None] * len(book)


def _frame_text(frame: pd.DataFrame) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", _fmt):
        return frame.to_string(na_rep="")


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
