"""Metrics against plain loops, scikit-learn and numpy references, closed forms, and simulated null distributions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from sklearn.linear_model import LinearRegression
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from training.metrics import (
    DMResult,
    MetricError,
    MetricWarning,
    UndefinedMetric,
    auc,
    brier,
    coverage,
    diebold_mariano,
    dm_lag,
    evaluate_predictions,
    horizon_metrics,
    interval_width,
    log_loss,
    metrics_table,
    mlflow_metric_names,
    mse,
    mz_r2,
    oracle_gap,
    overlap_lag,
    pinball,
    pinball_all,
    qlike,
    qlike_losses,
    regime_metrics,
)

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
Q_COLUMNS = ["q05", "q25", "q50", "q75", "q95"]


# ---------------------------------------------------------------- slow references


def qlike_loop(rv: list[float], f: list[float]) -> list[float]:
    out = []
    for y, g in zip(rv, f, strict=True):
        ratio = max(y, 1e-12) / max(g, 1e-12)
        out.append(ratio - math.log(ratio) - 1.0)
    return out


def pinball_loop(y: list[float], q: list[float], tau: float) -> float:
    total = 0.0
    for yi, qi in zip(y, q, strict=True):
        total += tau * (yi - qi) if yi >= qi else (1.0 - tau) * (qi - yi)
    return total / len(y)


def dm_by_hand(d: list[float], lag: int) -> tuple[float, float]:
    """DM with Newey-West/Bartlett variance, HLN factor (H = lag + 1) and a t(n−1) p-value, written out."""
    n = len(d)
    mean = sum(d) / n
    gamma = []
    for k in range(lag + 1):
        gamma.append(sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, n)) / n)
    omega = gamma[0] + 2.0 * sum((1.0 - k / (lag + 1)) * gamma[k] for k in range(1, lag + 1))
    h = lag + 1
    stat = mean / math.sqrt(omega / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return stat, 2.0 * stats.t.sf(abs(stat), n - 1)


# ---------------------------------------------------------------- variance forecasts


def test_qlike_matches_a_loop_and_floors_zero() -> None:
    rng = np.random.default_rng(0)
    rv = rng.gamma(2.0, 1e-5, 200)
    rv[:3] = 0.0  # flat windows: floored, finite loss
    f = rv * np.exp(rng.normal(0.0, 0.4, 200)) + 1e-7
    want = qlike_loop(rv.tolist(), f.tolist())
    np.testing.assert_allclose(qlike_losses(rv, f), want, rtol=1e-12)
    assert qlike(rv, f) == pytest.approx(sum(want) / len(want), rel=1e-12)
    assert qlike_losses([1e-5], [1e-5])[0] == 0.0


def test_qlike_is_minimized_by_the_mean_not_the_median() -> None:
    rng = np.random.default_rng(1)
    rv = rng.lognormal(np.log(1e-5), 1.0, 5_000)  # skewed: mean well above the median
    res = optimize.minimize_scalar(
        lambda lf: qlike(rv, np.full(rv.size, np.exp(lf))), bounds=(-16, -8), method="bounded"
    )
    assert np.exp(res.x) == pytest.approx(rv.mean(), rel=1e-3)
    assert qlike(rv, np.full(rv.size, rv.mean())) < qlike(rv, np.full(rv.size, np.median(rv)))


def test_mse_and_mincer_zarnowitz_r2_match_numpy_and_sklearn() -> None:
    rng = np.random.default_rng(2)
    f = rng.gamma(2.0, 1e-5, 300)
    rv = 0.3e-5 + 0.8 * f + rng.normal(0.0, 1e-5, 300)
    assert mse(rv, f) == pytest.approx(sum((a - b) ** 2 for a, b in zip(rv, f, strict=True)) / 300, rel=1e-12)
    b, a = np.polyfit(f, rv, 1)
    fitted = a + b * f
    r2_polyfit = 1.0 - np.sum((rv - fitted) ** 2) / np.sum((rv - rv.mean()) ** 2)
    r2_sklearn = LinearRegression().fit(f[:, None], rv).score(f[:, None], rv)
    assert mz_r2(rv, f) == pytest.approx(r2_polyfit, rel=1e-9)
    assert mz_r2(rv, f) == pytest.approx(r2_sklearn, rel=1e-9)
    assert mz_r2(rv, np.full(300, 1e-5)) == 0.0  # a constant forecast explains nothing
    with pytest.raises(UndefinedMetric, match="constant"):
        mz_r2(np.full(5, 1e-5), f[:5])


# ---------------------------------------------------------------- quantiles and intervals


def test_pinball_coverage_and_width_match_loops() -> None:
    rng = np.random.default_rng(3)
    y = rng.gamma(2.0, 1.0, 400)
    base = rng.gamma(2.0, 1.0, 400)
    Q = np.column_stack([base * m for m in (0.3, 0.6, 1.0, 1.5, 2.5)])
    for j, tau in enumerate(LEVELS):
        assert pinball(y, Q[:, j], tau) == pytest.approx(pinball_loop(y.tolist(), Q[:, j].tolist(), tau), rel=1e-12)
    want = np.mean([pinball_loop(y.tolist(), Q[:, j].tolist(), tau) for j, tau in enumerate(LEVELS)])
    assert pinball_all(y, Q, LEVELS) == pytest.approx(want, rel=1e-12)
    inside = sum(1 for yi, lo, hi in zip(y, Q[:, 0], Q[:, 4], strict=True) if lo <= yi <= hi)
    assert coverage(y, Q[:, 0], Q[:, 4]) == inside / 400
    assert coverage([1.0, 2.0], [1.0, 2.5], [1.0, 3.0]) == 0.5  # bounds count as inside
    assert interval_width(Q[:, 0], Q[:, 4]) == pytest.approx(float(np.mean(Q[:, 4] - Q[:, 0])), rel=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: qlike([1.0, 2.0], [1.0]), "shape"),
        (lambda: qlike([], []), "empty"),
        (lambda: qlike([1.0, 2.0], [1.0, np.nan]), "non-finite"),
        (lambda: qlike([1.0, np.nan], [1.0, 1.0]), "not known yet"),
        (lambda: mse([[1.0, 2.0]], [[1.0, 2.0]]), "1-d"),
        (lambda: pinball([1.0], [1.0], 1.0), "strictly between 0 and 1"),
        (lambda: pinball_all([1.0, 2.0], np.ones((2, 4)), LEVELS), r"expected \(2, 5\)"),
        (lambda: coverage([1.0], [2.0], [1.0]), "lo > hi"),
        (lambda: log_loss([0, 3], np.full((2, 3), 1 / 3)), "0..2"),
        (lambda: brier([0, 1], [[0.5, 0.6, 0.1], [0.2, 0.3, 0.5]]), "not probabilities"),
        (lambda: auc([0, 2], [0.1, 0.2]), "0/1"),
        (lambda: diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], -1), "lag"),
    ],
)
def test_bad_inputs_raise_errors_naming_the_problem(call, match) -> None:
    with pytest.raises(MetricError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- Diebold-Mariano


def test_dm_matches_the_hac_formula_written_out() -> None:
    a = [0.31, 0.52, 0.18, 0.77, 0.40, 0.29, 0.65, 0.12, 0.58, 0.44, 0.36, 0.71]
    b = [0.28, 0.35, 0.30, 0.41, 0.39, 0.22, 0.50, 0.20, 0.33, 0.41, 0.30, 0.45]
    d = [x - y for x, y in zip(a, b, strict=True)]
    for lag in (0, 1, 3):
        stat, p = dm_by_hand(d, lag)
        res = diebold_mariano(a, b, lag)
        assert isinstance(res, DMResult)
        assert res.stat == pytest.approx(stat, rel=1e-12)
        assert res.p == pytest.approx(p, rel=1e-10)
        assert res.n == 12
        assert res.mean_diff == pytest.approx(sum(d) / 12, rel=1e-12)
    assert diebold_mariano(a, b, 1).stat > 0  # a has the larger loss


def test_dm_p_values_are_uniform_under_the_null_and_the_test_has_power() -> None:
    rng = np.random.default_rng(4)
    p = np.array([diebold_mariano(rng.exponential(1.0, 200), rng.exponential(1.0, 200), 0).p for _ in range(2_000)])
    assert 0.035 <= np.mean(p < 0.05) <= 0.065
    assert stats.kstest(p, "uniform").pvalue > 0.01
    worse = [diebold_mariano(rng.exponential(1.5, 200), rng.exponential(1.0, 200), 0) for _ in range(200)]
    assert np.mean([r.p < 0.05 and r.stat > 0 for r in worse]) > 0.9


def test_dm_hac_lag_tames_overlapping_forecasts_where_lag_zero_over_rejects() -> None:
    """Overlapping h-bar forecasts: d is MA(h − 1) with linearly decaying autocorrelation; the null holds."""
    rng = np.random.default_rng(5)
    h, n, reps = 5, 500, 1_000
    reject = {0: 0, overlap_lag(h): 0, dm_lag(h): 0}
    for _ in range(reps):
        d = np.convolve(rng.standard_normal(n + h - 1), np.ones(h), "valid")  # (n,) MA(h − 1)
        for lag in reject:
            reject[lag] += diebold_mariano(d, np.zeros(n), lag).p < 0.05
    size = {lag: k / reps for lag, k in reject.items()}
    assert overlap_lag(h) == 4 and dm_lag(h) == 14
    assert size[0] > 0.30  # iid variance: the test rejects a true null a third of the time
    assert size[4] < 0.14  # HAC at the minimum lag: Bartlett weights keep ~2/3 of the variance, ~10%
    assert abs(size[14] - 0.05) < abs(size[4] - 0.05) and size[14] < 0.09  # the evaluation's lag: near 5%


def test_dm_lag_rule_and_degenerate_cases() -> None:
    assert [overlap_lag(60, 1), overlap_lag(60, 15), overlap_lag(60, 60), overlap_lag(60, 120)] == [59, 3, 0, 0]
    assert [dm_lag(60, 1), dm_lag(60, 15), dm_lag(60, 60), dm_lag(60, 120), dm_lag(5, 2)] == [179, 11, 0, 0, 8]
    assert diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 1) == DMResult(0.0, 1.0, 3, 0.0)
    const = diebold_mariano([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], 1)
    assert const.stat == math.inf and const.p == 0.0 and const.mean_diff == 1.0
    with pytest.raises(UndefinedMetric, match="too few"):
        diebold_mariano(np.arange(5.0), np.zeros(5), 4)
    with pytest.raises(UndefinedMetric, match="at least 2"):
        diebold_mariano([1.0], [0.0], 0)


# ---------------------------------------------------------------- regimes and the oracle gap


def test_log_loss_brier_and_auc_match_sklearn_and_a_loop() -> None:
    rng = np.random.default_rng(6)
    p = rng.dirichlet([2.0, 3.0, 1.0], 300)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1, 2]), rel=1e-12)
    loop = sum(sum((p[i, k] - (1.0 if y[i] == k else 0.0)) ** 2 for k in range(3)) for i in range(300)) / 300
    assert brier(y, p) == pytest.approx(loop, rel=1e-12)
    assert auc(y == 2, p[:, 2]) == pytest.approx(roc_auc_score(y == 2, p[:, 2]), rel=1e-12)
    assert auc(np.zeros(5), np.arange(5.0)) is None  # one class: undefined, reported as null
    assert log_loss([0.0], [[0.0, 1.0]]) == pytest.approx(-math.log(1e-15))  # confident miss: floored, finite


def test_oracle_gap_formula() -> None:
    assert oracle_gap(0.30, 0.20, 0.40) == pytest.approx(0.5)
    assert oracle_gap(0.20, 0.20, 0.40) == 0.0
    assert oracle_gap(0.40, 0.20, 0.40) == 1.0
    with pytest.raises(UndefinedMetric, match="undefined"):
        oracle_gap(0.3, 0.2, 0.2)


# ---------------------------------------------------------------- a predictions frame


def predictions_frame(seed: int = 7, n: int = 40) -> pd.DataFrame:
    """har, lgbm, oracle × horizons 4 and 16, origins every 4 bars (1-minute bars), with realized_class."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-03-01", periods=n, freq="4min", tz="UTC")
    parts = []
    for h in (4, 16):
        truth = rng.gamma(3.0, 1e-5 * h / 4, n)  # the oracle's expectation
        realized = truth * rng.gamma(4.0, 0.25, n)
        classes = np.searchsorted(np.quantile(realized, [0.5, 0.9]), realized, side="left").astype(float)
        for model, noise in (("har", 0.5), ("lgbm", 0.3), ("oracle", 0.0)):
            var = truth * np.exp(rng.normal(0.0, noise, n)) if noise else truth
            q = var[:, None] * np.array([0.3, 0.6, 0.9, 1.3, 2.2])[None, :]
            p = rng.dirichlet([3.0, 2.0, 1.0], n)
            frame = pd.DataFrame({"timestamp": ts, "horizon": h, "model": model, "var": var})
            frame[Q_COLUMNS] = q
            frame[["p_calm", "p_normal", "p_stressed"]] = p
            frame["realized"] = realized
            frame["realized_class"] = classes
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def test_evaluate_predictions_layout_dm_and_oracle_gap() -> None:
    frame = predictions_frame()
    missing = (frame["model"] == "lgbm") & (frame["horizon"] == 4) & (frame.index % 40 >= 37)
    frame.loc[missing, "realized"] = np.nan  # 3 not-yet-known rows
    result = evaluate_predictions(frame, benchmark="har", oracle="oracle", step=4)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result

    assert result["horizons"] == [4, 16]
    assert result["test_start"] == "2024-03-01T00:00:00+00:00"
    assert result["test_end"] == "2024-03-01T02:36:00+00:00"
    assert result["benchmark"] == "har"
    assert set(result) == {
        "horizons", "test_start", "test_end", "benchmark", "models", "dm_vs_har", "regime", "oracle_gap", "warnings"
    }  # fmt: skip
    assert set(result["models"]) == {"har", "lgbm", "oracle"}
    assert set(result["models"]["lgbm"]["h4"]) == {
        "qlike", "mse", "mz_r2", "pinball", "coverage90", "width90", "coverage50", "n"
    }  # fmt: skip
    assert result["models"]["lgbm"]["h4"]["n"] == 37 and result["models"]["har"]["h4"]["n"] == 40
    assert any("dropped 3 row(s)" in w and "lgbm h4: 3" in w for w in result["warnings"])

    known = frame[frame["realized"].notna()]
    g = known[(known["model"] == "lgbm") & (known["horizon"] == 16)]
    assert result["models"]["lgbm"]["h16"] == horizon_metrics(g)
    assert result["regime"]["lgbm"]["h16"] == regime_metrics(g)

    assert set(result["dm_vs_har"]) == {"lgbm", "oracle"}  # every model but the benchmark
    for h, lag in ((4, 0), (16, 11)):  # lag = 3·ceil(h / step) − 1, 0 without overlap
        a = known[(known["model"] == "lgbm") & (known["horizon"] == h)].set_index("timestamp")
        b = known[(known["model"] == "har") & (known["horizon"] == h)].set_index("timestamp").loc[a.index]
        dm = diebold_mariano(qlike_losses(a["realized"], a["var"]), qlike_losses(b["realized"], b["var"]), lag)
        assert result["dm_vs_har"]["lgbm"][f"h{h}"] == {"stat": dm.stat, "p": dm.p}

    assert set(result["oracle_gap"]) == {"har", "lgbm"}
    assert result["oracle_gap"]["har"]["h16"] == pytest.approx(1.0)
    lgbm4 = known[(known["model"] == "lgbm") & (known["horizon"] == 4)]
    common = known[(known["horizon"] == 4) & known["timestamp"].isin(lgbm4["timestamp"])]
    loss = {m: qlike(c["realized"], c["var"]) for m, c in common.groupby("model")}
    assert result["oracle_gap"]["lgbm"]["h4"] == pytest.approx(
        (loss["lgbm"] - loss["oracle"]) / (loss["har"] - loss["oracle"]), rel=1e-12
    )


def test_evaluate_predictions_nulls_undefined_numbers_with_warnings() -> None:
    frame = predictions_frame(seed=8, n=12)
    frame = frame[frame["model"] != "oracle"].copy()
    frame.loc[(frame["horizon"] == 4), "realized"] = 2e-5  # constant rv: Mincer-Zarnowitz R² undefined
    frame.loc[(frame["horizon"] == 4), "realized_class"] = 1.0  # no stressed origin: AUC undefined
    frame.loc[(frame["horizon"] == 16) & (frame["model"] == "lgbm"), "var"] = frame.loc[
        (frame["horizon"] == 16) & (frame["model"] == "har"), "var"
    ].to_numpy()  # identical forecasts: DM stat 0, p 1
    result = evaluate_predictions(frame, benchmark="lgbm", oracle="oracle", step=16)  # DM lag 0 at both horizons
    json.dumps(result, allow_nan=False)
    assert result["benchmark"] == "lgbm"
    assert set(result["dm_vs_har"]) == {"har"}  # the key keeps its name; the benchmark is lgbm
    assert result["dm_vs_har"]["har"]["h16"] == {"stat": 0.0, "p": 1.0}
    assert result["models"]["har"]["h4"]["mz_r2"] is None
    assert result["regime"]["har"]["h4"]["auc_stressed"] is None
    assert "oracle_gap" not in result
    text = "\n".join(result["warnings"])
    assert "har h4: mz_r2 is null" in text and "auc_stressed is null" in text and "oracle 'oracle' is not" in text

    every_bar = evaluate_predictions(frame, benchmark="lgbm", step=1)  # lag 15 at h16: more lags than 12 origins
    assert every_bar["dm_vs_har"]["har"]["h16"] is None
    assert any("har h16: DM test is null" in w for w in every_bar["warnings"])


def test_evaluate_predictions_rejects_bad_frames() -> None:
    frame = predictions_frame(n=10)
    with pytest.raises(MetricError, match=r"lack column\(s\) \['realized'\]"):
        evaluate_predictions(frame.drop(columns="realized"))
    with pytest.raises(MetricError, match="duplicate"):
        evaluate_predictions(pd.concat([frame, frame.iloc[:1]]))
    with pytest.raises(MetricError, match="no prediction has a known realized"):
        evaluate_predictions(frame.assign(realized=np.nan))
    with pytest.raises(MetricError, match="non-finite"):
        evaluate_predictions(frame.assign(var=np.where(frame.index == 5, np.nan, frame["var"])))
    with pytest.raises(MetricError, match="step"):
        evaluate_predictions(frame, step=0)


def test_horizon_metrics_warns_without_a_notes_list() -> None:
    frame = predictions_frame(n=6)
    g = frame[(frame["model"] == "har") & (frame["horizon"] == 4)].assign(realized=1e-5)
    with pytest.warns(MetricWarning, match="mz_r2 is null"):
        assert horizon_metrics(g)["mz_r2"] is None
    with pytest.raises(MetricError, match="mixes models"):
        horizon_metrics(frame[frame["horizon"] == 4])


def test_metrics_table_and_mlflow_names() -> None:
    result = evaluate_predictions(predictions_frame(), oracle="oracle", step=4)
    table = metrics_table(result)
    assert list(table.index) == ["har", "lgbm", "oracle"] and table.index.name == "model"
    assert list(table.columns[:4]) == ["qlike/h4", "qlike/h16", "mse/h4", "mse/h16"]
    for column in ("coverage90/h16", "logloss/h4", "dm_stat/h4", "dm_p/h16", "oracle_gap/h16"):
        assert column in table.columns
    assert table.loc["lgbm", "qlike/h16"] == result["models"]["lgbm"]["h16"]["qlike"]
    assert table.loc["lgbm", "dm_p/h16"] == result["dm_vs_har"]["lgbm"]["h16"]["p"]
    assert np.isnan(table.loc["har", "dm_p/h16"]) and np.isnan(table.loc["oracle", "oracle_gap/h4"])

    names = mlflow_metric_names(result)
    assert set(names) == {"har", "lgbm", "oracle"}
    assert names["lgbm"]["qlike/rv/h4"] == result["models"]["lgbm"]["h4"]["qlike"]
    assert names["lgbm"]["coverage90/rv/h16"] == result["models"]["lgbm"]["h16"]["coverage90"]
    assert names["lgbm"]["logloss/regime/h4"] == result["regime"]["lgbm"]["h4"]["logloss"]
    assert names["lgbm"]["dm_p/rv/h16"] == result["dm_vs_har"]["lgbm"]["h16"]["p"]
    assert names["lgbm"]["oracle_gap/rv/h4"] == result["oracle_gap"]["lgbm"]["h4"]
    assert "dm_p/rv/h4" not in names["har"] and "oracle_gap/rv/h4" not in names["oracle"]
    assert all(isinstance(v, float) and math.isfinite(v) for per in names.values() for v in per.values())
