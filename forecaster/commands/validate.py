"""``forecaster validate``: check market-data and portfolio files against the data contracts (DESIGN section 3).

Every file is loaded first; the summary is printed (and ``--json`` written) only when all of them pass, so a
failed run prints nothing on stdout and leaves no output file. A broken file raises ``DataValidationError``,
which the CLI reports on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forecaster.errors import DataValidationError, UsageError, ValidationFailed

IV_UNITS = ("pct", "dec", "auto")
PREMIUM_UNITS = ("coin", "quote", "auto")
# flag destination -> (kind shown in the summary, flag)
FILE_FLAGS: dict[str, tuple[str, str]] = {
    "bars": ("bars", "--bars"),
    "trades": ("trades", "--trades"),
    "options": ("option chain", "--options"),
    "iv_index": ("IV index", "--iv-index"),
    "portfolio": ("portfolio", "--portfolio"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    files = parser.add_argument_group("files to check (at least one)")
    files.add_argument("--bars", type=Path, metavar="FILE", help="OHLCV bars: CSV, CSV.gz or Parquet")
    files.add_argument("--trades", type=Path, metavar="FILE", help="trades in Tardis 'trades' columns")
    files.add_argument("--options", type=Path, metavar="FILE", help="option chain in Tardis 'options_chain' columns")
    files.add_argument("--iv-index", type=Path, metavar="FILE", help="implied-vol index (VIX, DVOL...)")
    files.add_argument("--portfolio", type=Path, metavar="FILE", help="portfolio, YAML or JSON")
    parser.add_argument(
        "--iv-units",
        choices=IV_UNITS,
        default="auto",
        help="units of implied vols in --iv-index and --options: auto = percent when the median exceeds 3",
    )
    parser.add_argument(
        "--premium-units",
        choices=PREMIUM_UNITS,
        default="auto",
        help="units of the premiums in --options (converted to quote currency): coin (Deribit) = times "
        "underlying_price; auto = the units whose marks match Black-76 at mark_iv",
    )
    parser.add_argument(
        "--as-of",
        metavar="T",
        help="valuation time for the portfolio expiry check (ISO; default: the last timestamp of the market "
        "files given, else now)",
    )
    parser.add_argument(
        "--repair", action="store_true", help="drop or sort rows that break a rule, and report every change"
    )
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (accepted for uniformity; unused)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write a machine-readable summary here")


def run(args: argparse.Namespace) -> int:
    given = {dest: getattr(args, dest) for dest in FILE_FLAGS if getattr(args, dest) is not None}
    if not given:
        flags = ", ".join(flag for _, flag in FILE_FLAGS.values())
        raise UsageError(f"validate needs at least one file to check: {flags}")
    from forecaster import market

    loaders: dict[str, Callable[[Path], Any]] = {
        "bars": lambda path: market.load_bars(path, repair=args.repair),
        "trades": lambda path: market.load_trades(path, repair=args.repair),
        "options": lambda path: market.load_options_chain(
            path, args.iv_units, premium_units=args.premium_units, repair=args.repair
        ),
        "iv_index": lambda path: market.load_iv_index(path, args.iv_units, repair=args.repair),
    }
    summaries: list[dict[str, Any]] = []
    failures: list[DataValidationError] = []
    for dest, path in given.items():
        if dest in loaders:
            _try(lambda dest=dest, path=path: _summary(FILE_FLAGS[dest][0], loaders[dest](path)), summaries, failures)
    if "portfolio" in given:
        # DESIGN section 7: --as-of defaults to the last timestamp of the market data; with none given, now.
        ends = [s["end"] for s in summaries if s["end"] is not None]
        as_of = _as_of(args.as_of if args.as_of is not None else max(ends) if ends else None)
        source = "--as-of" if args.as_of is not None else "last market timestamp" if ends else "now"

        def portfolio() -> dict[str, Any]:
            result = market.load_portfolio(given["portfolio"], as_of, repair=args.repair)
            summary = _summary(FILE_FLAGS["portfolio"][0], result)
            summary["as_of"] = as_of.isoformat()
            summary["notes"].insert(0, f"expiries checked against {as_of.isoformat()} ({source})")
            return summary

        _try(portfolio, summaries, failures)
    for summary in summaries:
        print(_format(summary))
    if failures:  # every file was checked: fail with all their errors (exit 2), and write no --json
        raise failures[0] if len(failures) == 1 else ValidationFailed(failures)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ok": True, "files": summaries}, indent=2) + "\n")
    return 0


def _try(load: Callable[[], dict[str, Any]], summaries: list[dict[str, Any]], failures: list) -> None:
    """Run one file's load; its summary, or its error, is kept so every file given is checked."""
    try:
        summaries.append(load())
    except DataValidationError as exc:
        failures.append(exc)


def _as_of(text: str | None):
    import pandas as pd

    if text is None:
        return pd.Timestamp.now(tz="UTC")
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise UsageError(f"--as-of must be an ISO date-time such as 2025-01-01T00:00:00Z; got {text!r}") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _summary(kind: str, result: Any) -> dict[str, Any]:
    """Plain-JSON description of a loaded file (stable keys: see the README)."""
    import pandas as pd

    from forecaster.market import Portfolio

    summary: dict[str, Any] = {"kind": kind, "path": str(result.path)}
    data = result.data
    if isinstance(data, Portfolio):
        instruments = pd.Series([p.instrument for p in data.positions], dtype=object).value_counts()
        summary.update(
            rows=len(data.positions),
            start=None,
            end=None,
            columns=[],
            positions={str(k): int(v) for k, v in instruments.items()},
            collateral=data.collateral,
        )
    else:
        columns = [data.name] if isinstance(data, pd.Series) else [str(c) for c in data.columns]
        summary.update(
            rows=len(data),
            start=data.index[0].isoformat(),
            end=data.index[-1].isoformat(),
            columns=["timestamp", *columns],
        )
    summary["notes"] = list(result.notes)
    summary["repairs"] = [
        {"rule": r.rule, "action": r.action, "count": r.count, "rows_sample": list(r.rows_sample)}
        for r in result.repairs
    ]
    return summary


def _format(summary: dict[str, Any]) -> str:
    lines = [f"{summary['kind']}: {summary['path']}: OK, {summary['rows']} {_unit(summary)}"]
    if summary["start"] is not None:
        lines.append(f"  span: {summary['start']} to {summary['end']}")
        lines.append(f"  columns: {', '.join(summary['columns'])}")
    if "positions" in summary:
        held = ", ".join(f"{n} {kind}" for kind, n in summary["positions"].items()) or "none"
        lines.append(f"  positions: {held}; collateral {summary['collateral']:g}")
    lines.extend(f"  note: {text}" for text in summary["notes"])
    for repair in summary["repairs"]:
        rows = ", ".join(map(str, repair["rows_sample"]))
        more = ", ..." if repair["count"] > len(repair["rows_sample"]) else ""
        lines.append(f"  repair: {repair['action']}: {repair['count']} ({repair['rule']}; rows {rows}{more})")
    if not summary["repairs"]:
        lines.append("  repairs: none")
    return "\n".join(lines)


def _unit(summary: dict[str, Any]) -> str:
    return "positions" if "positions" in summary else "rows"
