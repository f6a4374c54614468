"""Time the chain-derived implied features: the light smiles of every snapshot against the SVI surface.

Simulates N days of the default market's hourly option chain, writes it to Parquet and reads it back with the
project's loader, then times :func:`features.chain.fit_smiles` on every snapshot (one vectorized call) and the
baseline, :func:`forecaster.pricing.surface.surface_from_chain` (arbitrage-free SVI) on a sample of snapshots,
extrapolated to all of them. Both give ATM IV, 25-delta RR and BF at 7, 30, 90 days; the script prints how far
apart they are on the sample.

    python bench/bench_chain_features.py                       # a year (8,760 snapshots), SVI on 10 of them
    python bench/bench_chain_features.py --days 3 --svi-sample 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TENORS_DAYS = (7.0, 30.0, 90.0)


def run(days: float, svi_sample: int, seed: int) -> dict[str, Any]:
    from features.chain import fit_smiles
    from forecaster.market import load_options_chain
    from forecaster.market.simulator import SimConfig, simulate
    from forecaster.pricing.surface import surface_from_chain

    sim = simulate(SimConfig(days=days, seed=seed), with_trades=False, keep_trades=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.parquet"
        sim.options_chain.to_parquet(path, index=False)
        started = time.perf_counter()
        chain = load_options_chain(path).data
        load_s = time.perf_counter() - started
    started = time.perf_counter()
    smiles = fit_smiles(chain)
    taus = [t / 365.0 for t in TENORS_DAYS]
    light = {
        "atm": np.stack([smiles.atm_iv(t) for t in taus], axis=1),
        "rr25": np.stack([smiles.at_tenor(smiles.rr25, t) for t in taus], axis=1),
        "bf25": np.stack([smiles.at_tenor(smiles.bf25, t) for t in taus], axis=1),
    }
    light_s = time.perf_counter() - started
    n = len(smiles.snapshots)
    sample = np.unique(np.linspace(0, n - 1, min(svi_sample, n)).round().astype(int))
    gaps = {name: 0.0 for name in light}
    started = time.perf_counter()
    for i in sample:
        stamp = smiles.snapshots[i]
        surface = surface_from_chain(chain.loc[chain.index == stamp])
        svi = {
            "atm": surface.atm_term_structure(np.array(taus)),
            "rr25": surface.risk_reversal_25d(np.array(taus)),
            "bf25": surface.butterfly_25d(np.array(taus)),
        }
        for name in gaps:
            gaps[name] = max(gaps[name], float(np.max(np.abs(light[name][i] - svi[name]))))
    svi_each_s = (time.perf_counter() - started) / len(sample)
    return {
        "days": days,
        "seed": seed,
        "rows": len(chain),
        "snapshots": n,
        "smiles": len(smiles.tau),
        "load_s": load_s,
        "light_s": light_s,
        "svi_sample": len(sample),
        "svi_per_snapshot_s": svi_each_s,
        "svi_all_s_estimated": svi_each_s * n,
        "speedup": svi_each_s * n / light_s,
        "max_abs_gap_vs_svi": gaps,
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"chain features of {r['days']:g} simulated days: {r['rows']:,} rows, {r['snapshots']:,} snapshots, "
        f"{r['smiles']:,} (snapshot, expiry) smiles; load {r['load_s']:.2f} s (seed {r['seed']})",
        "",
        f"{'method':<40} {'seconds':>12} {'per snapshot':>14} {'ratio':>8}",
        f"{'light smiles, all snapshots (ours)':<40} {r['light_s']:>12.3f} "
        f"{r['light_s'] / r['snapshots'] * 1e3:>11.3f} ms {1.0:>8.0f}",
        f"{'SVI surface (baseline, estimated)':<40} {r['svi_all_s_estimated']:>12.1f} "
        f"{r['svi_per_snapshot_s'] * 1e3:>11.1f} ms {r['speedup']:>8,.0f}",
        "",
        f"SVI timed on {r['svi_sample']} snapshots; largest |light − SVI| there at 7, 30, 90 days: "
        + ", ".join(f"{k} {v:.4f}" for k, v in r["max_abs_gap_vs_svi"].items()),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=365.0, help="simulated days (default 365)")
    parser.add_argument("--svi-sample", type=int, default=10, help="snapshots the SVI baseline is timed on")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.days <= 0 or args.svi_sample < 1:
        parser.error("--days must be > 0 and --svi-sample ≥ 1")
    result = run(args.days, args.svi_sample, args.seed)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
