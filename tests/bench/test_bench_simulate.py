"""The simulator benchmark still runs (a smoke run on a few hours; timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_simulate.py"


def test_bench_simulate_prints_its_table() -> None:
    res = subprocess.run([sys.executable, str(SCRIPT), "--days", "0.1"], capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert lines[1].split()[:3] == ["case", "wall", "s"]
    rows = [line for line in lines if line.startswith(("bars + truth", "+ hourly chain", "+ trades"))]
    assert len(rows) == 3 and rows[0].split()[-5] == rows[0].split()[-3] == "1.00"  # the baseline is its own unit
    assert "trades generated and written" in res.stdout
