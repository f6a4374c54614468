"""Implied-vol surfaces against known SVI/SSVI surfaces, brute-force delta strikes and the simulator's own smile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from forecaster.market.options_chain import load_options_chain
from forecaster.market.simulator import REGIMES, SimConfig, simulate
from forecaster.market.simulator.chain import chain_snapshots
from forecaster.market.simulator.implied import atm_implied_vol
from forecaster.market.simulator.regimes import build_chain
from forecaster.market.simulator.volatility import vol_params
from forecaster.pricing.surface import (
    FlatSurface,
    ImpliedVolSurface,
    SurfaceError,
    VolSurface,
    flat_surface,
    surface_from_chain,
)
from forecaster.pricing.svi import (
    SviParams,
    arbitrage_grid,
    fit_svi,
    refine_grid,
    svi_density_g,
    svi_total_variance,
)

AS_OF = pd.Timestamp("2026-01-05T08:00Z")
DAYS = np.array([7.0, 30.0, 90.0, 180.0])
TAUS = DAYS / 365
FORWARDS = np.array([60_100.0, 60_300.0, 60_900.0, 61_800.0])
K_UNITS = np.linspace(-2.5, 1.5, 11)  # quoted strikes, in ATM standard deviations


def theta(tau: np.ndarray) -> np.ndarray:
    """ATM total variance, increasing in tau: about 60% vol, a little more at the short end."""
    return 0.36 * tau * (1 + 0.3 * np.exp(-5 * tau))


def ssvi(th: np.ndarray, rho: float = -0.4, eta: float = 1.2, gamma: float = 0.4) -> SviParams:
    """Raw SVI of SSVI slices with power-law φ; η (1 + |ρ|) ≤ 2 and γ ≤ 1/2 make the surface arbitrage-free
    (Gatheral and Jacquier 2014, section 4)."""
    th = np.asarray(th, dtype=float)
    phi = eta / (th**gamma * (1 + th) ** (1 - gamma))
    return SviParams(th * (1 - rho**2) / 2, th * phi / 2, rho + 0 * th, -rho / phi, np.sqrt(1 - rho**2) / phi)


TRUE = ssvi(theta(TAUS))


def slice_params(params: SviParams, i: int) -> SviParams:
    return SviParams(*(float(np.asarray(p)[i]) for p in params))


def chain_frame(params: SviParams = TRUE, days: np.ndarray = DAYS, bumps: dict | None = None) -> pd.DataFrame:
    """A snapshot in load_options_chain's shape: a call and a put per strike with the exact SVI IV as mark,
    bid/ask one vol point apart. ``bumps`` {(expiry i, strike j): added IV} plants bad quotes."""
    rows = []
    for i, day in enumerate(days):
        p = slice_params(params, i)
        k = K_UNITS * np.sqrt(svi_total_variance(0.0, p))
        iv = np.sqrt(svi_total_variance(k, p) / (day / 365))
        for j, (kj, ivj) in enumerate(zip(k, iv, strict=True)):
            ivj += (bumps or {}).get((i, j), 0.0)
            for kind in ("call", "put"):
                rows.append(
                    {
                        "type": kind,
                        "strike_price": FORWARDS[i] * np.exp(kj),
                        "expiration": AS_OF + pd.Timedelta(days=float(day)),
                        "underlying_price": FORWARDS[i],
                        "mark_iv": ivj,
                        "bid_iv": ivj - 0.005,
                        "ask_iv": ivj + 0.005,
                    }
                )
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex([AS_OF] * len(rows), name="timestamp"))
    return frame.assign(type=pd.Categorical(frame["type"], categories=["call", "put"]))


def brute_force_delta_k(iv_of_k, tau: float, delta: float, call: bool) -> float:
    """Log-moneyness where N(d1) (call) or N(d1) − 1 (put) equals delta, on a fine grid, interpolated."""
    k = np.linspace(-1.5, 1.5, 600_001)
    sd = iv_of_k(k) * np.sqrt(tau)
    fwd_delta = ndtr(-k / sd + sd / 2) - (0.0 if call else 1.0)  # decreasing in k
    return float(np.interp(delta, fwd_delta[::-1], k[::-1]))


@pytest.fixture(scope="module")
def fitted() -> VolSurface:
    return surface_from_chain(chain_frame())


def test_known_ssvi_chain_is_recovered(fitted: VolSurface) -> None:
    np.testing.assert_allclose(fitted.taus, TAUS, rtol=1e-12)
    np.testing.assert_allclose(fitted.forwards, FORWARDS)
    for i, fit in enumerate(fitted.fits):
        true = slice_params(TRUE, i)
        k = K_UNITS * np.sqrt(svi_total_variance(0.0, true))
        strikes = FORWARDS[i] * np.exp(k)
        error = fitted.iv_strike(strikes, TAUS[i], FORWARDS[i]) - np.sqrt(svi_total_variance(k, true) / TAUS[i])
        assert np.max(np.abs(error)) <= 1e-4, fit.label
        assert fit.max_abs_iv_error <= 1e-4 and not fit.repaired
        np.testing.assert_allclose(fit.params, true, atol=1e-4)
    report = fitted.check_arbitrage()
    assert report.arbitrage_free, report.summary()
    assert np.all(report.min_g > 0) and np.all(report.min_dw_dtau >= 0)


def test_fitted_surface_is_calendar_and_butterfly_free_on_a_dense_grid(fitted: VolSurface) -> None:
    """Independent of check_arbitrage: w non-decreasing along 400 tenors at every k, g ≥ 0 at 60 tenors."""
    k = np.linspace(-3, 3, 601)
    taus = np.linspace(0.5, 400, 400) / 365
    w = fitted.total_variance(k[None, :], taus[:, None])  # (T, K)
    assert np.all(np.diff(w, axis=0) >= -1e-15)
    assert np.min(fitted.density_g(k[None, :], taus[::7, None])) >= 0


def test_interpolation_and_extrapolation_rules(fitted: VolSurface) -> None:
    k = np.linspace(-1, 1, 9)
    slices = [svi_total_variance(k, SviParams(*(p[i] for p in fitted.params))) for i in range(len(TAUS))]
    np.testing.assert_allclose(fitted.total_variance(k, TAUS[1]), slices[1], rtol=1e-14)
    mid = 0.25 * TAUS[1] + 0.75 * TAUS[2]
    np.testing.assert_allclose(fitted.total_variance(k, mid), 0.25 * slices[1] + 0.75 * slices[2], rtol=1e-14)
    np.testing.assert_allclose(fitted.total_variance(k, TAUS[0] / 4), slices[0] / 4, rtol=1e-14)  # w ∝ tau
    np.testing.assert_allclose(fitted.iv(k, 2.0), np.sqrt(slices[-1] / TAUS[-1]), rtol=1e-14)  # IV held
    grid = fitted.iv(k[None, :], np.array([0.01, 0.1, 1.0])[:, None])
    assert grid.shape == (3, 9)
    strikes = 60_000 * np.exp(k)
    np.testing.assert_allclose(fitted.iv_strike(strikes, 0.1, 60_000.0), fitted.iv(k, 0.1), rtol=1e-14)
    np.testing.assert_allclose(fitted.atm_term_structure(TAUS), np.sqrt(theta(TAUS) / TAUS), rtol=1e-6)


def test_injected_butterfly_arbitrage_gives_an_arbitrage_free_surface() -> None:
    """One strike of the 30-day expiry 10 vol points too high (call and put): plain least squares on that slice
    gives a smile with g < 0, the surface stays arbitrage-free and says which constraint bound."""
    j = int(np.argmin(np.abs(K_UNITS)))
    true = slice_params(TRUE, 1)
    k = K_UNITS * np.sqrt(svi_total_variance(0.0, true))
    iv = np.sqrt(svi_total_variance(k, true) / TAUS[1])
    iv[j] += 0.10
    plain = fit_svi(k, iv, TAUS[1], butterfly_free=False)
    assert np.min(svi_density_g(refine_grid(arbitrage_grid(k)), plain.params)) < -0.5
    surface = surface_from_chain(chain_frame(bumps={(1, j): 0.10}))
    bad = surface.fits[1]
    assert bad.quote_butterfly_violations >= 1 and bad.repaired and bad.max_abs_iv_error > 0.05
    assert any(bad.label in note and "binds" in note for note in surface.notes)
    report = surface.check_arbitrage()
    assert report.arbitrage_free, report.summary()
    for longer in surface.fits[2:]:  # fitted before the bad slice, so untouched
        assert longer.max_abs_iv_error <= 1e-4


def test_calendar_arbitrage_in_the_quotes_is_repaired() -> None:
    """A 30-day expiry quoted with more total variance than the 31-day one at every strike."""
    days = np.array([30.0, 31.0])
    params = ssvi(np.array([1.5, 1.0]) * theta(days / 365))
    quoted = surface_from_chain(chain_frame(params, days))
    report = quoted.check_arbitrage()
    assert report.calendar_free and report.butterfly_free, report.summary()
    k = np.linspace(-2, 2, 401)
    assert np.all(quoted.total_variance(k, days[0] / 365) <= quoted.total_variance(k, days[1] / 365))
    assert quoted.fits[0].repaired and quoted.fits[0].max_abs_iv_error > 0.05


def test_rr_and_bf_of_a_known_slice_match_a_brute_force_root_find() -> None:
    tau = 45 / 365
    params = slice_params(ssvi(theta(np.array([tau]))), 0)
    surface = VolSurface(taus=np.array([tau]), params=params)

    def iv_of_k(k: np.ndarray) -> np.ndarray:
        return np.sqrt(svi_total_variance(k, params) / tau)

    k_call = brute_force_delta_k(iv_of_k, tau, 0.25, call=True)
    k_put = brute_force_delta_k(iv_of_k, tau, -0.25, call=False)
    got_call, got_put = surface.delta_strikes_25d(tau)
    assert got_call == pytest.approx(k_call, abs=1e-7)
    assert got_put == pytest.approx(k_put, abs=1e-7)
    rr = iv_of_k(np.array(k_call)) - iv_of_k(np.array(k_put))
    bf = 0.5 * (iv_of_k(np.array(k_call)) + iv_of_k(np.array(k_put))) - iv_of_k(np.array(0.0))
    assert surface.risk_reversal_25d(tau) == pytest.approx(rr, abs=1e-8)
    assert surface.butterfly_25d(tau) == pytest.approx(bf, abs=1e-8)
    assert rr < 0 < bf  # negative ρ: puts over calls; convex smile
    np.testing.assert_allclose(surface.risk_reversal_25d(np.array([tau, tau])), [rr, rr], atol=1e-8)


def test_rr_of_a_symmetric_smile_is_zero() -> None:
    """Forward delta is symmetric in d1, not in k: the smile symmetric about k = w(k_25)/2 has RR = 0 (found
    here by brute force), and the smile symmetric about k = 0 has RR > 0."""
    tau = 0.25
    params = SviParams(0.03, 0.2, 0.0, 0.0, 0.15)

    def call_strike(p: SviParams) -> float:
        def excess(k: float) -> float:
            w = float(svi_total_variance(k, p))
            return -k / np.sqrt(w) + np.sqrt(w) / 2 - ndtri(0.25)

        return brentq(excess, 0.0, 2.0, xtol=1e-15)

    for _ in range(60):  # fixed point m = w(k_25 call) / 2
        params = params._replace(m=float(svi_total_variance(call_strike(params), params)) / 2)
    symmetric = VolSurface(taus=np.array([tau]), params=params)
    assert abs(float(symmetric.risk_reversal_25d(tau))) < 1e-10
    assert symmetric.butterfly_25d(tau) > 0
    centred = VolSurface(taus=np.array([tau]), params=params._replace(m=0.0))
    assert centred.risk_reversal_25d(tau) > 1e-3


def test_flat_surface_is_the_level_everywhere() -> None:
    flat = flat_surface(0.55)
    k = np.linspace(-2, 2, 11)
    taus = np.array([1 / 365, 0.1, 2.0])
    np.testing.assert_array_equal(flat.iv(k[None, :], taus[:, None]), np.full((3, 11), 0.55))
    np.testing.assert_allclose(flat.iv_strike(np.array([30_000.0, 90_000.0]), 0.2, 60_000.0), 0.55, rtol=1e-15)
    np.testing.assert_allclose(flat.total_variance(k, 0.5), 0.55**2 * 0.5, rtol=1e-15)
    np.testing.assert_allclose(flat.atm_term_structure(taus), 0.55, rtol=1e-15)
    np.testing.assert_allclose(flat.risk_reversal_25d(taus), 0.0, atol=1e-15)
    np.testing.assert_allclose(flat.butterfly_25d(taus), 0.0, atol=1e-15)
    assert flat.check_arbitrage().arbitrage_free
    assert isinstance(flat, ImpliedVolSurface) and isinstance(flat, FlatSurface)
    with pytest.raises(SurfaceError, match="convert percent"):
        flat_surface(55.0)
    with pytest.raises(SurfaceError, match="skew must be 'none'"):
        flat_surface(0.55, skew="sticky")  # type: ignore[arg-type]


def test_both_kinds_share_one_interface(fitted: VolSurface) -> None:
    for surface in (fitted, flat_surface(0.6)):
        assert isinstance(surface, ImpliedVolSurface)
        assert surface.risk_reversal_25d(np.array([0.1, 0.3])).shape == (2,)
        with pytest.raises(SurfaceError, match="tau must be finite and > 0"):
            surface.iv(0.0, 0.0)


def test_mid_quotes_and_spread_weights() -> None:
    """quote='mid' fits (bid + ask)/2, not mark; the exact smile is recovered with any weighting."""
    frame = chain_frame()
    frame = frame.assign(mark_iv=frame["mark_iv"] + 0.05)  # a mark that is off, mid that is right
    for weighting in ("spread", "vega", "equal"):
        mid = surface_from_chain(frame, quote="mid", weighting=weighting)
        assert max(f.max_abs_iv_error for f in mid.fits) <= 1e-4, weighting
    mark = surface_from_chain(frame, quote="mark")
    np.testing.assert_allclose(mark.atm_term_structure(TAUS) - mid.atm_term_structure(TAUS), 0.05, atol=2e-3)


def test_expiries_with_few_strikes() -> None:
    frame = chain_frame()
    strikes_30d = np.sort(frame.loc[frame["expiration"] == AS_OF + pd.Timedelta(days=30), "strike_price"].unique())
    thin = frame[(frame["expiration"] != AS_OF + pd.Timedelta(days=30)) | frame["strike_price"].isin(strikes_30d[4:7])]
    dropped = surface_from_chain(thin)
    np.testing.assert_allclose(dropped.taus, TAUS[[0, 2, 3]])
    assert any("3 strike(s) < 5, expiry dropped" in note for note in dropped.notes)
    flat = surface_from_chain(thin, few_strikes="flat")
    assert [f.method for f in flat.fits] == ["svi", "flat", "svi", "svi"]
    assert any("3 strike(s) < 5, flat smile" in note for note in flat.notes)
    assert flat.check_arbitrage().arbitrage_free
    # the flat slice quotes the 30-day smile's IV at the forward
    assert flat.iv(0.0, TAUS[1]) == pytest.approx(np.sqrt(theta(TAUS[1]) / TAUS[1]), rel=0.02)
    all_thin = thin[thin["expiration"] == AS_OF + pd.Timedelta(days=30)]
    with pytest.raises(SurfaceError, match=r"every expiry has fewer than 5 strikes.*few_strikes='flat'"):
        surface_from_chain(all_thin)
    assert surface_from_chain(all_thin, few_strikes="flat").fits[0].method == "flat"
    with pytest.raises(SurfaceError, match=r"expiry 2026-02-04T08:00Z \(tau 30.000 d\): 3 distinct strike"):
        surface_from_chain(thin, few_strikes="raise")


def test_snapshot_selection_and_input_errors() -> None:
    one = chain_frame()
    later = one.set_axis(pd.DatetimeIndex([AS_OF + pd.Timedelta(hours=1)] * len(one), name="timestamp"))
    two = pd.concat([one, later])
    with pytest.raises(SurfaceError, match=r"holds 2 snapshots.*pass as_of"):
        surface_from_chain(two)
    with pytest.raises(SurfaceError, match="no snapshot at or before as_of"):
        surface_from_chain(two, as_of=AS_OF - pd.Timedelta(minutes=1))
    picked = surface_from_chain(two, as_of=AS_OF + pd.Timedelta(minutes=30))
    assert picked.snapshot == AS_OF and picked.as_of == AS_OF + pd.Timedelta(minutes=30)
    np.testing.assert_allclose(picked.taus, TAUS - 30 / (365 * 24 * 60), rtol=1e-12)  # tenors from as_of
    assert any("older than as_of" in note for note in picked.notes)
    short = surface_from_chain(one, min_tau_hours=24 * 10)
    assert len(short.taus) == 3 and any("within 240 h" in note for note in short.notes)
    with pytest.raises(SurfaceError, match=r"lacks column\(s\) \['mark_iv'\]"):
        surface_from_chain(one.drop(columns="mark_iv"))
    with pytest.raises(SurfaceError, match="load_options_chain"):
        surface_from_chain(one.reset_index())
    with pytest.raises(SurfaceError, match=r"weighting must be one of \['spread', 'vega', 'equal'\]"):
        surface_from_chain(one, weighting="oi")  # type: ignore[arg-type]
    with pytest.raises(SurfaceError, match="no expiry with a usable IV"):
        surface_from_chain(one, min_tau_hours=24 * 365)


# ---------------------------------------------------------------------------------------------------------------
# the built-in simulator's chain


@pytest.fixture(scope="module")
def sim_chain(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(days=2, seed=5), out_dir=out, with_trades=False)
    return load_options_chain(out / "options_chain.parquet").data


def test_simulated_chain_atm_and_skew(sim_chain: pd.DataFrame) -> None:
    """Fitted ATM IV = the chain's mark IV interpolated to the forward (quotes carry 0.5% noise); RR < 0."""
    stamps = sim_chain.index.unique()
    for stamp in stamps[[2, len(stamps) // 2, -1]]:
        surface = surface_from_chain(sim_chain, as_of=stamp)
        assert surface.snapshot == stamp and len(surface.taus) >= 7
        report = surface.check_arbitrage()
        assert report.arbitrage_free, report.summary()
        snap = sim_chain.loc[sim_chain.index == stamp]
        slices = zip(surface.expiries, surface.taus, surface.forwards, surface.fits, strict=True)
        for expiry, tau, forward, fit in slices:
            per_strike = snap[snap["expiration"] == expiry].groupby("strike_price")["mark_iv"].mean()
            chain_atm = np.interp(0.0, np.log(per_strike.index.to_numpy() / forward), per_strike.to_numpy())
            assert surface.iv(0.0, tau) == pytest.approx(chain_atm, rel=0.015), fit.label
            assert fit.rmse_iv < 0.01 * chain_atm, fit.label
        assert np.all(surface.risk_reversal_25d(surface.taus) < 0)


def _forced_regime_chain(regime: str, tmp_path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One simulator snapshot with the latent state pinned to a regime (log-variance at its mean, no IV noise),
    loaded as a file would be; and the model's exact ATM IV per listed expiry."""
    config = SimConfig()
    chain, params = build_chain(config), vol_params(config)
    stamp = pd.DatetimeIndex([pd.Timestamp("2026-01-05T12:00Z")])
    state = np.array([np.flatnonzero(chain.regime == REGIMES.index(regime))[0]])
    x, noise = np.array([params.mean]), np.zeros(1)
    raw = chain_snapshots(config, chain, params, stamp, np.array([60_000.0]), state, x, noise, np.random.default_rng(1))
    raw.to_parquet(tmp_path / f"{regime}.parquet")
    loaded = load_options_chain(tmp_path / f"{regime}.parquet").data
    expiries = pd.DatetimeIndex(sorted(loaded["expiration"].unique()))
    tenor_minutes = ((expiries - stamp[0]) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)
    return loaded, atm_implied_vol(config, chain, params, state, x, noise, tenor_minutes[None, :])[0]


def _true_rr(regime: str, atm: float, tau: float) -> float:
    """RR of the simulator's noise-free smile σ = atm (1 + skew z + curvature z²), z = k / (atm sqrt(tau))."""
    config = SimConfig().implied_vol
    skew, curvature, sd = config.skew[REGIMES.index(regime)], config.curvature, atm * np.sqrt(tau)

    def sigma(k: float) -> float:
        z = k / sd
        return atm * max(0.4, 1 + skew * z + curvature * z * z)

    def strike(d1: float) -> float:
        return brentq(lambda k: -k / (sigma(k) * np.sqrt(tau)) + sigma(k) * np.sqrt(tau) / 2 - d1, -3 * sd, 3 * sd)

    return sigma(strike(ndtri(0.25))) - sigma(strike(ndtri(0.75)))


def test_simulated_skew_matches_the_model_and_steepens_in_stress(tmp_path: Path) -> None:
    rr, atm = {}, {}
    for regime in ("normal", "stressed"):
        frame, true_atm = _forced_regime_chain(regime, tmp_path)
        surface = surface_from_chain(frame)
        assert surface.check_arbitrage().arbitrage_free
        np.testing.assert_allclose(surface.atm_term_structure(surface.taus), true_atm, atol=0.005)
        rr[regime] = surface.risk_reversal_25d(surface.taus)
        atm[regime] = true_atm
        expected = [_true_rr(regime, a, t) for a, t in zip(true_atm, surface.taus, strict=True)]
        np.testing.assert_allclose(rr[regime], expected, atol=0.01)
    assert np.all(rr["stressed"] < rr["normal"]) and np.all(rr["normal"] < 0)
    # steeper also per unit of ATM vol: the skew itself, not only the level, moves with the regime
    assert np.all(rr["stressed"] / atm["stressed"] < rr["normal"] / atm["normal"])


def test_check_arbitrage_finds_planted_arbitrage() -> None:
    """A second slice below the first (calendar) and a slice with g < 0 near its vertex (butterfly)."""
    first = SviParams(0.02, 0.1, -0.4, 0.0, 0.2)
    spiky = SviParams(0.0001, 0.5, 0.9, 0.0, 0.01)  # tiny variance at the vertex, steep right wing: g < 0
    assert np.min(svi_density_g(np.linspace(-0.1, 0.1, 2001), spiky)) < 0
    lower = first._replace(a=0.01)
    params = SviParams(*(np.array(v) for v in zip(first, lower, spiky, strict=True)))
    surface = VolSurface(taus=np.array([0.1, 0.2, 0.3]), params=params)
    report = surface.check_arbitrage()
    assert not report.calendar_free and not report.butterfly_free and not report.arbitrage_free
    assert report.min_dw_dtau[0] == pytest.approx(-0.01 / 0.1, rel=1e-9)  # w2 − w1 = −0.01 at every k
    assert report.min_g[0] > 0 and report.min_g[2] < 0
    assert report.min_g[2] == pytest.approx(np.min(svi_density_g(report.grid, spiky)), rel=1e-12)
    assert "min dw/dtau -0.1" in report.summary()


def test_surface_construction_errors() -> None:
    with pytest.raises(SurfaceError, match="strictly increasing"):
        VolSurface(taus=np.array([0.2, 0.1]), params=slice_params(TRUE, 0))
    with pytest.raises(SurfaceError, match=r"one value per tau \(2,\)"):
        VolSurface(taus=np.array([0.1, 0.2]), params=SviParams(*(np.zeros(3) for _ in range(5))))
    with pytest.raises(SurfaceError, match="Lee"):
        VolSurface(taus=np.array([0.1]), params=SviParams(0.01, 1.5, 0.5, 0.0, 0.1))
    with pytest.raises(SurfaceError, match="annualized decimal IV"):
        FlatSurface(0.0)
