"""Stylized facts of the simulated market on 60 simulated days (issue acceptance), with stated tolerances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from forecaster.market.simulator import REGIMES, SimConfig, SimulatedMarket
from forecaster.market.simulator.regimes import build_chain, simulate_states, stays
from forecaster.market.simulator.volatility import MINUTES_PER_YEAR

STYLIZED_DAYS = 60


def test_volatility_clustering(market60: SimulatedMarket) -> None:
    r = np.abs(market60.truth["log_return"].to_numpy())
    d = r - r.mean()
    acf = np.array([np.dot(d[:-k], d[k:]) / np.dot(d, d) for k in range(1, 101)])
    assert np.all(acf > 0), f"autocorrelation of |r| not positive at lags {np.flatnonzero(acf <= 0) + 1}"
    assert acf[0] > 0.1  # clustering is strong at short lags, not a rounding artifact


def test_fat_tails(market60: SimulatedMarket) -> None:
    r = market60.truth["log_return"].to_numpy()
    excess = np.mean((r - r.mean()) ** 4) / np.var(r) ** 2 - 3.0
    assert excess > 3.0


def test_leverage(markets60: list[SimulatedMarket]) -> None:
    """corr(r_t, realized variance of the next hour) < 0, pooled over the three 60-day markets.

    One minute's return is small next to an hour's realized variance, so the correlation is weak: over 40 seeds
    a single 60-day market measured -0.017 at the median, between -0.038 and +0.002; pooled over three markets it
    is about 3 standard deviations below 0.
    """
    pairs = []
    for m in markets60:
        r = m.truth["log_return"]
        pairs.append(pd.DataFrame({"r": r, "rv_next": (r**2).rolling(60).sum().shift(-60)}).dropna())
    both = pd.concat(pairs)
    assert both["r"].corr(both["rv_next"]) < 0


def test_regime_shares_and_durations_pooled_over_fixed_seeds() -> None:
    """Ten 60-day paths of the simulator's own regime chain (fixed seeds), pooled.

    One 60-day path holds only ~5 calm stays of 5 days, and which regimes it visits is random: measured over 300
    seeds, a single path misses 25% on at least one share or duration 45-55% of the time (shares dominate: the
    stressed share alone misses 33% of the time), so a one-path check would test the seed, not the model. Pooled
    over ten 60-day paths, the worst deviation measured 11% at the median and 18% at the 95th percentile over 100
    groups of seeds, so the 25% tolerance tests the configuration.
    """
    config = SimConfig(days=STYLIZED_DAYS)
    chain = build_chain(config)
    paths = [
        chain.regime[simulate_states(chain, config.n_bars, np.random.default_rng(seed))] for seed in range(100, 110)
    ]
    which_all, lengths_all = zip(*(stays(p) for p in paths), strict=True)
    which, lengths = np.concatenate(which_all), np.concatenate(lengths_all)
    shares = np.bincount(np.concatenate(paths), minlength=len(REGIMES)) / (len(paths) * config.n_bars)
    hours = np.array([lengths[which == k].mean() / 60 for k in range(len(REGIMES))])
    np.testing.assert_allclose(shares, chain.regime_shares(), rtol=0.25)
    np.testing.assert_allclose(hours, config.regimes.mean_duration_hours, rtol=0.25)


def _chain_atm_iv(chain: pd.DataFrame) -> pd.Series:
    """ATM implied vol per snapshot: expiry nearest 30 days, then the strike nearest the underlying."""
    tenor_days = (chain["expiration"] - chain["timestamp"]) / 86_400e6
    rows = chain.assign(
        tenor_gap=(tenor_days - 30).abs(),
        money_gap=(chain["strike_price"] / chain["underlying_price"] - 1).abs(),
    )
    near = rows[rows["tenor_gap"] == rows.groupby("timestamp")["tenor_gap"].transform("min")]
    return near.loc[near.groupby("timestamp")["money_gap"].idxmin(), "mark_iv"] / 100.0


def test_variance_risk_premium_atm_iv_above_realized(markets60: list[SimulatedMarket]) -> None:
    """Mean ATM implied vol of the chain (and of the 30-day IV index) exceeds realized vol.

    Pooled over the three fixed-seed 60-day markets: over 16 seeds the premium of one 60-day window measured
    4.6 vol points on average with a standard deviation of 3.9 (realized vol of 60 days moves with the share
    of stressed time), so a single window would test luck; three windows put the premium ~2 sd from 0.
    """
    r = np.concatenate([m.truth["log_return"].to_numpy() for m in markets60])
    realized = np.sqrt(np.mean(r**2) * MINUTES_PER_YEAR)
    atm = pd.concat([_chain_atm_iv(m.options_chain) for m in markets60 if m.options_chain is not None])
    assert len(atm) == 3 * 60 * 24
    iv_index = np.concatenate([m.iv_index["dvol"].to_numpy() for m in markets60]) / 100.0
    assert atm.mean() > realized
    assert iv_index.mean() > realized
    # "a few vol points", not a different market
    assert atm.mean() - realized < 0.15


def flow_features(trades: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Order-flow features per bar from raw trades: intensity and signed-volume imbalance over trailing windows."""
    bar = pd.to_datetime(trades["timestamp"].to_numpy(), unit="us", utc=True).ceil("1min")
    amount = trades["amount"].to_numpy()
    signed = np.where(trades["side"].to_numpy() == "buy", amount, -amount)
    per_bar = (
        pd.DataFrame({"n": 1.0, "signed": signed, "volume": amount}, index=bar)
        .groupby(level=0)
        .sum()
        .reindex(index, fill_value=0.0)
    )
    day_rate = per_bar["n"].rolling(1440).sum() / 1440
    return pd.DataFrame(
        {
            "intensity_1h": np.log(per_bar["n"].rolling(60).mean() / day_rate),
            "intensity_4h": np.log(per_bar["n"].rolling(240).mean() / day_rate),
            "imbalance_1h": per_bar["signed"].rolling(60).sum() / per_bar["volume"].rolling(60).sum(),
            "imbalance_4h": per_bar["signed"].rolling(240).sum() / per_bar["volume"].rolling(240).sum(),
            "intensity_level": np.log(day_rate),
        },
        index=index,
    )


def switch_label(regime: np.ndarray, target: int, within: int) -> np.ndarray:
    """True at bar t when the regime enters ``target`` at some bar in (t, t + within]."""
    inside = regime == target
    entry = np.r_[False, inside[1:] & ~inside[:-1]].astype(float)
    ahead = pd.Series(entry[::-1]).rolling(within, min_periods=1).max().to_numpy()[::-1]  # entry in [t, t+within)
    return np.r_[ahead[1:], 0.0] > 0


@pytest.mark.slow
def test_order_flow_leads_switches_into_stressed(markets60: list[SimulatedMarket]) -> None:
    """A logistic regression on order-flow features predicts "switch into stressed within 4 hours".

    Three fixed-seed 60-day markets; each is scored by a model fitted on the other two (out of sample), and the
    pooled AUC must lie in [0.6, 0.9]: the lead is real, but it does not reveal the regime.
    """
    stressed = REGIMES.index("stressed")
    data = []
    for m in markets60:
        assert m.trades is not None
        feats = flow_features(m.trades, m.bars.index)
        regime = m.truth["regime"].cat.codes.to_numpy()
        label = switch_label(regime, stressed, 240)
        usable = (regime != stressed) & feats.notna().all(axis=1).to_numpy()
        data.append((feats.to_numpy()[usable], label[usable]))
    scores, labels = [], []
    for k, (x_test, y_test) in enumerate(data):
        x_fit = np.vstack([d[0] for j, d in enumerate(data) if j != k])
        y_fit = np.concatenate([d[1] for j, d in enumerate(data) if j != k])
        model = LogisticRegression(max_iter=2000).fit(x_fit, y_fit)
        scores.append(model.predict_proba(x_test)[:, 1])
        labels.append(y_test)
    y = np.concatenate(labels)
    assert y.sum() >= 10 * 240 / 2, "too few switches into stressed to measure a lead"
    auc = roc_auc_score(y, np.concatenate(scores))
    assert 0.6 <= auc <= 0.9, f"order-flow AUC {auc:.3f} outside [0.6, 0.9]"


@pytest.mark.parametrize("h", [60, 240, 1440])
def test_oracle_unbiased(markets60: list[SimulatedMarket], h: int) -> None:
    """mean(rv_h - oracle_h) over non-overlapping origins of the three markets is within 3 standard errors of 0.

    rv_h is strongly right-skewed (jumps, stress), so one market's t-statistic leans negative (over 20 seeds at
    h=1440 it reached -3.1 once); pooled over 40 seeds the bias measured z = 0.4, -0.5 and -1.1 for h = 60, 240,
    1440. Three markets keep the test about the oracle, not the skew of one sample.
    """
    errors, realized_all, oracle_all = [], [], []
    for m in markets60:
        r2 = m.truth["log_return"].to_numpy() ** 2
        cum = np.concatenate([[0.0], np.cumsum(r2)])
        oracle = m.truth[f"oracle_rv_h{h}"].to_numpy()
        origins = np.arange(0, len(r2) - h, h)
        realized = cum[origins + 1 + h] - cum[origins + 1]  # sum of r^2 over bars t+1..t+h
        errors.append(realized - oracle[origins])
        realized_all.append(realized)
        oracle_all.append(oracle[origins])
    err = np.concatenate(errors)
    se = err.std(ddof=1) / np.sqrt(len(err))
    assert abs(err.mean()) < 3 * se, f"bias {err.mean():.3g} vs se {se:.3g}"
    # and the oracle is informative: it explains realized variance far better than a constant
    assert np.corrcoef(np.concatenate(realized_all), np.concatenate(oracle_all))[0, 1] > 0.5


@pytest.mark.parametrize("h", [60, 240, 1440])
def test_iv_change_oracle_unbiased(markets60: list[SimulatedMarket], h: int) -> None:
    """mean(div_h - oracle_div_h) over non-overlapping origins of the three markets is within 3 standard errors."""
    errors, changes = [], []
    for m in markets60:
        iv = m.iv_index["dvol"].to_numpy() / 100.0
        oracle = m.truth[f"oracle_div_h{h}"].to_numpy()
        origins = np.arange(0, len(iv) - h, h)
        errors.append(iv[origins + h] - iv[origins] - oracle[origins])
        changes.append(iv[origins + h] - iv[origins])
    err = np.concatenate(errors)
    se = err.std(ddof=1) / np.sqrt(len(err))
    assert abs(err.mean()) < 3 * se, f"bias {err.mean():.3g} vs se {se:.3g}"
    # informative: a smaller squared error than "no change" (measured: 10% less at h=60, 40% at h=1440)
    assert np.mean(err**2) < 0.95 * np.mean(np.concatenate(changes) ** 2)
