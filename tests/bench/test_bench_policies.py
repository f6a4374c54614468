"""The policy acceptance study still runs end to end and pools two markets (a small spec, one day each): every
frontier point holds both markets' days, the margin sweeps and the drift table are there (timings never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from forecaster.config import resolve_spec_path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_policies.py"


def small_spec(tmp_path: Path) -> Path:
    """sim_intraday with short windows and 5 training days (as the backtest CLI test), fewer policies and points."""
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["name"] = "bench_policies"
    values["features"].update({"windows": [15, 60, 240], "iv_percentile_days": 1, "chain_tenors_days": [7, 30]})
    bt = values["backtest"]
    bt.update({"train_days": 5, "collateral_every": 240, "scenarios": 64})
    keep = ("band", "band_edge", "ww", "predictive")
    bt["hedge_policies"] = {k: {**v, "sweep": v["sweep"][1:3]} for k, v in bt["hedge_policies"].items() if k in keep}
    bt["margin_policies"]["static"]["sweep"] = [1.0, 1.2]
    bt["margin_policies"]["reactive"]["sweep"] = [1.2]
    bt["margin_policies"]["predictive"]["sweep"] = [1.1]
    path = tmp_path / "bench_policies.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def test_bench_policies_pools_two_markets(tmp_path: Path) -> None:
    out = tmp_path / "policies.json"
    cmd = [sys.executable, str(SCRIPT), "--config", str(small_spec(tmp_path)), "--seeds", "3,4", "--days", "1",
           "--drift-horizons", "240", "--jobs", "2", "--json", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "2 markets x 1 days = 2 daily P&Ls pooled" in res.stdout
    assert "predictive at matched cost" in res.stdout
    assert "Greek-drift forecasts (pooled over the markets)" in res.stdout
    result = json.loads(out.read_text())
    assert result["seeds"] == [3, 4]
    frontiers = result["frontiers"]
    assert set(frontiers) == {"band", "band_edge", "ww", "predictive", "floor"}
    for name, points in frontiers.items():
        assert all(p["days"] == 2 and p["cost"] >= 0 and np.isfinite(p["cvar95"]) for p in points), name
    assert frontiers["floor"][0]["cost"] == 0.0
    assert sorted({(m["policy"], m["param"]) for m in result["margin"]}) == [
        ("predictive", 1.1), ("reactive", 1.2), ("static", 1.0), ("static", 1.2),
    ]  # fmt: skip
    drift = {(row["target"], row["source"]) for row in result["drift"]}
    assert {("delta", "model"), ("delta", "naive"), ("margin", "model")} <= drift
    assert all(0.0 <= row["coverage_interval"] <= 1.0 for row in result["drift"])
