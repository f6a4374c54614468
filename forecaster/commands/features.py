"""``forecaster features``: the feature table of a market (files or the spec's simulated market) to Parquet/CSV.

Targets (``--targets PATH``) go to their own file: they look into the future by definition and must never sit
beside the features.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from forecaster.commands._simulation import parse_horizons, quiet_logs
from forecaster.config import Spec, load_spec
from forecaster.errors import UsageError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    add_market_file_arguments(parser.add_argument_group("market data (none: the spec's simulated market)"))
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="feature table: .parquet or .csv")
    parser.add_argument("--targets", type=Path, metavar="FILE", help="also write the targets rv_h, div_h here")
    parser.add_argument("--horizons", type=parse_horizons, help="target horizons in bars (overrides horizons)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write a summary (columns, warm-ups, fingerprint)")


def add_market_file_arguments(data: argparse._ArgumentGroup) -> None:
    """The flags of a market given as files, read by :func:`_market` (``features``, ``train``, ``evaluate``,
    ``tune``)."""
    data.add_argument("--bars", type=Path, metavar="FILE", help="OHLCV bars")
    data.add_argument("--trades", type=Path, metavar="FILE", help="trades (Tardis columns): order-flow features")
    data.add_argument("--iv-index", type=Path, metavar="FILE", help="implied-vol index: implied features")
    data.add_argument(
        "--options", type=Path, metavar="FILE", help="option chain (Tardis options_chain): ATM IV, skew, term"
    )
    data.add_argument(
        "--iv-units",
        choices=("pct", "dec", "auto"),
        help="units of the IV index and the chain's IVs (overrides data.iv_units)",
    )
    data.add_argument("--freq", help="bar length such as 1min or 1D (overrides data.freq; default inferred)")
    data.add_argument(
        "--bar-label", choices=("end", "open"), help="what bar timestamps mark (overrides data.bar_label)"
    )
    data.add_argument(
        "--repair", action="store_true", help="drop or sort rows of the files that break a rule (each change printed)"
    )


def run(args: argparse.Namespace) -> int:
    from features.pipeline import build_features, feature_spec_from_spec

    _check_out(args.out, "--out")
    if args.targets is not None:
        _check_out(args.targets, "--targets")
    spec = load_spec(args.config)
    fspec = feature_spec_from_spec(spec.values, where=spec.path)
    data = _market(args, spec)
    started = time.perf_counter()
    table = build_features(data, fspec, show_progress=True)
    elapsed = time.perf_counter() - started
    _write(table.frame, args.out)
    print(format_table_summary(table, data, elapsed, args.out))
    if args.targets is not None:
        from features.targets import make_targets

        horizons = args.horizons or [int(h) for h in spec.get("horizons") or [1]]
        targets = make_targets(data, horizons)
        _write(targets, args.targets)
        print(f"targets {', '.join(targets.columns)} written to {args.targets} (kept apart from the features)")
    if args.json:
        args.json.write_text(json.dumps(_json(table, data, elapsed, args), indent=2))
    return 0


def _market(args: argparse.Namespace, spec: Spec):
    from features.market import market_data
    from forecaster import market as md

    freq = args.freq or spec.get("data.freq")
    label = args.bar_label or spec.get("data.bar_label", "end")
    days = float(spec.get("data.annualization_days", 365))
    iv_units = args.iv_units or spec.get("data.iv_units", "auto")
    if args.bars is None:
        if args.trades is not None or args.iv_index is not None or args.options is not None:
            raise UsageError("--trades, --iv-index and --options need --bars: the features are computed per bar")
        return _simulated(spec, days)
    repair = bool(getattr(args, "repair", False))

    def loaded(result):
        for change in result.repairs:
            print(f"{result.path}: repaired: {change}")
        return result.data

    bars = loaded(md.load_bars(args.bars, repair=repair))
    trades = loaded(md.load_trades(args.trades, repair=repair)) if args.trades else None
    iv = loaded(md.load_iv_index(args.iv_index, iv_units=iv_units, repair=repair)) if args.iv_index else None
    chain = loaded(md.load_options_chain(args.options, iv_units=iv_units, repair=repair)) if args.options else None
    return market_data(
        bars,
        freq=freq if args.freq else None,
        annualization_days=days,
        bar_label=label,
        trades=trades,
        iv=iv,
        chain=chain,
    )


def _simulated(spec: Spec, days: float):
    from features.market import market_data
    from forecaster import market as md
    from forecaster.market.simulator import sim_config_from_spec, simulate

    config = sim_config_from_spec(spec.values, where=spec.path)
    print(f"no market data given: simulating the spec's market ({config.days:g} days, seed {config.seed})...")
    with quiet_logs("forecaster.market"), tempfile.TemporaryDirectory(prefix="forecaster-sim-") as tmp:
        sim = simulate(config, out_dir=tmp)
        trades = md.load_trades(sim.files["trades"]).data
        iv = md.load_iv_index(sim.files["iv_index"]).data
        chain = md.load_options_chain(sim.files["options_chain"]).data
    return market_data(sim.bars, freq=config.freq, annualization_days=days, trades=trades, iv=iv, chain=chain)


def format_table_summary(table, data, elapsed: float, out: Path | str) -> str:
    rows = len(table.frame)
    lines = [
        f"{rows:,} bars × {len(table.names)} features in {elapsed:.2f} s ({rows / max(elapsed, 1e-9):,.0f} bars/s)"
        + (f", {len(data.trades):,} trades" if data.trades is not None else ""),
        f"written to {out}; fingerprint {table.fingerprint}",
    ]
    for name, columns in table.groups.items():
        longest = max((table.warmup[c] for c in columns), default=0)
        lines.append(f"  {name:<9} {len(columns):>3} columns, warm-up up to {longest:,} bars")
    for name, why in table.skipped.items():
        lines.append(f"  {name:<9} skipped: {why}")
    empty = [c for c, rows in table.warmup.items() if rows >= len(table.frame)]
    if empty:
        lines.append(
            f"note: {len(empty)} columns are all NaN: the data ({rows:,} bars) is shorter than their warm-up "
            f"(e.g. {empty[0]}: {table.warmup[empty[0]]:,} bars); give more history or shorter features.windows"
        )
    return "\n".join(lines)


def _json(table, data, elapsed: float, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rows": len(table.frame),
        "start": table.frame.index[0].isoformat() if len(table.frame) else None,
        "end": table.frame.index[-1].isoformat() if len(table.frame) else None,
        "freq": str(data.freq),
        "columns": table.names,
        "warmup": table.warmup,
        "groups": table.groups,
        "skipped": table.skipped,
        "fingerprint": table.fingerprint,
        "seconds": elapsed,
        "out": str(args.out),
        "trades": None if data.trades is None else len(data.trades),
    }


def _check_out(path: Path, flag: str) -> None:
    if not path.name.lower().endswith((".parquet", ".csv")):
        raise UsageError(f"{flag} must name a .parquet or .csv file; got {path}")


def _write(frame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, date_format="%Y-%m-%dT%H:%M:%S%z")
