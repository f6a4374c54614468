"""Walk-forward folds, purging and the predictions frame (training/walkforward.py), on the session's small market.

The models here are test-local and cheap (the oracle, a mean of the training rv_h, a spy that records what it is
given), so these tests depend on models/base.py and models/oracle.py only.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import ConfigError, UsageError
from models.base import FORECAST_COLUMNS, FloatArray, Forecaster, IntArray, ModelData, ModelError
from models.oracle import Oracle
from training.walkforward import (
    PREDICTION_COLUMNS,
    PREDICTIONS_FILE_COLUMNS,
    TIMING_COLUMNS,
    WalkForwardConfig,
    folds,
    walk_forward,
    walkforward_config_from_spec,
    write_predictions,
)

H_MAX = 240  # the longest horizon of small_data


class MeanRv(Forecaster):
    """Forecasts the mean training rv_h at every origin (a constant per horizon)."""

    family = "mean_rv"

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.mean_ = {h: float(np.nanmean(data.target(h)[rows])) for h in self.horizons_}

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        return {h: np.full(rows.size, self.mean_[h]) for h in self.horizons_}


class Spy(MeanRv):
    """MeanRv that records the rows of every fit and predict call in ``log`` (shared by its clones)."""

    family = "spy"

    def __init__(self, *, log: list | None = None, horizons=None, seed: int = 0, name: str | None = None) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.log = log

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.log.append(("fit", rows.copy()))
        super()._fit(data, rows)

    def predict(self, data: ModelData, rows) -> pd.DataFrame:
        self.log.append(("predict", np.asarray(rows).copy()))
        return super().predict(data, rows)


class Failing(MeanRv):
    """Fails to fit from its second fit call on (shared counter ``calls``)."""

    family = "failing"

    def __init__(self, *, calls: list | None = None, horizons=None, seed: int = 0, name: str | None = None) -> None:
        super().__init__(horizons=horizons, seed=seed, name=name)
        self.calls = calls

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self.calls.append(1)
        if len(self.calls) > 1:
            raise RuntimeError("the solver diverged")
        super()._fit(data, rows)


class OverConfident(Oracle):
    """The oracle's variance with quantiles far too narrow (±10% around it): its 90% interval covers little."""

    family = "overconfident"

    def _predict_quantiles(self, data, rows, var):
        spread = np.exp(np.array([-0.1, -0.05, 0.0, 0.05, 0.1]))  # (5,)
        return {h: var[h][:, None] * spread[None, :] for h in self.horizons_}


CONFIGS = [
    WalkForwardConfig(),
    WalkForwardConfig(window="rolling", train_bars=5000, refit_every=3000, step=15, embargo=240),
    WalkForwardConfig(window="expanding", step=30, embargo=500, calibration_fraction=0.0, refit_every=4000),
    WalkForwardConfig(
        window="rolling", train_bars=6001, refit_every=1000, step=7, embargo=300, calibration_fraction=0.3
    ),
    WalkForwardConfig(window="expanding", refit_every=1440, max_folds=3, embargo=241),
]


def grid_of(data: ModelData, cfg: WalkForwardConfig) -> IntArray:
    return np.arange(cfg.start, len(data), cfg.step)


@pytest.mark.parametrize("config", CONFIGS, ids=[f"config{i}" for i in range(len(CONFIGS))])
def test_purging_embargo_and_blocks(small_data, config):
    data = small_data
    cfg = config.resolve(data)
    plan = folds(data, config)
    n, gap = len(data), H_MAX + cfg.embargo
    grid = grid_of(data, cfg)
    assert len(plan) >= 2
    for fold in plan:
        next_block = fold.calib_start if fold.calib_rows.size else fold.test_start
        assert fold.train_rows.max() + gap <= next_block
        assert fold.train_rows.max() + gap <= (fold.calib_rows.min() if fold.calib_rows.size else fold.test_rows.min())
        if fold.calib_rows.size:
            assert fold.calib_rows.max() + gap <= fold.test_start <= fold.test_rows.min()
        assert fold.train_rows.min() >= cfg.start
        assert fold.test_rows.max() + H_MAX < n  # every test target is known
        # brute force: exactly the grid origins of each block that the rule keeps (no over- or under-purging)
        train_ref = [t for t in grid if fold.train_start <= t and t + gap <= next_block]
        calib_ref = (
            [t for t in grid if fold.calib_start <= t and t + gap <= fold.test_start] if fold.calib_rows.size else []
        )
        test_ref = [t for t in grid if fold.test_start <= t < fold.test_end]
        assert fold.train_rows.tolist() == train_ref
        assert fold.calib_rows.tolist() == calib_ref
        assert fold.test_rows.tolist() == test_ref
        assert (cfg.calibration_fraction > 0) == bool(fold.calib_rows.size)
    if cfg.window == "rolling":
        assert {f.test_start - f.train_start for f in plan} == {cfg.train_bars}
        assert len({f.train_rows.size for f in plan}) == 1
        assert len({f.calib_rows.size for f in plan}) == 1
    else:
        assert {f.train_start for f in plan} == {cfg.start}
    # test blocks: contiguous, non-overlapping, covering [first test start, n − h_max) on the grid
    for before, after in pairwise(plan):
        assert before.test_end == after.test_start
        assert after.test_rows.min() - before.test_rows.max() == cfg.step
    tested = np.concatenate([f.test_rows for f in plan])
    assert np.array_equal(tested, grid[(grid >= plan[0].test_start) & (grid < n - H_MAX)])
    assert plan[-1].test_end == n - H_MAX
    if cfg.max_folds is None:
        assert plan[0].test_start == cfg.start + cfg.train_bars
    else:
        assert len(plan) == cfg.max_folds


def test_resolved_defaults(small_data):
    cfg = WalkForwardConfig().resolve(small_data)
    start = max(small_data.info["warmup"].values())
    assert (cfg.start, cfg.step, cfg.embargo) == (start, 15, H_MAX)
    assert cfg.train_bars == int(0.6 * (len(small_data) - start)) // 15 * 15
    assert len(folds(small_data, cfg)) == 5
    assert cfg.resolve(small_data) == cfg  # idempotent
    # explicit values are rounded up to whole steps; start can be overridden
    cfg = WalkForwardConfig(train_bars=4001, refit_every=1001, step=10, start=3000).resolve(small_data)
    assert (cfg.train_bars, cfg.refit_every, cfg.start) == (4010, 1010, 3000)


def test_embargo_shorter_than_horizon_is_a_config_error(small_data):
    with pytest.raises(ConfigError, match=r"evaluation\.embargo.*longest horizon \(240"):
        folds(small_data, WalkForwardConfig(embargo=239))
    spec = {"horizons": [60, 240], "evaluation": {"embargo": 100}}
    with pytest.raises(ConfigError, match=r"exp\.yaml: evaluation\.embargo"):
        walkforward_config_from_spec(spec, where="exp.yaml")


def test_spec_keys_and_values():
    spec = {"horizons": [60, 240], "evaluation": {"window": "rolling", "train_bars": 5000, "calibration": "adaptive"}}
    cfg = walkforward_config_from_spec(spec, where="exp.yaml")
    assert (cfg.window, cfg.train_bars, cfg.calibration, cfg.alpha) == ("rolling", 5000, "adaptive", 0.1)
    assert walkforward_config_from_spec({"evaluation": None}, where="x") == WalkForwardConfig()
    with pytest.raises(ConfigError, match=r"evaluation\.refit: unknown key; allowed keys: window, train_bars"):
        walkforward_config_from_spec({"evaluation": {"refit": 10}}, where="exp.yaml")
    bad = [
        ({"window": "sliding"}, "window"),
        ({"step": 0}, "step"),
        ({"train_bars": 1.5}, "train_bars"),
        ({"calibration_fraction": 1.0}, "calibration_fraction"),
        ({"alpha": 0}, "alpha"),
        ({"max_folds": True}, "max_folds"),
        ({"calibration": "cqr"}, "calibration"),
    ]
    for values, key in bad:
        with pytest.raises(ConfigError, match=rf"exp\.yaml: evaluation\.{key}: must be"):
            walkforward_config_from_spec({"evaluation": values}, where="exp.yaml")


def head(data: ModelData, n: int) -> ModelData:
    """The first n bars of ``data`` (targets as they were: only the fold layout is tested on it)."""
    return dataclasses.replace(data, features=data.features.iloc[:n], log_return=data.log_return[:n])


@pytest.mark.parametrize("config", [WalkForwardConfig(), WalkForwardConfig(train_bars=3000, calibration_fraction=0)])
def test_too_short_data_names_the_bars_needed(small_data, config):
    with pytest.raises(
        ModelError, match=r"too short for one walk-forward fold: 4000 bars; it needs at least (\d+)"
    ) as e:
        folds(head(small_data, 4000), config)
    needed = int(e.value.args[0].split("needs at least ")[1].split(" ")[0])
    assert len(folds(head(small_data, needed), config)) >= 1  # exactly enough
    with pytest.raises(ModelError, match=f"needs at least {needed} "):
        folds(head(small_data, needed - 1), config)
    with pytest.raises(ModelError, match=r"longest feature warm-up \(2879 bars, .*none of the data's 2000 bars"):
        folds(head(small_data, 2000), config)
    with pytest.raises(ConfigError, match=r"evaluation\.start: row 2000 is past the data's 2000 bars"):
        folds(head(small_data, 2000), dataclasses.replace(config, start=2000))
    with pytest.raises(ConfigError, match=r"evaluation\.train_bars.*train_bars ≥ 480"):
        folds(small_data, WalkForwardConfig(train_bars=400, calibration_fraction=0))


FAST = WalkForwardConfig(refit_every=2880, calibration_fraction=0.2)


def test_fit_sees_only_rows_whose_targets_end_before_the_test_block(small_data):
    log: list = []
    result = walk_forward(small_data, {"spy": Spy(log=log), "oracle": Oracle()}, FAST, calibrate=False)
    plan = result.folds
    fits = [rows for kind, rows in log if kind == "fit"]
    predicts = [rows for kind, rows in log if kind == "predict"]
    assert len(fits) == len(plan) and len(predicts) == 2 * len(plan)
    for fold, rows, (calib, test) in zip(plan, fits, zip(predicts[::2], predicts[1::2], strict=True), strict=True):
        assert np.array_equal(rows, fold.train_rows)
        assert rows.max() + H_MAX < fold.calib_start <= fold.test_start  # whole target windows before the blocks
        assert rows.max() + H_MAX + result.config.embargo <= fold.calib_start
        assert np.array_equal(calib, fold.calib_rows) and np.array_equal(test, fold.test_rows)
        assert np.intersect1d(rows, test).size == 0


def test_predictions_frame(small_data):
    models = {"oracle": Oracle(), "mean": MeanRv()}
    result = walk_forward(small_data, models, FAST, calibrate=False)
    pred, plan = result.predictions, result.folds
    assert tuple(pred.columns) == PREDICTION_COLUMNS
    assert pred[list(FORECAST_COLUMNS)].notna().all().all() and pred["realized"].notna().all()
    assert pred.equals(pred.sort_values(["model", "horizon", "timestamp"], ignore_index=True))
    tested = np.concatenate([f.test_rows for f in plan])
    fold_of = np.concatenate([np.full(f.test_rows.size, f.number) for f in plan])
    for (name, h), group in pred.groupby(["model", "horizon"]):
        assert pd.DatetimeIndex(group["timestamp"]).equals(small_data.index[tested]), (name, h)
        np.testing.assert_array_equal(group["realized"].to_numpy(), small_data.target(h)[tested])
        np.testing.assert_array_equal(group["fold"].to_numpy(), fold_of)
    assert set(pred["model"]) == {"oracle", "mean"} and set(pred["horizon"]) == {60, 240}
    # realized_class: the classes by thresholds refitted on each fold's training rows (50th, 90th percentiles)
    for fold in plan:
        for h in (60, 240):
            low, high = np.quantile(small_data.target(h)[fold.train_rows], [0.5, 0.9])
            rows = pred[(pred["fold"] == fold.number) & (pred["horizon"] == h)]
            rv = rows["realized"].to_numpy()
            np.testing.assert_array_equal(rows["realized_class"].to_numpy(), (rv > low).astype(float) + (rv > high))
    last = pred[(pred["fold"] == plan[-1].number) & (pred["horizon"] == 60) & (pred["model"] == "mean")]
    expected = result.fitted["mean"].thresholds_[60].classify(last["realized"])
    np.testing.assert_array_equal(last["realized_class"].to_numpy(), expected)
    # the last fold's models are kept, fitted on its training rows; the mean model forecasts that mean
    assert set(result.fitted) == {"oracle", "mean"}
    assert result.fitted["mean"].mean_[60] == pytest.approx(np.mean(small_data.target(60)[plan[-1].train_rows]))
    # timings: one row per (fold, model)
    timings = result.timings
    assert tuple(timings.columns) == TIMING_COLUMNS and len(timings) == 2 * len(plan)
    assert (timings[["fit_seconds", "predict_seconds"]] >= 0).all().all()
    assert timings.groupby("fold")["n_train"].first().tolist() == [f.train_rows.size for f in plan]


def test_a_failing_model_is_named_or_skipped(small_data):
    with pytest.raises(ModelError, match=r"model 'bad' failed on fold 1 .*RuntimeError: the solver diverged"):
        walk_forward(small_data, {"mean": MeanRv(), "bad": Failing(calls=[])}, FAST, calibrate=False)
    result = walk_forward(
        small_data, {"mean": MeanRv(), "bad": Failing(calls=[])}, FAST, calibrate=False, on_error="skip"
    )
    assert list(result.failures) == ["bad"] and "fold 1" in result.failures["bad"]
    assert set(result.predictions["model"]) == {"mean"} and set(result.fitted) == {"mean"}
    assert set(result.timings["model"]) == {"mean"}
    assert result.predictions["fold"].nunique() == len(result.folds)
    with pytest.raises(ModelError, match="every model failed"):
        walk_forward(small_data, {"bad": Failing(calls=[])}, FAST, calibrate=False, on_error="skip")


def sample_predictions(small_data) -> pd.DataFrame:
    result = walk_forward(small_data, {"oracle": Oracle(), "mean": MeanRv()}, FAST, calibrate=False)
    pred = result.predictions.copy()
    pred.loc[pred.index[::7], "realized"] = np.nan  # not yet known
    return pred


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz"])
def test_write_predictions_round_trip(small_data, tmp_path, suffix):
    pred = sample_predictions(small_data)
    path = write_predictions(pred, tmp_path / "out" / f"predictions{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert tuple(back.columns) == PREDICTIONS_FILE_COLUMNS
    back["timestamp"] = pd.to_datetime(back["timestamp"], utc=True)
    expected = pred[list(PREDICTIONS_FILE_COLUMNS)]
    pd.testing.assert_frame_equal(back, expected, check_dtype=False, check_exact=suffix == ".parquet", rtol=1e-15)
    assert back["realized"].isna().sum() == pred["realized"].isna().sum() > 0
    if suffix == ".csv":  # unknown realized is an empty cell
        first = path.read_text().splitlines()[1]
        assert first.endswith(",")


def test_write_predictions_without_realized_and_bad_suffix(small_data, tmp_path):
    pred = sample_predictions(small_data)[list(FORECAST_COLUMNS)]
    back = pd.read_parquet(write_predictions(pred, tmp_path / "live.parquet"))
    assert back["realized"].isna().all() and len(back) == len(pred)
    with pytest.raises(UsageError, match=r"unknown file type '\.json'.*\.parquet, \.csv or \.csv\.gz"):
        write_predictions(pred, tmp_path / "p.json")


def coverage90(frame: pd.DataFrame) -> float:
    y = frame["realized"].to_numpy()
    return float(np.mean((y >= frame["q05"].to_numpy()) & (y <= frame["q95"].to_numpy())))


@pytest.mark.parametrize("method", ["split", "adaptive"])
def test_calibration_moves_coverage_toward_nominal(small_data, method):
    models = {"overconfident": OverConfident(), "mean": MeanRv()}
    config = dataclasses.replace(FAST, calibration=method)
    raw = walk_forward(small_data, models, config, calibrate=False).predictions
    calibrated = walk_forward(small_data, models, config).predictions
    cols = ["timestamp", "horizon", "model", "var", "q50", *FORECAST_COLUMNS[-3:], "realized", "realized_class"]
    pd.testing.assert_frame_equal(raw[cols], calibrated[cols])  # only the quantile bounds move
    for h in (60, 240):
        before = coverage90(raw[(raw["model"] == "overconfident") & (raw["horizon"] == h)])
        after = coverage90(calibrated[(calibrated["model"] == "overconfident") & (calibrated["horizon"] == h)])
        print(f"{method} h={h}: 90% coverage of the over-confident model {before:.3f} raw, {after:.3f} calibrated")
        assert before < 0.5  # the test model is over-confident indeed
        assert abs(after - 0.9) < 0.1 and abs(after - 0.9) < abs(before - 0.9) - 0.3


def test_calibrators_of_the_last_fold(small_data):
    result = walk_forward(small_data, {"overconfident": OverConfident()}, FAST)
    calibrator = result.calibrators["overconfident"]
    assert (calibrator.alpha, calibrator.method) == (0.1, "split")
    outer = calibrator.corrections()["outer"].to_numpy()
    assert (outer > 0).all()  # the intervals were widened
    assert walk_forward(small_data, {"overconfident": OverConfident()}, FAST, calibrate=False).calibrators == {}


def test_evaluate_wires_the_metrics(small_data):
    result = walk_forward(small_data, {"oracle": Oracle(), "mean": MeanRv()}, FAST, calibrate=False)
    report = result.evaluate(benchmark="mean")
    assert report["horizons"] == [60, 240] and set(report["models"]) == {"oracle", "mean"}
    oracle_60 = result.predictions[(result.predictions["model"] == "oracle") & (result.predictions["horizon"] == 60)]
    assert report["models"]["oracle"]["h60"]["coverage90"] == pytest.approx(coverage90(oracle_60))
    assert report["models"]["oracle"]["h60"]["n"] == len(oracle_60)
    assert report["oracle_gap"]["mean"]["h60"] == pytest.approx(1.0)  # the benchmark's own gap: the oracle was found
    assert set(report["regime"]) == {"oracle", "mean"}
    assert "oracle_gap" not in result.evaluate(benchmark="mean", oracle=None)
