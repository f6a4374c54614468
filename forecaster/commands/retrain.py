"""``forecaster retrain``: the job a scheduler calls (DESIGN section 8; :mod:`training.retrain` says how it decides).

It trains a challenger on the spec's window ending at ``--as-of`` (default: the data's last bar), evaluates it and
the current champion on the same holdout, and moves the ``champion`` alias only when the spec's ``retrain.gate``
passes (the old champion becomes ``previous_champion``: ``forecaster rollback`` restores it). A second run for
the same window does nothing and says so; a run of a spec that is already retraining exits with status 75
(``EX_TEMPFAIL``: try later) without training. Data: as ``train`` (files, or the spec's simulated market).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXIT_BUSY = 75


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from forecaster.commands._training import add_data_arguments

    add_data_arguments(parser)
    parser.add_argument(
        "--as-of", metavar="TIME", help="the window's last bar (ISO 8601, UTC); default the data's last"
    )
    parser.add_argument(
        "--if-drift",
        action="store_true",
        help="train only when the window's last retrain.drift.recent_days drifted from the rest (median PSI over "
        "the features above retrain.drift.psi_threshold); else log the drift and skip",
    )
    parser.add_argument(
        "--simulate-days",
        type=int,
        metavar="N",
        help="replay production: one retrain a day for N days (the simulated market is made long enough); the "
        "MLflow run charts the champion's metrics with step = day",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the decision as JSON (DESIGN section 11)")


def run(args: argparse.Namespace) -> int:
    from forecaster.commands._training import default_spec
    from forecaster.config import load_spec
    from training.retrain import RetrainBusy, spec_lock, stage

    name = load_spec(args.config or default_spec(args)).name
    try:
        with spec_lock(name) as lock:  # before the data is loaded: a second run costs nothing
            stage(name, "locked", str(lock))
            return _run_locked(args)
    except RetrainBusy as busy:
        print(f"forecaster retrain: {busy}")
        return EXIT_BUSY


def _run_locked(args: argparse.Namespace) -> int:
    import pandas as pd

    from forecaster.commands._training import load_market
    from forecaster.errors import UsageError
    from training.retrain import retrain

    if args.simulate_days is not None:
        return _simulate(args)
    spec, market = load_market(args)
    if args.models:
        if "," in args.models:
            raise UsageError("--models: retrain trains one model; name one of the spec's models")
        spec.override("retrain.model", args.models.strip())
    as_of = None
    if args.as_of:
        try:
            as_of = pd.Timestamp(args.as_of)
        except ValueError:
            raise UsageError(f"--as-of {args.as_of!r} is not a time: write e.g. 2026-01-20T00:00:00Z") from None
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    result = retrain(spec, market, as_of=as_of, lock=False, if_drift=args.if_drift)
    window = result.window
    print(f"retrain {spec.name}: window {window.get('start')} .. {window.get('end')} ({window.get('bars')} bars)")
    print(f"decision: {result.decision}: {result.reason}")
    drift = (result.metrics or {}).get("drift")
    if drift and drift.get("median_psi") is not None:
        top = ", ".join(f"{t['feature']} {t['psi']:.2f}" for t in drift["top"][:3] if t["psi"] is not None)
        state = "drifted" if drift["drifted"] else "stable"
        print(f"  drift: median PSI {drift['median_psi']:.3f} (threshold {drift['threshold']:g}): {state}; {top}")
    for who in ("challenger", "champion"):
        scored = (result.metrics or {}).get(who)
        if scored:
            known = {k: v for k, v in scored.items() if k.startswith("h") and None not in (v["qlike"], v["coverage90"])}
            cells = [f"{k} qlike {v['qlike']:.5g} cov90 {v['coverage90']:.3f}" for k, v in known.items()]
            print(f"  {who:<10} {'; '.join(cells)}; latency {scored.get('latency_ms') or float('nan'):.1f} ms")
    print(f"champion version: {result.champion_version}; challenger version: {result.challenger_version}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json(), indent=2))
        print(f"decision written to {args.json}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from forecaster.commands._training import default_spec, load_market
    from forecaster.config import load_spec
    from forecaster.errors import UsageError
    from training.retrain import retrain_config_from_spec, simulate_days

    if args.simulate_days < 1:
        raise UsageError("--simulate-days must be ≥ 1")
    if args.as_of or args.if_drift:
        raise UsageError("--simulate-days replays its own days: leave out --as-of and --if-drift")
    spec = load_spec(args.config or default_spec(args))
    needed = retrain_config_from_spec(spec.values, where=spec.path).window_days + args.simulate_days + 1
    if args.bars is None and (args.days or 0) < needed:
        args.days = needed
        print(f"simulating {needed:g} days: the {args.simulate_days}-day replay after a first full window")
    spec, market = load_market(args)
    results = simulate_days(spec, market, args.simulate_days, lock=False)  # run() holds the lock
    print(f"{'day':>4}  {'window end':<26} {'decision':<9} champion  reason")
    for day, result in enumerate(results, start=1):
        end = result.window.get("end", "")
        print(f"{day:>4}  {end:<26} {result.decision:<9} {result.champion_version or '-':>8}  {result.reason[:90]}")
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2))
        print(f"decisions written to {args.json}")
    return 0
