"""The serving benchmark still runs: a server on loopback, a load generator in another process, both loops, the
table and the JSON (a tiny load; latencies are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_serving.py"


def test_bench_serving_drives_the_server_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "serving.json"
    load = ["--duration", "2", "--rate", "4", "--closed-duration", "1", "--clients", "2"]
    request = ["--endpoints", "forecast,adjustments", "--positions", "5", "--scenarios", "128"]
    cmd = [sys.executable, str(SCRIPT), *load, *request, "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path, timeout=600)
    assert "maximum throughput (closed loop):" in res.stdout
    result = json.loads(out.read_text())
    assert [r["endpoint"] for r in result["open_loop"]] == ["/v1/forecast", "/v1/portfolio/adjustments"]
    for row in [*result["open_loop"], *result["closed_loop"]]:
        assert row["errors"] == 0 and row["requests"] > 0 and set(row["statuses"]) == {"200"}
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["throughput_per_s"] > 0
