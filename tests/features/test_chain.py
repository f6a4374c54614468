"""Chain-derived implied features: the light smile against closed forms (an exactly quadratic chain, 25-delta
strikes by scipy root finding on the Black-76 delta), against the arbitrage-free SVI surface on simulated
snapshots, snapshot independence (bit for bit), and the pipeline's handling of chains (lead, gaps, bad input)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from features.chain import MIN_TAU_HOURS, fit_smiles
from features.implied import chain_tenors
from features.market import market_data
from features.pipeline import FeatureSpec, build_features
from forecaster.errors import UsageError
from forecaster.market import load_options_chain
from forecaster.market.simulator import SimConfig, simulate
from forecaster.pricing.surface import surface_from_chain

T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")
YEAR = pd.Timedelta(days=365)
# per expiry (days ahead, a, b, c): σ(x) = a + b x + c x², x = ln(K/F)/√tau
SMILES = [(2.0, 0.80, -0.10, 0.05), (9.0, 0.70, -0.08, 0.04), (40.0, 0.60, -0.06, 0.03)]


def quadratic_chain(stamps: list[pd.Timestamp], smiles=SMILES, forward: float = 50_000.0, strikes: int = 9):
    """Calls and puts whose IVs lie exactly on each expiry's quadratic, both sides quoted at every strike."""
    rows = []
    for stamp in stamps:
        for days, a, b, c in smiles:
            expiry = stamp + pd.Timedelta(days=days)
            tau = days / 365.0
            for x in np.linspace(-1.2, 1.2, strikes):
                strike = forward * math.exp(x * math.sqrt(tau))
                iv = a + b * x + c * x * x
                for kind in ("call", "put"):
                    rows.append((stamp, kind, strike, expiry, forward, iv))
    frame = pd.DataFrame(
        rows, columns=["timestamp", "type", "strike_price", "expiration", "underlying_price", "mark_iv"]
    )
    return frame.set_index("timestamp")


def delta_strike_reference(a: float, b: float, c: float, tau: float, call_delta: float) -> float:
    """The x whose Black-76 forward call delta N(d1) equals ``call_delta``, by brentq on the delta itself."""

    def sigma(x: float) -> float:
        return a + b * x + c * x * x

    def delta_gap(x: float) -> float:
        s = sigma(x)
        d1 = -x / s + 0.5 * s * math.sqrt(tau)
        return norm.cdf(d1) - call_delta

    return brentq(delta_gap, -1.2, 1.2, xtol=1e-14)


def test_an_exactly_quadratic_chain_is_recovered() -> None:
    smiles = fit_smiles(quadratic_chain([T0]))
    assert len(smiles.snapshots) == 1 and list(smiles.count) == [3]
    np.testing.assert_allclose(smiles.coef, [s[1:] for s in SMILES], atol=1e-12)
    np.testing.assert_allclose(smiles.atm, [s[1] for s in SMILES], rtol=1e-13)
    for i, (days, a, b, c) in enumerate(SMILES):
        tau = days / 365.0
        x_call = delta_strike_reference(a, b, c, tau, 0.25)
        x_put = delta_strike_reference(a, b, c, tau, 0.75)
        call, put = a + b * x_call + c * x_call**2, a + b * x_put + c * x_put**2
        assert smiles.rr25[i] == pytest.approx(call - put, abs=1e-12)
        assert smiles.bf25[i] == pytest.approx(0.5 * (call + put) - a, abs=1e-12)
        assert smiles.rr25[i] < 0  # negative skew: the put wing is richer


def test_fixed_tenors_interpolate_total_variance_and_hold_the_ends() -> None:
    smiles = fit_smiles(quadratic_chain([T0]))
    (d1, a1, *_), (d2, a2, *_), (_, a3, *_) = SMILES
    t1, t2 = d1 / 365.0, d2 / 365.0
    tenor = 5.0 / 365.0
    w = a1 * a1 * t1 + (tenor - t1) / (t2 - t1) * (a2 * a2 * t2 - a1 * a1 * t1)
    assert smiles.atm_iv(tenor)[0] == pytest.approx(math.sqrt(w / tenor), rel=1e-13)
    assert smiles.atm_iv(1.0 / 365.0)[0] == pytest.approx(a1, rel=1e-13)  # before the first expiry: held
    assert smiles.atm_iv(1.0)[0] == pytest.approx(a3, rel=1e-13)  # beyond the last
    assert smiles.atm_iv(t2)[0] == pytest.approx(a2, rel=1e-13)  # at an expiry: that expiry's value
    rr = smiles.rr25
    alpha = (tenor - t1) / (t2 - t1)
    assert smiles.at_tenor(rr, tenor)[0] == pytest.approx((1 - alpha) * rr[0] + alpha * rr[1], abs=1e-15)
    assert smiles.at_tenor(rr, 2.0)[0] == rr[2] and smiles.at_tenor(rr, 0.5 / 365)[0] == rr[0]


def test_few_strikes_give_a_line_or_a_flat_smile() -> None:
    chain = quadratic_chain([T0], smiles=[(9.0, 0.7, -0.08, 0.04)], strikes=2)
    line = fit_smiles(chain)
    assert line.coef[0, 2] == 0.0 and line.coef[0, 1] != 0.0
    one = quadratic_chain([T0], smiles=[(9.0, 0.7, -0.08, 0.04)], strikes=1)
    flat = fit_smiles(one)
    assert flat.coef[0, 1] == flat.coef[0, 2] == 0.0
    assert flat.rr25[0] == 0.0 and flat.bf25[0] == 0.0 and np.isfinite(flat.atm[0])


def test_quotes_are_chosen_out_of_the_money_and_unusable_rows_left_out() -> None:
    chain = quadratic_chain([T0])
    # spoil the in-the-money side: it must not move the fit, since the out-of-the-money quote exists
    itm = np.where(chain["strike_price"] < 50_000.0, chain["type"] == "call", chain["type"] == "put")
    spoiled = chain.assign(mark_iv=np.where(itm, 3.0, chain["mark_iv"]))
    np.testing.assert_allclose(fit_smiles(spoiled).coef, fit_smiles(chain).coef, atol=1e-12)
    # an expiry within MIN_TAU_HOURS, NaN and zero IVs are left out; mid of bid/ask stands in for a missing mark
    near = chain.iloc[:4].assign(expiration=T0 + pd.Timedelta(hours=MIN_TAU_HOURS / 2))
    holes = chain.assign(mark_iv=chain["mark_iv"].where(np.arange(len(chain)) % 7 != 0))
    holes = holes.assign(bid_iv=chain["mark_iv"] - 0.01, ask_iv=chain["mark_iv"] + 0.01)
    smiles = fit_smiles(pd.concat([holes, near]))
    assert list(smiles.count) == [3]
    np.testing.assert_allclose(smiles.coef, [s[1:] for s in SMILES], atol=1e-12)


def test_each_snapshot_is_fitted_on_its_own_rows_bit_for_bit() -> None:
    stamps = [T0 + pd.Timedelta(hours=h) for h in range(6)]
    rng = np.random.default_rng(4)
    chain = quadratic_chain(stamps)
    chain = chain.assign(mark_iv=chain["mark_iv"] * np.exp(0.01 * rng.standard_normal(len(chain))))
    full = fit_smiles(chain)
    part = fit_smiles(chain.loc[stamps[3] :])
    for name in ("atm", "rr25", "bf25", "tau"):
        assert np.array_equal(getattr(full, name)[full.start[3] :], getattr(part, name))
    assert np.array_equal(full.atm_iv(0.05)[3:], part.atm_iv(0.05))


def test_a_chain_lacking_columns_is_refused_naming_them() -> None:
    chain = quadratic_chain([T0]).drop(columns=["mark_iv", "underlying_price"])
    with pytest.raises(UsageError, match=r"underlying_price.*mark_iv \(or bid_iv and ask_iv\)"):
        fit_smiles(chain)


@pytest.mark.parametrize("tenors", [[], [30, 7], [0, 7], ["7"], 7, [True]])
def test_bad_tenors_are_refused(tenors: object) -> None:
    with pytest.raises(UsageError, match="chain_tenors_days"):
        chain_tenors({"chain_tenors_days": tenors})


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory):
    sim = simulate(SimConfig(days=2, seed=11), out_dir=tmp_path_factory.mktemp("sim"), with_trades=False)
    return sim, load_options_chain(sim.files["options_chain"]).data


def test_agrees_with_the_svi_surface_on_simulated_snapshots(simulated) -> None:
    _, chain = simulated
    smiles = fit_smiles(chain)
    tenors = np.array([7.0, 30.0, 90.0]) / 365.0
    for i in (0, 17, len(smiles.snapshots) - 1):
        stamp = smiles.snapshots[i]
        surface = surface_from_chain(chain.loc[chain.index == stamp])
        for tau in tenors:
            assert smiles.atm_iv(tau)[i] == pytest.approx(surface.atm_term_structure(tau)[()], abs=0.003)
            assert smiles.at_tenor(smiles.rr25, tau)[i] == pytest.approx(surface.risk_reversal_25d(tau)[()], abs=0.01)
            assert smiles.at_tenor(smiles.bf25, tau)[i] == pytest.approx(surface.butterfly_25d(tau)[()], abs=0.003)


def test_chain_features_in_the_pipeline(simulated) -> None:
    sim, chain = simulated
    spec = FeatureSpec(groups=("implied",), windows=(60, 1440), params={"chain_tenors_days": [7, 30]})
    data = market_data(sim.bars, freq="1min", chain=chain)
    table = build_features(data, spec)
    names = table.names
    assert names[:6] == [
        "chain_atm_iv_7d",
        "chain_atm_iv_30d",
        "chain_term_slope_7d_30d",
        "chain_rr25_7d",
        "chain_rr25_30d",
        "chain_bf25_7d",
    ]
    assert "iv" not in names and "chain_vrp_1440" in names and "chain_rr25_30d_chg_60" in names
    lead = int((sim.bars.index < chain.index.min()).sum())
    assert table.warmup["chain_atm_iv_7d"] == lead and table.warmup["chain_bf25_7d_chg_1440"] == lead + 1440
    for column, rows in table.warmup.items():
        values = table.frame[column].to_numpy()
        assert not np.isnan(values[rows:]).any(), column
        assert np.isnan(values[rows - 1]), column
    # as-of: a bar sees the last snapshot at or before its end
    smiles = fit_smiles(chain)
    bar = sim.bars.index[lead + 90]
    at = smiles.snapshots.searchsorted(bar, side="right") - 1
    assert smiles.snapshots[at] <= bar < smiles.snapshots[at + 1]
    assert table.frame.loc[bar, "chain_atm_iv_30d"] == smiles.atm_iv(30 / 365)[at]
    # the matched VRP: ATM total variance at the window's tenor minus the window's realized variance
    r = np.log(sim.bars["close"]).diff().to_numpy()
    i = sim.bars.index.get_loc(bar)
    realized = float(np.sum(r[i - 59 : i + 1] ** 2))
    expected = smiles.atm_total_variance(60 * data.bar_years)[at] - realized
    assert table.frame.loc[bar, "chain_vrp_60"] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_snapshots_without_quotes_carry_the_last_usable_one(simulated) -> None:
    sim, chain = simulated
    stamps = chain.index.unique()
    dead = chain.index == stamps[5]
    chain = chain.assign(mark_iv=chain["mark_iv"].where(~dead), bid_iv=chain["bid_iv"].where(~dead))
    spec = FeatureSpec(groups=("implied",), windows=(60,), params={})
    frame = build_features(market_data(sim.bars, freq="1min", chain=chain), spec).frame
    assert (
        frame.loc[stamps[5], "chain_atm_iv_30d"] == frame.loc[stamps[5] - pd.Timedelta(minutes=1), "chain_atm_iv_30d"]
    )
    assert not frame.loc[stamps[0] :].isna().to_numpy()[60:].any()


def test_the_implied_group_is_skipped_without_iv_or_chain(simulated) -> None:
    sim, _ = simulated
    table = build_features(
        market_data(sim.bars, freq="1min"), FeatureSpec(groups=("implied",), windows=(5,), params={})
    )
    assert table.skipped == {"implied": "no iv or chain input"}


def test_div_targets_use_the_chain_30_day_atm_without_an_iv_index(simulated) -> None:
    from features.targets import make_targets

    sim, chain = simulated
    data = market_data(sim.bars, freq="1min", chain=chain)
    targets = make_targets(data, [60])
    smiles = fit_smiles(chain)
    t = smiles.snapshots[3]
    i = sim.bars.index.get_loc(t)
    atm = smiles.atm_iv(30 / 365)
    assert targets["div_h60"].iloc[i] == atm[4] - atm[3]  # an hour later the bar sees the next hourly snapshot
