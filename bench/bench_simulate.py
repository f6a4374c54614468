"""Time and peak memory of the simulator: a year of 1-minute bars with trades and hourly chain snapshots.

Each case runs in a fresh process (peak RSS is per process) and writes Parquet to a temporary directory.
Ratios are against the baseline measured in the same run: bars + truth only (no trades, no chain).

    python bench/bench_simulate.py            # 365 days (about 2 minutes on 2 cores)
    python bench/bench_simulate.py --days 30  # quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from forecaster.market.simulator import SimConfig, simulate
days, out, trades, chain = float(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
t0 = time.perf_counter()
m = simulate(SimConfig(days=days), out_dir=out, with_trades=trades, with_chain=chain)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "bars": len(m.bars), "trades": m.n_trades,
                  "chain_rows": 0 if m.options_chain is None else len(m.options_chain)}))
"""

CASES = (
    ("bars + truth (baseline)", False, False),  # trades are still drawn (bar volume), not written
    ("+ hourly chain", False, True),
    ("+ trades (full)", True, True),
)


def run_case(days: float, trades: bool, chain: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(days), out, str(int(trades)), str(int(chain))],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=365.0)
    args = parser.parse_args()
    print(f"simulate {args.days:g} days of 1-minute bars; python {platform.python_version()}, {platform.machine()}")
    rows = [(name, run_case(args.days, trades, chain)) for name, trades, chain in CASES]
    base = rows[0][1]
    header = f"{'case':<26}{'wall s':>9}{'x base':>8}{'peak MB':>9}{'x base':>8}{'trades':>13}{'chain rows':>12}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(
            f"{name:<26}{r['wall_s']:>9.1f}{r['wall_s'] / base['wall_s']:>8.2f}{r['peak_rss_mb']:>9.0f}"
            f"{r['peak_rss_mb'] / base['peak_rss_mb']:>8.2f}{r['trades']:>13,}{r['chain_rows']:>12,}"
        )
    full = rows[-1][1]
    if full["trades"]:
        print(f"\ntrades generated and written: {full['trades'] / full['wall_s']:,.0f} per second")


if __name__ == "__main__":
    main()
