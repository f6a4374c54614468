"""Time the full revaluation of an option book: N options x S scenarios, price and Greeks, book totals.

The baseline is the straightforward implementation measured in the same run: ``scipy.stats.norm`` cdf/pdf on
full (S, N) arrays, computing price, delta, gamma and vega and the same book totals. Every implementation gets the
same seeded book (one underlying, strikes around the money, expiries 1 day to 1 year, vols 30%..150%, calls and
puts, signed weights) and the same scenario moves; the script checks that they agree before printing times.

    python bench/bench_revalue.py                                  # 10,000 options x 1,000 scenarios
    python bench/bench_revalue.py --options 500 --scenarios 50     # quick look
    python bench/bench_revalue.py --json bench_revalue.json        # also write the results as JSON

Target: ``revalue`` at ``--threads`` within 1 s and at least 3x faster than the baseline (printed, not asserted).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import scipy
from scipy.stats import norm

from forecaster.pricing.revalue import OUTPUTS, revalue, revalue_reference

FloatArray = npt.NDArray[np.float64]
Totals = dict[str, FloatArray]

TARGET_WALL_S = 1.0
TARGET_SPEEDUP = 3.0
AGREEMENT = 1e-9  # largest |difference| allowed, relative to the largest |total| of each output


def make_book(n_options: int, n_scenarios: int, seed: int) -> SimpleNamespace:
    """A seeded BTC-like book and scenario moves. Shapes: log_return (S,); every option field (N,)."""
    rng = np.random.default_rng(seed)
    forward = np.full(n_options, 60_000.0)
    tau = np.exp(rng.uniform(math.log(1 / 365), 0.0, n_options))
    sigma = rng.uniform(0.3, 1.5, n_options)
    strike = forward * np.exp(rng.uniform(-2.0, 2.0, n_options) * sigma * np.sqrt(tau))
    return SimpleNamespace(
        log_return=rng.normal(0.0, 0.05, n_scenarios),
        forward=forward,
        strike=strike,
        tau=tau,
        sigma=sigma,
        is_call=rng.random(n_options) < 0.5,
        weight=rng.normal(0.0, 10.0, n_options),
    )


def scipy_norm_baseline(
    log_return: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    tau: FloatArray,
    sigma: FloatArray,
    is_call: npt.NDArray[np.bool_],
    weight: FloatArray,
) -> Totals:
    """The textbook Black-76 on full (S, N) arrays with ``scipy.stats.norm``; the same totals as ``revalue``."""
    fj = forward * np.exp(log_return)[:, None]  # (S, N)
    sd = sigma * np.sqrt(tau)  # (N,)
    d1 = (np.log(fj / strike) + 0.5 * sd**2) / sd  # (S, N)
    d2 = d1 - sd
    n1, n2, pdf = norm.cdf(d1), norm.cdf(d2), norm.pdf(d1)
    value = np.where(is_call, fj * n1 - strike * n2, strike * (1.0 - n2) - fj * (1.0 - n1))
    delta = np.where(is_call, n1, n1 - 1.0)
    gamma = pdf / (fj * sd)
    vega = fj * pdf * np.sqrt(tau)
    return {
        "value": value @ weight,
        "delta": (fj * delta) @ weight,
        "gamma": (fj**2 * gamma) @ weight,
        "vega": vega @ weight,
    }


def best_of(fn: Callable[[], Totals], repeats: int) -> tuple[float, Totals]:
    """Best wall time over ``repeats`` runs, and the last run's totals."""
    best, out = math.inf, {}
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def max_relative_difference(got: Totals, expected: Totals) -> dict[str, float]:
    """max |got − expected| / max |expected| per output: relative to the largest total, since signed books cancel."""
    return {
        name: float(np.max(np.abs(got[name] - expected[name])) / np.max(np.abs(expected[name]))) for name in OUTPUTS
    }


def run(n_options: int, n_scenarios: int, repeats: int, threads: int, seed: int) -> dict:
    b = make_book(n_options, n_scenarios, seed)
    book_args = (b.log_return, b.forward, b.strike, b.tau, b.sigma, b.is_call, b.weight)
    cases: list[tuple[str, Callable[[], Totals]]] = [
        ("scipy.stats.norm (baseline)", lambda: scipy_norm_baseline(*book_args)),
        ("black.py (revalue_reference)", lambda: revalue_reference(*book_args)),
        ("revalue, 1 thread", lambda: revalue(*book_args, threads=1)),
    ]
    if threads != 1:
        cases.append((f"revalue, {threads} threads", lambda: revalue(*book_args, threads=threads)))
    evaluations = n_options * n_scenarios
    timed = [(name, *best_of(fn, repeats)) for name, fn in cases]
    baseline_s, baseline_totals = timed[0][1], timed[0][2]
    rows = [
        {
            "implementation": name,
            "wall_s": wall,
            "evals_per_s": evaluations / wall,
            "speedup_vs_baseline": baseline_s / wall,
        }
        for name, wall, _ in timed
    ]
    diffs = {name: max_relative_difference(totals, baseline_totals) for name, _, totals in timed[1:]}
    target = rows[-1]
    return {
        "options": n_options,
        "scenarios": n_scenarios,
        "evaluations": evaluations,
        "repeats": repeats,
        "threads": threads,
        "seed": seed,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "arch": platform.machine(),
        },
        "results": rows,
        "max_rel_diff_vs_baseline": diffs,
        "agree": all(d <= AGREEMENT for per_output in diffs.values() for d in per_output.values()),
        "target": {"implementation": target["implementation"], "wall_s": TARGET_WALL_S, "speedup": TARGET_SPEEDUP},
        "target_met": target["wall_s"] <= TARGET_WALL_S and target["speedup_vs_baseline"] >= TARGET_SPEEDUP,
    }


def print_report(r: dict) -> None:
    m = r["machine"]
    print(
        f"revalue {r['options']:,} options x {r['scenarios']:,} scenarios = {r['evaluations']:,} price+Greek "
        f"evaluations; best of {r['repeats']}; {m['cpus']} cpus, python {m['python']}, numpy {m['numpy']}, "
        f"scipy {m['scipy']}, {m['arch']}"
    )
    header = f"{'implementation':<32}{'wall s':>10}{'evals/s':>14}{'x baseline':>12}"
    print(header)
    print("-" * len(header))
    for row in r["results"]:
        print(
            f"{row['implementation']:<32}{row['wall_s']:>10.3f}{row['evals_per_s']:>14.3g}"
            f"{row['speedup_vs_baseline']:>12.2f}"
        )
    print("\nmax |total - baseline| / max |baseline total|:")
    for name, per_output in r["max_rel_diff_vs_baseline"].items():
        print(f"  {name:<30}" + "  ".join(f"{k} {v:.1e}" for k, v in per_output.items()))
    print(f"totals agree (<= {AGREEMENT:g}): {'yes' if r['agree'] else 'NO'}")
    t = r["target"]
    print(
        f"target ({t['implementation']} <= {t['wall_s']:g} s and >= {t['speedup']:g}x baseline): "
        f"{'met' if r['target_met'] else 'not met'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--options", type=int, default=10_000, help="options in the book (N)")
    parser.add_argument("--scenarios", type=int, default=1_000, help="scenarios (S)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per implementation; the best is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="revalue worker threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    for name in ("options", "scenarios", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer; got {getattr(args, name)}")
    result = run(args.options, args.scenarios, args.repeats, args.threads, args.seed)
    print_report(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
