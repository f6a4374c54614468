"""The chain-features benchmark still runs and its light smiles stay near the SVI baseline (timings never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_chain_features.py"


def test_bench_chain_features_prints_its_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--days", "1", "--svi-sample", "2", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("chain features of 1 simulated days: ") and "24 snapshots" in lines[0]
    assert lines[3].startswith("light smiles, all snapshots (ours)")
    assert lines[4].startswith("SVI surface (baseline, estimated)")
    result = json.loads(out.read_text())
    assert result["snapshots"] == 24 and result["svi_sample"] == 2
    assert result["max_abs_gap_vs_svi"]["atm"] < 0.005 and result["max_abs_gap_vs_svi"]["rr25"] < 0.015
