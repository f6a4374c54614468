"""The tuning scale benchmark still runs: a tiny study with one and two workers on the local PostgreSQL, the table
and the JSON (times are never asserted). Skipped, saying why, only where no PostgreSQL server answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_tune_scale.py"
PG = os.environ.get("FORECASTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable() -> bool:
    try:
        import psycopg

        psycopg.connect(PG, connect_timeout=3).close()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _reachable(), reason=f"no PostgreSQL server reachable at {PG} (or no psycopg)")
def test_bench_tune_scale_runs_each_worker_count_to_the_trials(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    cmd = [sys.executable, str(SCRIPT), "--trials", "4", "--workers", "1,2", "--trees", "20", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "trials/min" in res.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["workers"] for r in rows] == [1, 2]
    for row in rows:
        assert row["finished"] == 4 and row["failed"] == 0 and row["wall_s"] > 0 and row["trials_per_min"] > 0
