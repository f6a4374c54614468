"""Conformal calibration on synthetic log-normal rv with known quantiles: coverage out of sample, the finite-sample
guarantee, adaptation to a shift, strict causality of the adaptive method, persistence and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.calibration import (
    CalibrationError,
    ConformalCalibrator,
    adaptive_corrections,
    conformal_rank,
    known_counts,
    split_correction,
)

Q_COLUMNS = ["q05", "q25", "q50", "q75", "q95"]
Z = stats.norm.ppf([0.05, 0.25, 0.5, 0.75, 0.95])  # (5,)
START = pd.Timestamp("2024-01-01", tz="UTC")


def lognormal_frame(
    rng: np.random.Generator,
    n: int,
    *,
    true_sigma: float | np.ndarray,
    model_sigma: float,
    model: str = "m",
    horizon: int = 60,
    start: pd.Timestamp = START,
    every: str = "1min",
) -> pd.DataFrame:
    """rv = exp(μ + σ_true ε), μ varying per origin; the model knows μ and quotes quantiles with σ_model."""
    mu = np.log(1e-5) + rng.normal(0.0, 0.5, n)
    realized = np.exp(mu + true_sigma * rng.standard_normal(n))
    q = np.exp(mu[:, None] + model_sigma * Z[None, :])  # (n, 5)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=every),
            "horizon": horizon,
            "model": model,
            "var": np.exp(mu + model_sigma**2 / 2),
        }
    )
    frame[Q_COLUMNS] = q
    frame[["p_calm", "p_normal", "p_stressed"]] = 1.0 / 3.0
    frame["realized"] = realized
    return frame


def cover(frame: pd.DataFrame, lo: str, hi: str) -> float:
    return float(np.mean((frame[lo] <= frame["realized"]) & (frame["realized"] <= frame[hi])))


# ---------------------------------------------------------------- split conformal


def test_split_conformal_fixes_too_narrow_quantiles_out_of_sample() -> None:
    rng = np.random.default_rng(10)
    calib = lognormal_frame(rng, 20_000, true_sigma=0.6, model_sigma=0.3)
    test = lognormal_frame(rng, 20_000, true_sigma=0.6, model_sigma=0.3)
    assert cover(test, "q05", "q95") < 0.65  # half the true spread: far too narrow
    out = ConformalCalibrator(alpha=0.1).fit(calib).apply(test)
    assert abs(cover(out, "q05", "q95") - 0.90) < 0.02
    assert abs(cover(out, "q25", "q75") - 0.50) < 0.02
    pd.testing.assert_frame_equal(
        out.drop(columns=Q_COLUMNS[:2] + Q_COLUMNS[3:]), test.drop(columns=Q_COLUMNS[:2] + Q_COLUMNS[3:])
    )
    assert (np.diff(out[Q_COLUMNS].to_numpy(), axis=1) >= 0).all()


def test_an_already_calibrated_model_is_left_nearly_unchanged() -> None:
    rng = np.random.default_rng(11)
    calib = lognormal_frame(rng, 20_000, true_sigma=0.6, model_sigma=0.6)
    test = lognormal_frame(rng, 2_000, true_sigma=0.6, model_sigma=0.6)
    calibrator = ConformalCalibrator().fit(calib)
    corrections = calibrator.corrections().iloc[0]
    assert abs(corrections["outer"]) < 0.03 and abs(corrections["inner"]) < 0.03  # log scale: < 3% on the bounds
    out = calibrator.apply(test)
    np.testing.assert_allclose(out[Q_COLUMNS].to_numpy(), test[Q_COLUMNS].to_numpy(), rtol=0.031)


def test_conformal_rank_is_the_ceiling_of_level_times_n_plus_one() -> None:
    scores = np.arange(1.0, 100.0)  # 1 .. 99
    assert conformal_rank(99, 0.1) == 90  # 0.9 · 100 computed in floats is 90.00000000000001
    assert split_correction(scores, 0.1) == 90.0
    assert split_correction(scores[:9], 0.1) == 9.0  # n = 9: the largest score
    assert split_correction(np.arange(1.0, 11.0), 0.5) == 6.0  # ⌈0.5 · 11⌉ = 6
    with pytest.raises(CalibrationError, match="at least 9"):
        split_correction(scores[:8], 0.1)


def test_finite_sample_coverage_guarantee_over_500_repetitions() -> None:
    """500 seeded calibration sets of n = 100 (one model each), 200 test origins each: E[coverage] ≥ 1 − α."""
    rng = np.random.default_rng(12)
    reps, n, m = 500, 100, 200
    calib = lognormal_frame(rng, reps * n, true_sigma=0.6, model_sigma=0.4)
    calib["model"] = np.repeat([f"r{i}" for i in range(reps)], n)  # repetition i = model "ri"
    test = lognormal_frame(rng, reps * m, true_sigma=0.6, model_sigma=0.4)
    test["model"] = np.repeat([f"r{i}" for i in range(reps)], m)
    out = ConformalCalibrator(alpha=0.1).fit(calib).apply(test)
    inside = (out["q05"] <= out["realized"]) & (out["realized"] <= out["q95"])
    per_rep = inside.groupby(out["model"]).mean()  # (500,)
    assert per_rep.size == reps
    assert per_rep.mean() >= 0.9 - 0.01
    assert per_rep.mean() <= 0.9 + 1 / (n + 1) + 0.005  # and not trivially wide: below 1 − α + 1/(n+1)


def test_each_model_and_horizon_is_calibrated_on_its_own() -> None:
    rng = np.random.default_rng(13)
    parts = [
        lognormal_frame(rng, 4_000, true_sigma=0.6, model_sigma=s, model=name, horizon=h)
        for name, s in (("narrow", 0.3), ("good", 0.6))
        for h in (60, 240)
    ]
    calibrator = ConformalCalibrator().fit(pd.concat(parts, ignore_index=True))
    table = calibrator.corrections().set_index(["model", "horizon"])
    assert len(table) == 4 and (table["n"] == 4_000).all()
    assert (table.loc["narrow", "outer"] > 0.4).all() and (table.loc["good", "outer"].abs() < 0.05).all()
    test = pd.concat([p.iloc[::-1] for p in parts], ignore_index=True)  # any row order
    out = calibrator.apply(test)
    assert (out.index == test.index).all() and (out["model"] == test["model"]).all()
    for name in ("narrow", "good"):
        assert abs(cover(out[out["model"] == name], "q05", "q95") - 0.9) < 0.02


# ---------------------------------------------------------------- adaptive conformal


def shifted_test(rng: np.random.Generator, n: int, horizon: int) -> pd.DataFrame:
    """A test period whose true spread doubles halfway (the model keeps quoting half the original spread)."""
    first = lognormal_frame(rng, n // 2, true_sigma=0.5, model_sigma=0.25, horizon=horizon)
    second = lognormal_frame(
        rng, n // 2, true_sigma=1.0, model_sigma=0.25, horizon=horizon, start=START + pd.Timedelta(minutes=n // 2)
    )
    return pd.concat([first, second], ignore_index=True)


def test_adaptive_tracks_a_spread_that_doubles_halfway() -> None:
    rng = np.random.default_rng(14)
    h = 4
    calib = lognormal_frame(rng, 5_000, true_sigma=0.5, model_sigma=0.25, horizon=h)
    test = shifted_test(rng, 10_000, h)
    second = slice(5_000, None)
    split = ConformalCalibrator(method="split").fit(calib).apply(test).iloc[second]
    aci = ConformalCalibrator(method="adaptive", gamma=0.005).fit(calib).apply(test, freq="1min").iloc[second]
    cov_split, cov_aci = cover(split, "q05", "q95"), cover(aci, "q05", "q95")
    assert cov_split < 0.75  # the fixed correction no longer covers
    assert abs(cov_aci - 0.9) < abs(cov_split - 0.9)
    assert abs(cov_aci - 0.9) < 0.03
    assert abs(cover(aci, "q25", "q75") - 0.5) < abs(cover(split, "q25", "q75") - 0.5)


def test_adaptive_starts_from_the_split_correction() -> None:
    rng = np.random.default_rng(15)
    calib = lognormal_frame(rng, 1_000, true_sigma=0.6, model_sigma=0.3, horizon=30)
    test = lognormal_frame(rng, 200, true_sigma=0.6, model_sigma=0.3, horizon=30)
    split = ConformalCalibrator(method="split").fit(calib).apply(test)
    aci = ConformalCalibrator(method="adaptive").fit(calib).apply(test, freq="1min")
    first = slice(0, 30)  # h = 30 one-minute bars: the first outcome (origin 0's) arrives at origin 30
    np.testing.assert_allclose(aci[Q_COLUMNS].iloc[first], split[Q_COLUMNS].iloc[first], rtol=1e-12)
    assert not np.allclose(aci[Q_COLUMNS].iloc[40:], split[Q_COLUMNS].iloc[40:], rtol=1e-12)


def test_adaptive_is_strictly_causal() -> None:
    """Changing outcomes not yet known at t0 leaves every interval at origins ≤ t0 unchanged."""
    rng = np.random.default_rng(16)
    h, n = 12, 800
    calib = lognormal_frame(rng, 500, true_sigma=0.6, model_sigma=0.3, horizon=h, every="5min")
    test = lognormal_frame(rng, n, true_sigma=0.6, model_sigma=0.3, horizon=h, every="5min")
    calibrator = ConformalCalibrator(method="adaptive", gamma=0.02).fit(calib)
    base = calibrator.apply(test, freq="5min")[Q_COLUMNS].to_numpy()
    i0 = 500  # t0 = origin 500; with 5-minute bars and h = 12, origin s is known at t0 when s ≤ 488
    t0 = test["timestamp"].iloc[i0]
    unknown_at_t0 = (test["timestamp"] + h * pd.Timedelta("5min") > t0).to_numpy()
    changed = test.copy()
    changed.loc[unknown_at_t0, "realized"] *= np.exp(rng.normal(0.0, 2.0, int(unknown_at_t0.sum())))
    after = calibrator.apply(changed, freq="5min")[Q_COLUMNS].to_numpy()
    np.testing.assert_array_equal(after[: i0 + 1], base[: i0 + 1])
    assert not np.array_equal(after[i0 + 1 :], base[i0 + 1 :])  # later intervals do see them

    known = test.copy()  # control: an outcome known at t0 does change the interval at t0
    j = int(np.flatnonzero(~unknown_at_t0)[-1])
    known.loc[j, "realized"] = known.loc[j, "q95"] * 50.0
    moved = calibrator.apply(known, freq="5min")[Q_COLUMNS].to_numpy()
    assert not np.array_equal(moved[: i0 + 1], base[: i0 + 1])


def test_known_counts_and_the_aci_update_rule() -> None:
    ts = pd.date_range(START, periods=6, freq="1min")
    np.testing.assert_array_equal(known_counts(ts, 2, pd.Timedelta("1min")), [0, 0, 1, 2, 3, 4])
    # calibration scores 1..9 at α = 0.5: rank ⌈0.5 · 10⌉ = 5 -> correction 5; a miss (score 20 > 5) lowers α_t
    cal = np.arange(1.0, 10.0)
    c, a = adaptive_corrections(cal, np.array([20.0, 0.0, 0.0]), np.array([0, 1, 2]), 0.5, 0.1)
    assert c[0] == 5.0 and a[0] == 0.5
    assert a[1] == pytest.approx(0.5 + 0.1 * (0.5 - 1.0))  # origin 0 missed
    assert c[1] == 7.0  # pool 1..9, 20: the ⌈0.55 · 11⌉ = 7th smallest
    assert a[2] == pytest.approx(0.5) and c[2] == 5.0  # origin 1 covered (0 ≤ 7); pool 0..9, 20: ⌈0.5 · 12⌉ = 6th


def test_an_advanced_calibrator_continues_where_the_history_left_off() -> None:
    """advance(history) then apply at the last origin T gives what apply(history) gave at T (bit for bit); split has
    no state; the advanced state survives to_dict/from_dict and then moves on with new outcomes."""
    rng = np.random.default_rng(18)
    h = 20
    calib = lognormal_frame(rng, 600, true_sigma=0.5, model_sigma=0.25, horizon=h)
    history = shifted_test(rng, 2_000, h)  # the spread doubles halfway: α_t must move away from α
    fitted = ConformalCalibrator(method="adaptive", gamma=0.01).fit(calib)
    walked = fitted.apply(history, freq="1min")
    advanced = fitted.advance(history, freq="1min")
    group = advanced.groups_["m", h]
    assert group.alpha_outer < 0.1 - 0.02  # many misses after the shift: a lower α_t, wider intervals
    assert group.as_of == history["timestamp"].iloc[-1].isoformat()
    assert len(group.scores_outer) == 600 + 2_000 - h  # the calibration scores plus the outcomes known at T
    last = history.iloc[[-1]].assign(realized=np.nan)  # a served request at T: no outcome known
    np.testing.assert_array_equal(
        advanced.apply(last, freq="1min")[Q_COLUMNS].to_numpy(), walked[Q_COLUMNS].iloc[[-1]].to_numpy()
    )
    fresh = fitted.apply(last, freq="1min")[Q_COLUMNS].to_numpy()  # not advanced: the split interval, narrower
    assert (fresh[0, 4] - fresh[0, 0]) < (walked["q95"].iloc[-1] - walked["q05"].iloc[-1])
    loaded = ConformalCalibrator.from_dict(json.loads(json.dumps(advanced.to_dict(), allow_nan=False)))
    assert loaded.groups_ == advanced.groups_
    later = shifted_test(rng, 300, h).assign(timestamp=lambda f: f["timestamp"] + pd.Timedelta(days=30))
    pd.testing.assert_frame_equal(loaded.apply(later, freq="1min"), advanced.apply(later, freq="1min"))
    split = ConformalCalibrator(method="split").fit(calib)
    assert split.advance(history, freq="1min") is split


# ---------------------------------------------------------------- persistence and errors


@pytest.mark.parametrize("method", ["split", "adaptive"])
def test_to_dict_from_dict_round_trip(method: str) -> None:
    rng = np.random.default_rng(17)
    calib = pd.concat(
        [lognormal_frame(rng, 300, true_sigma=0.6, model_sigma=0.3, model=m, horizon=h) for m in "ab" for h in (5, 20)],
        ignore_index=True,
    )
    test = lognormal_frame(rng, 300, true_sigma=0.6, model_sigma=0.3, model="b", horizon=20)
    calibrator = ConformalCalibrator(alpha=0.2, method=method, gamma=0.01).fit(calib)
    saved = json.loads(json.dumps(calibrator.to_dict(), allow_nan=False))
    loaded = ConformalCalibrator.from_dict(saved)
    assert loaded.get_params() == calibrator.get_params()
    assert loaded.groups_ == calibrator.groups_
    pd.testing.assert_frame_equal(loaded.apply(test, freq="1min"), calibrator.apply(test, freq="1min"))


def test_clear_errors() -> None:
    rng = np.random.default_rng(18)
    calib = lognormal_frame(rng, 50, true_sigma=0.6, model_sigma=0.3)
    with pytest.raises(CalibrationError, match=r"method must be one of \['split', 'adaptive'\]; got 'online'"):
        ConformalCalibrator(method="online").fit(calib)
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(CalibrationError, match=r"alpha must be a miscoverage level strictly in \(0, 1\)"):
            ConformalCalibrator(alpha=alpha).fit(calib)
    with pytest.raises(CalibrationError, match=r"model 'm' h=60: 50 calibration row.*at least 99"):
        ConformalCalibrator(alpha=0.01).fit(calib)
    with pytest.raises(CalibrationError, match="not fitted"):
        ConformalCalibrator().apply(calib)
    fitted = ConformalCalibrator().fit(calib)
    other = lognormal_frame(rng, 10, true_sigma=0.6, model_sigma=0.3, model="lgbm", horizon=240)
    with pytest.raises(CalibrationError, match=r"model 'lgbm' h=240 were never calibrated.*\('m', 60\)"):
        fitted.apply(other)
    with pytest.raises(CalibrationError, match="needs freq"):
        ConformalCalibrator(method="adaptive").fit(calib).apply(calib)
    split_saved_as_adaptive = fitted.to_dict() | {"params": fitted.get_params() | {"method": "adaptive"}}
    with pytest.raises(CalibrationError, match="fitted with method='split'"):
        ConformalCalibrator.from_dict(split_saved_as_adaptive).apply(calib, freq="1min")
    with pytest.raises(CalibrationError, match="no finite realized"):
        ConformalCalibrator().fit(calib.assign(realized=np.where(calib.index == 3, np.nan, calib["realized"])))
    with pytest.raises(CalibrationError, match="non-finite quantile"):
        fitted.apply(calib.assign(q95=np.inf))
    with pytest.raises(CalibrationError, match="format"):
        ConformalCalibrator.from_dict({"params": {}})
