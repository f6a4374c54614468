"""The feature-pipeline benchmark still runs and its naive twin agrees (two simulated days; timings never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_features.py"
GROUPS = ("realized", "implied", "volume", "flow", "aggregation", "calendar")
TARGETS = {"trades_per_s_aggregated", "year_s", "peak_rss_mb"}
SKIPPED = ["W=1440", "W=10080", "W=43200", "iv_pct_30"]  # a 1-day prefix holds only the 60-bar window


def test_bench_features_prints_its_tables_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--days", "2", "--naive-days", "1", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("features of 2 days of 1-minute bars: 2,880 bars, ")
    assert "-> 156 columns (experiments/sim_intraday.yaml, seed 7)" in lines[0]
    assert any(line.split()[:4] == ["pipeline", "(one", "run)", "wall"] for line in lines)
    for row in ("load trades", "build_features", "aggregate_trades alone", "load + build_features"):
        assert any(line.startswith(row) for line in lines), row
    header = next(i for i, line in enumerate(lines) if line.startswith("group "))
    assert [line.split()[0] for line in lines[header + 2 : header + 2 + len(GROUPS)]] == list(GROUPS)
    assert "naive: measured on the first 1 days (1,440 bars, " in res.stdout
    assert f"naive: not measured (longer than the prefix): {', '.join(SKIPPED)}; its time is a floor" in res.stdout
    assert "naive columns agree with the pipeline on the prefix (<= 1e-09, same NaN rows): yes" in res.stdout
    targets = (">= 1,000,000 trades/s aggregated: ", "year (load + features) <= 30 s: ", "peak memory <= 4,096 MB: ")
    for target in targets:
        assert any(line.startswith(f"target {target}") for line in lines), target

    result = json.loads(out.read_text())
    assert result["bars"] == 2_880 and result["columns"] == 156 and result["trades"] == result["simulate"]["trades"]
    assert result["agree"] is True and set(result["targets_met"]) == TARGETS
    assert [g["group"] for g in result["groups"]] == list(GROUPS)
    p = result["pipeline"]
    assert set(p["load_s"]) == {"bars", "trades", "iv"} and p["year_s"] == p["load_total_s"] + p["features_s"]
    assert p["peak_rss_mb"] >= max(p["load_peak_rss_mb"], p["features_peak_rss_mb"]) > 0
    assert result["naive"]["bars"] == 1_440 and result["naive"]["skipped_steps"] == SKIPPED
    realized = next(g for g in result["groups"] if g["group"] == "realized")
    assert (realized["columns"], realized["naive_columns"]) == (72, 36)  # 12 features each of the 15, 60, 240 windows


def test_bench_features_refuses_a_prefix_longer_than_the_run() -> None:
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--days", "2", "--naive-days", "3"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "--naive-days must be at most --days (2); got 3" in res.stderr
