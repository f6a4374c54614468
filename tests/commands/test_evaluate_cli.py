"""``forecaster evaluate`` on real daily data: the NASDAQ Composite bars shipped with ``arch`` and an implied-vol index
built for the test, run as a user runs it (the installed ``forecaster`` command in a subprocess).

The IV index is **synthetic**, VXN-like: the annualized trailing 22-day realized vol of the closes times 1.1, times
lognormal noise, in percent, on the bars' dates. The outputs are checked against facts computed here from the CSV
files (the realized variance, QLIKE, coverage), not against the project's own metric code.

LightGBM trains with two OpenMP threads; on a shared, busy machine their spin-waiting makes it some 25 times slower,
so the subprocesses run with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning; results unchanged).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.data import nasdaq as arch_nasdaq

FORECASTER = str(Path(sys.executable).parent / "forecaster")
HORIZONS = (1, 5, 22)
MODELS = ("har", "harx", "ewma", "garch", "lgbm")
# the predictions file of DESIGN section 5
PREDICTION_COLUMNS = "timestamp horizon model var q05 q25 q50 q75 q95 p_calm p_normal p_stressed realized".split()
METRIC_KEYS = {"qlike", "mse", "mz_r2", "pinball", "coverage90", "n"}  # DESIGN section 11
UNCHANGED_CLOSE = "2018-11-13"  # the NASDAQ close of that day equals the previous one: a zero daily return
BARS = 1500  # daily_index: 1,000 training bars, test blocks of 250: two folds


def _write_market(raw: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """``raw`` (arch's columns) as a bars CSV, and the synthetic VXN-like index (module docstring) as an IV CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    bars, iv = folder / "nasdaq.csv", folder / "vxn.csv"
    raw.rename(columns=str.lower).rename_axis("date").to_csv(bars)
    r2 = np.log(raw["Adj Close"]).diff().pow(2).bfill()  # (n,)
    vol = np.sqrt(252.0 * r2.rolling(22, min_periods=1).mean()) * 1.1
    noise = np.exp(np.random.default_rng(11).normal(0.0, 0.05, len(raw)))
    vxn = pd.DataFrame({"date": raw.index.strftime("%Y-%m-%d"), "vxn": np.round(100.0 * vol * noise, 2)})
    vxn.to_csv(iv, index=False)
    return bars, iv


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The last 1,500 NASDAQ days before the unchanged close of 2018-11-13 (tested on its own below)."""
    raw = arch_nasdaq.load()
    raw = raw.loc[: pd.Timestamp(UNCHANGED_CLOSE) - pd.Timedelta(days=1)].iloc[-BARS:]
    return _write_market(raw, tmp_path_factory.mktemp("nasdaq"))


def _forecaster(args: list[str], cwd: Path, *, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([FORECASTER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _reject_constant(name: str) -> None:
    raise ValueError(f"the JSON holds {name}, which is not a JSON number")


def _realized(bars_csv: Path, h: int) -> pd.Series:
    """rv_h(t) = Σ_{i=1..h} r_{t+i}², r the log return of the (adjusted) close, indexed by date (UTC)."""
    bars = pd.read_csv(bars_csv, index_col="date", parse_dates=True)
    r2 = np.log(bars["adj close"]).diff().pow(2).to_numpy()  # (n,)
    out = np.full(r2.size, np.nan)
    for t in range(r2.size - h):
        out[t] = r2[t + 1 : t + 1 + h].sum()
    return pd.Series(out, index=bars.index.tz_localize("UTC"))


def test_evaluate_daily_bars_and_iv_index(market, tmp_path) -> None:
    bars, iv = market
    predictions, summary = tmp_path / "out" / "predictions.csv", tmp_path / "out" / "metrics.json"
    done = _forecaster(["evaluate", "--bars", str(bars), "--iv-index", str(iv), "--freq", "1d",
                        "--horizons", "1,5,22", "--predictions", str(predictions), "--json", str(summary),
                        "--models", ",".join(MODELS), "--no-track"], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "spec: daily_index (chosen by the bar length" in done.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # --no-track

    frame = pd.read_csv(predictions)
    assert list(frame.columns) == PREDICTION_COLUMNS
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    assert not frame.duplicated(["timestamp", "horizon", "model"]).any()
    assert set(frame["model"]) == set(MODELS) and set(frame["horizon"]) == set(HORIZONS)
    stamps = {key: tuple(g["timestamp"].sort_values()) for key, g in frame.groupby(["model", "horizon"])}
    assert len(set(stamps.values())) == 1  # every model forecasts the same test origins at every horizon
    origins = pd.DatetimeIndex(next(iter(stamps.values())))
    assert len(frame) == len(MODELS) * len(HORIZONS) * len(origins)
    assert origins.min() >= pd.read_csv(bars)["date"].pipe(pd.to_datetime, utc=True).iloc[1000]  # after training
    assert np.isfinite(frame[PREDICTION_COLUMNS[3:]].to_numpy()).all() and (frame["var"] > 0).all()
    for h in HORIZONS:
        truth = _realized(bars, h)
        rows = frame[frame["horizon"] == h]
        np.testing.assert_allclose(rows["realized"], truth.loc[pd.DatetimeIndex(rows["timestamp"])], rtol=1e-9)

    text = summary.read_text()
    report = json.loads(text, parse_constant=_reject_constant)  # no NaN or Infinity
    assert report["horizons"] == list(HORIZONS)
    assert pd.Timestamp(report["test_start"]) == origins.min() and pd.Timestamp(report["test_end"]) == origins.max()
    assert set(report["models"]) == set(MODELS)
    for name in MODELS:
        assert set(report["models"][name]) == {"h1", "h5", "h22"}
        for h in HORIZONS:
            metrics = report["models"][name][f"h{h}"]
            assert METRIC_KEYS <= set(metrics), (name, h)
            assert all(isinstance(metrics[k], int | float) for k in METRIC_KEYS), (name, h, metrics)
            assert metrics["n"] == len(origins)
            rows = frame[(frame["model"] == name) & (frame["horizon"] == h)]
            ratio = rows["realized"] / rows["var"]
            assert metrics["qlike"] == pytest.approx(float(np.mean(ratio - np.log(ratio) - 1)), rel=1e-6)
            inside = (rows["q05"] <= rows["realized"]) & (rows["realized"] <= rows["q95"])
            assert metrics["coverage90"] == pytest.approx(float(inside.mean()), abs=1e-12)
    assert set(report["dm_vs_har"]) == set(MODELS) - {"har"}
    for name, per_h in report["dm_vs_har"].items():
        assert set(per_h) == {"h1", "h5", "h22"}
        for h, test in per_h.items():
            assert np.isfinite(test["stat"]) and 0.0 <= test["p"] <= 1.0, (name, h, test)


def test_evaluate_tracks_a_parent_run_with_a_child_per_model(market, tmp_path) -> None:
    bars, iv = market
    summary = tmp_path / "metrics.json"
    done = _forecaster(["evaluate", "--bars", str(bars), "--iv-index", str(iv), "--freq", "1d",
                        "--models", "har,ewma", "--json", str(summary)], tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "spec: daily_index" in done.stdout and "MLflow: run " in done.stdout
    report = json.loads(summary.read_text())
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # read the store directly, not through the project
        (experiment,) = db.execute("select experiment_id from experiments where name = 'daily_index'").fetchone()
        runs = db.execute("select run_uuid, name, status from runs where experiment_id = ?", (experiment,)).fetchall()
        tags = {(r, k): v for r, k, v in db.execute("select run_uuid, key, value from tags")}
        metrics = {(r, k): v for r, k, v in db.execute("select run_uuid, key, value from latest_metrics")}
    parents = [run for run, _, _ in runs if (run, "mlflow.parentRunId") not in tags]
    assert len(parents) == 1 and parents[0] in done.stdout
    parent = parents[0]
    children = {tags[run, "model_name"]: run for run, _, _ in runs if tags.get((run, "mlflow.parentRunId")) == parent}
    assert set(children) == {"har", "ewma"} and len(runs) == 3
    assert all(status == "FINISHED" for _, _, status in runs)
    for name, run in children.items():
        for h in HORIZONS:
            assert metrics[run, f"qlike/rv/h{h}"] == pytest.approx(report["models"][name][f"h{h}"]["qlike"], rel=1e-9)
    assert metrics[children["ewma"], "dm_p/rv/h5"] == pytest.approx(report["dm_vs_har"]["ewma"]["h5"]["p"], rel=1e-9)


def test_an_unchanged_close_and_no_iv_index(tmp_path) -> None:
    """Real daily closes can repeat (NASDAQ, 2018-11-13): a zero daily return, rv_1 = 0, must not stop log-HAR.
    Without an IV index HAR-X is left out, with a note."""
    raw = arch_nasdaq.load().iloc[-BARS:]
    assert (np.log(raw["Adj Close"]).diff() == 0).sum() == 1  # the fact the test is about
    bars, _ = _write_market(raw, tmp_path / "data")
    done = _forecaster(["evaluate", "--bars", str(bars), "--freq", "1d", "--models", "har,harx",
                        "--no-track"], tmp_path)  # fmt: skip
    assert "note: model 'harx' is left out: the data have no implied vol" in done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluate: 1 models (har)" in done.stdout
