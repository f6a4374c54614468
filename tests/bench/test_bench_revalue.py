"""The revaluation benchmark still runs and its implementations agree (a small run; timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_revalue.py"
ROWS = ("scipy.stats.norm (baseline)", "black.py (revalue_reference)", "revalue, 1 thread", "revalue, 2 threads")


def test_bench_revalue_prints_its_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--options", "300", "--scenarios", "40", "--repeats", "1", "--threads", "2"]
    res = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("revalue 300 options x 40 scenarios = 12,000 price+Greek evaluations")
    assert lines[1].split() == ["implementation", "wall", "s", "evals/s", "x", "baseline"]
    rows = {line[:32].strip(): line[32:].split() for line in lines if line[:32].strip() in ROWS}
    assert list(rows) == list(ROWS) and rows[ROWS[0]][-1] == "1.00"  # the baseline is its own unit
    assert "totals agree (<= 1e-09): yes" in res.stdout
    assert any(line.startswith("target (revalue, 2 threads <= 1 s and >= 3x baseline): ") for line in lines)
    result = json.loads(out.read_text())
    assert result["evaluations"] == 12_000 and result["agree"] is True and isinstance(result["target_met"], bool)
    assert [r["implementation"] for r in result["results"]] == list(ROWS)
    for r in result["results"]:
        assert r["wall_s"] > 0 and r["evals_per_s"] == 12_000 / r["wall_s"]
    for diffs in result["max_rel_diff_vs_baseline"].values():
        assert set(diffs) == {"value", "delta", "gamma", "vega"} and max(diffs.values()) <= 1e-9


def test_bench_revalue_refuses_a_bad_size() -> None:
    res = subprocess.run([sys.executable, str(SCRIPT), "--options", "0"], capture_output=True, text=True)
    assert res.returncode == 2 and "--options must be a positive integer; got 0" in res.stderr
