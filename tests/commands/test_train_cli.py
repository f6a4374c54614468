"""``forecaster train`` end to end on a 12-day simulated market: walk-forward, registration of the best servable
model with the ``challenger`` and ``champion`` aliases, and the registered pyfunc loaded back in a fresh Python process
that forecasts from raw recent bars. MLflow writes to a temporary SQLite store.

The commands run as a user runs them (the installed ``forecaster`` in a subprocess), with ``OMP_WAIT_POLICY=PASSIVE``:
LightGBM's two OpenMP threads spin-wait, which on a shared, busy machine makes it many times slower.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from forecaster.config import resolve_spec_path

FORECASTER = str(Path(sys.executable).parent / "forecaster")
SPEC_NAME = "train_cli_test"
REGISTERED = f"drift-forecaster-{SPEC_NAME}"
HORIZONS = (60, 240)
DAYS = "12"
SERVABLE = ("har", "harx")  # lgbm reads order-flow features (trades), the oracle the simulator's latent state
FORECAST_NUMBERS = ["var", "q05", "q25", "q50", "q75", "q95", "p_calm", "p_normal", "p_stressed"]

LOAD_AND_FORECAST = """
import json, sys
import mlflow, pandas as pd
from mlflow import MlflowClient

name, origin = sys.argv[1], pd.Timestamp(sys.argv[2])
client = MlflowClient()
aliases = dict(client.get_registered_model(name).aliases)
version = client.get_model_version_by_alias(name, "champion")
rows = int(version.tags["min_rows"])
model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
bars = pd.read_parquet("sim/bars.parquet")
iv = pd.read_parquet("sim/iv_index.parquet")
assert (bars["timestamp"] == iv["timestamp"]).all()
request = bars.assign(timestamp=[t.isoformat() for t in bars["timestamp"]], iv=iv["dvol"] / 100.0)  # decimal IV
try:
    model.predict(request.iloc[-(rows - 1):])
    short = "no error"
except Exception as error:
    short = str(error)
at_origin = request[bars["timestamp"] <= origin].iloc[-rows:]
print(json.dumps({
    "aliases": {k: str(v) for k, v in aliases.items()},
    "model_name": version.tags["model_name"],
    "min_rows": rows,
    "last": model.predict(request.iloc[-rows:]).to_dict(orient="list"),
    "at_origin": model.predict(at_origin).to_dict(orient="list"),
    "short": short,
}, default=str))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small spec (windows 60, 240, 1440 bars; horizons 60, 240; two test blocks) and its 12-day
    simulated market written by ``forecaster simulate`` (the market ``train --days 12`` simulates itself)."""
    root = tmp_path_factory.mktemp("train")
    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = SPEC_NAME
    values["horizons"] = list(HORIZONS)
    values["features"].update({"windows": [60, 240, 1440], "iv_percentile_days": 1, "chain_tenors_days": [7, 30]})
    values["models"]["har"]["windows"] = [60, 240, 1440]  # the benchmark pins its windows: the short ones here
    values["training"]["days"] = int(DAYS)
    values["evaluation"].update({"embargo": 240, "max_folds": 2})
    (root / "small.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    done = _forecaster(["simulate", "--config", "small.yaml", "--days", DAYS, "--out", "sim"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture
def store(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with the spec and the market, and its own tracking store."""
    for name in ("small.yaml", "sim"):
        (tmp_path / name).symlink_to(world / name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _forecaster(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run([FORECASTER, *args], cwd)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _mean_qlike(report: dict) -> dict[str, float]:
    return {name: float(np.mean([m["qlike"] for m in per_h.values()])) for name, per_h in report["models"].items()}


def test_train_registers_the_best_servable_model_and_it_serves(store: Path) -> None:
    done = _forecaster(["train", "--config", "small.yaml", "--days", DAYS, "--models", "har,harx,lgbm,oracle",
                        "--predictions", "predictions.parquet", "--json", "metrics.json"], store)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((store / "metrics.json").read_text())
    ranking = sorted(_mean_qlike(report), key=_mean_qlike(report).get)
    best = next(name for name in ranking if name in SERVABLE)
    for name in ranking[: ranking.index(best)]:  # every better model is skipped, with the reason
        assert f"not registered: {name!r} cannot be served from bars and an IV (" in done.stdout, name
    assert f"registered {best!r} as {REGISTERED} version 1" in done.stdout
    assert "oracle" in ranking[: ranking.index(best)]  # the physical limit ranks above any servable model

    predictions = pd.read_parquet(store / "predictions.parquet")
    mine = predictions[predictions["model"] == best].sort_values(["timestamp", "horizon"])
    origin = mine["timestamp"].max()  # the last test origin: in the last fold, whose fit is the registered one
    loaded = _run([sys.executable, "-c", LOAD_AND_FORECAST, REGISTERED, origin.isoformat()], store)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    served = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert served["aliases"] == {"challenger": "1", "champion": "1"} and served["model_name"] == best
    assert f"min_rows = {served['min_rows']}" in served["short"]  # one bar fewer is refused, and says how many

    last = pd.DataFrame(served["last"])
    assert list(last["horizon"]) == list(HORIZONS) and set(last["model"]) == {best}
    assert np.isfinite(last["var"]).all() and (last["var"] > 0).all()
    assert (np.diff(last[["q05", "q25", "q50", "q75", "q95"]].to_numpy(), axis=1) >= 0).all()

    at_origin = pd.DataFrame(served["at_origin"])  # the same bars as the walk-forward: the same forecast
    assert (pd.to_datetime(at_origin["timestamp"], utc=True) == origin).all()
    batch = mine[mine["timestamp"] == origin]
    assert list(at_origin["horizon"]) == list(batch["horizon"]) == list(HORIZONS)
    np.testing.assert_allclose(at_origin[FORECAST_NUMBERS], batch[FORECAST_NUMBERS], rtol=1e-9)


def test_train_refuses_when_no_model_can_be_served(store: Path) -> None:
    done = _forecaster(["train", "--config", "small.yaml", "--days", DAYS, "--models", "lgbm,oracle"], store)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "not registered: 'oracle' cannot be served" in done.stdout
    lgbm = next(line for line in done.stdout.splitlines() if line.startswith("not registered: 'lgbm'"))
    assert re.search(r"features a request cannot carry: \['(chain|imbalance|trades|intensity|avg_size|vpin)_", lgbm)
    assert "no evaluated model can be served from bars and an IV" in done.stderr
