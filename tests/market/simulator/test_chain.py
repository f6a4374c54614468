"""The simulated option chain: smile skew by regime, term structure, listed expiries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.market.simulator import REGIMES, SimConfig, SimulatedMarket
from forecaster.market.simulator.chain import expiries_after


def _with_regime_and_moneyness(market: SimulatedMarket) -> pd.DataFrame:
    chain = market.options_chain
    assert chain is not None
    stamp = pd.to_datetime(chain["timestamp"], unit="us", utc=True)
    regime = market.truth["regime"].reindex(stamp).to_numpy()
    tau = (chain["expiration"] - chain["timestamp"]) / (365 * 86_400e6)
    key = [chain["timestamp"], chain["expiration"]]
    gap = (chain["strike_price"] / chain["underlying_price"] - 1).abs()
    atm = chain["mark_iv"].where(gap == gap.groupby(key).transform("min")).groupby(key).transform("max") / 100
    z = np.log(chain["strike_price"] / chain["underlying_price"]) / (atm * np.sqrt(tau))
    return chain.assign(regime=regime, tau=tau, atm=atm, z=z, ratio=chain["mark_iv"] / 100 / atm)


def test_smile_skew_is_negative_and_steeper_in_stress(market60: SimulatedMarket) -> None:
    """Regress IV / ATM on standardized moneyness z within |z| < 1.5: the slope is each regime's skew."""
    rows = _with_regime_and_moneyness(market60)
    rows = rows[rows["z"].abs() < 1.5]
    slopes = {}
    for name, group in rows.groupby("regime", observed=True):
        slope, _ = np.polyfit(group["z"], group["ratio"] - market60.config.implied_vol.curvature * group["z"] ** 2, 1)
        slopes[name] = slope
    for k, name in enumerate(REGIMES):
        # noise on each quote is 0.5% of IV; the nearest strike stands in for the forward, hence the tolerance
        assert slopes[name] == pytest.approx(market60.config.implied_vol.skew[k], abs=0.005), name
    assert slopes["stressed"] < slopes["normal"] < slopes["calm"] < 0


def test_term_structure_inverts_in_stress(market60: SimulatedMarket) -> None:
    """Stress is expected to pass: short-dated ATM vol above long-dated; in calm the reverse."""
    rows = _with_regime_and_moneyness(market60)
    per_expiry = rows.groupby(["timestamp", "expiration"]).agg(
        atm=("atm", "first"), tau=("tau", "first"), regime=("regime", "first")
    )
    short = per_expiry.loc[per_expiry.groupby(level=0)["tau"].idxmin()]
    long = per_expiry.loc[per_expiry.groupby(level=0)["tau"].idxmax()]
    slope = pd.Series(long["atm"].to_numpy() - short["atm"].to_numpy(), index=short["regime"].to_numpy())
    assert slope[slope.index == "stressed"].mean() < -0.2
    assert slope[slope.index == "calm"].mean() > 0.1


def test_listed_expiries() -> None:
    """Friday 2026-01-02 01:00: dailies 2 and 3 Jan, weeklies 2 and 9 Jan, monthlies 30 Jan and 27 Feb,
    quarterlies 27 Mar and 26 Jun, all at 08:00 UTC."""
    got = expiries_after(pd.Timestamp("2026-01-02T01:00Z"), SimConfig())
    days = ["2026-01-02", "2026-01-03", "2026-01-09", "2026-01-30", "2026-02-27", "2026-03-27", "2026-06-26"]
    assert got == [pd.Timestamp(f"{d}T08:00Z") for d in days]
    after_expiry = expiries_after(pd.Timestamp("2026-01-02T08:00Z"), SimConfig())
    assert after_expiry[0] == pd.Timestamp("2026-01-03T08:00Z")
