"""Tuning throughput with 1, 2 and 4 workers sharing one Optuna study in PostgreSQL.

For each worker count the same study (a fresh name each time, so every run starts empty) is run to ``--trials``
finished trials by ``forecaster tune --workers N`` in a subprocess: LightGBM on a small simulated market, MLflow in
a temporary SQLite store, the study in ``--storage`` (default the local PostgreSQL). Printed per worker count: wall
time, trials per minute, speed-up against one worker measured in the same run, finished and failed trials, and how
many workers ran trials.

Expected ceiling: every worker builds the same features first (the fixed cost), then trials run in parallel, one
per process (``n_jobs: 1``). On C cores the trial phase speeds up at most min(N, C)×, so on this 2-core machine the
whole run at most about 2× with 2 workers, and 4 workers add nothing but contention.

    python bench/bench_tune_scale.py                         # 40 trials, workers 1,2,4
    python bench/bench_tune_scale.py --trials 10 --workers 1,2 --json scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORAGE = os.environ.get("FORECASTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def small_spec(path: Path, trees: int) -> Path:
    sys.path.insert(0, str(ROOT))
    from forecaster.config import resolve_spec_path

    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = "tune_scale"
    values["horizons"] = [30]
    values["features"] = {"groups": ["realized"], "windows": [30, 120]}
    values["models"] = {"boost": {"family": "lgbm", "n_jobs": 1}}
    values["evaluation"] = {"step": 15}
    values["tuning"] = {"model": "boost", "startup_trials": 5, "space": {"n_estimators": trees}}
    path.write_text(yaml.safe_dump(values))
    return path


def run_once(workers: int, *, trials: int, storage: str, spec: Path, days: float, root: Path) -> dict:
    import optuna

    study = f"tune-scale-{workers}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow-{workers}.db", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [
        str(Path(sys.executable).parent / "forecaster"), "tune", "--config", str(spec), "--days", str(days),
        "--model", "boost", "--trials", str(trials), "--storage", storage, "--study", study, "--workers", str(workers),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"forecaster tune --workers {workers} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    loaded = optuna.load_study(study_name=study, storage=storage)
    states = [t.state.name for t in loaded.get_trials(deepcopy=False)]
    finished = sum(s in ("COMPLETE", "PRUNED") for s in states)
    ran_by = {t.user_attrs.get("worker") for t in loaded.get_trials(deepcopy=False) if t.user_attrs.get("worker")}
    optuna.delete_study(study_name=study, storage=storage)
    return {
        "workers": workers,
        "wall_s": wall,
        "trials_per_min": finished / wall * 60.0,
        "finished": finished,
        "failed": states.count("FAIL"),
        "processes_with_trials": len(ran_by),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="finished trials per study (default 40)")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    parser.add_argument("--days", type=float, default=3.0, help="simulated days (default 3)")
    parser.add_argument("--trees", type=int, default=100, help="LightGBM trees per trial (default 100)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tune-scale-") as tmp:
        root = Path(tmp)
        spec = small_spec(root / "spec.yaml", args.trees)
        for workers in counts:
            rows.append(
                run_once(workers, trials=args.trials, storage=args.storage, spec=spec, days=args.days, root=root)
            )
            print(f"workers {workers}: {rows[-1]['wall_s']:.1f} s", flush=True)
    base = next((r for r in rows if r["workers"] == 1), rows[0])
    print(f"\n{args.trials} trials, LightGBM {args.trees} trees, {args.days:g} simulated days, {os.cpu_count()} CPUs")
    header = f"{'workers':>7} {'wall s':>8} {'trials/min':>10} {'speed-up':>8} {'finished':>8} {'failed':>6}"
    print(header + f" {'ran trials':>10}")
    for row in rows:
        row["speedup"] = base["wall_s"] / row["wall_s"]
        print(
            f"{row['workers']:>7} {row['wall_s']:>8.1f} {row['trials_per_min']:>10.1f} {row['speedup']:>7.2f}x "
            f"{row['finished']:>8} {row['failed']:>6} {row['processes_with_trials']:>10}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": {k: str(v) for k, v in vars(args).items() if k != "json"},
            "cpus": os.cpu_count(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
