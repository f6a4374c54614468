"""Black-76 against put-call parity, finite differences and limits."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.pricing import black76_greeks, black76_price

RNG = np.random.default_rng(0)
F = RNG.uniform(20_000, 100_000, 200)
K = F * np.exp(RNG.uniform(-0.6, 0.6, 200))
T = RNG.uniform(1 / 365, 1.0, 200)
S = RNG.uniform(0.2, 1.5, 200)


def test_put_call_parity() -> None:
    np.testing.assert_allclose(black76_price(F, K, T, S, True) - black76_price(F, K, T, S, False), F - K, atol=1e-7)


def test_known_value() -> None:
    # ATM: C = F (2 N(sigma sqrt(T) / 2) - 1); for sigma sqrt(T) = 0.2, N(0.1) = 0.539827837277...
    assert black76_price(100.0, 100.0, 1.0, 0.2, True) == pytest.approx(100 * (2 * 0.5398278372770290 - 1), rel=1e-12)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences(is_call: bool) -> None:
    g = black76_greeks(F, K, T, S, is_call)
    hf, hs, ht = F * 1e-4, 1e-4, 1e-6

    def p(f=F, s=S, t=T):
        return black76_price(f, K, t, s, is_call)

    np.testing.assert_allclose(g["delta"], (p(f=F + hf) - p(f=F - hf)) / (2 * hf), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(g["gamma"], (p(f=F + hf) - 2 * p() + p(f=F - hf)) / hf**2, rtol=1e-3, atol=1e-10)
    np.testing.assert_allclose(g["vega"], (p(s=S + hs) - p(s=S - hs)) / (2 * hs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g["theta"], -(p(t=T + ht) - p(t=T - ht)) / (2 * ht), rtol=1e-4, atol=1e-4)
    vega = lambda f: black76_greeks(f, K, T, S, is_call)["vega"]  # noqa: E731
    np.testing.assert_allclose(g["vanna"], (vega(F + hf) - vega(F - hf)) / (2 * hf), rtol=1e-4, atol=1e-8)
    vega_s = lambda s: black76_greeks(F, K, T, s, is_call)["vega"]  # noqa: E731
    np.testing.assert_allclose(g["volga"], (vega_s(S + hs) - vega_s(S - hs)) / (2 * hs), rtol=1e-4, atol=1e-4)


def test_delta_limits() -> None:
    deep = black76_greeks(100.0, np.array([1.0, 10_000.0]), 0.1, 0.5, True)["delta"]
    np.testing.assert_allclose(deep, [1.0, 0.0], atol=1e-12)
    put = black76_greeks(100.0, np.array([1.0, 10_000.0]), 0.1, 0.5, False)["delta"]
    np.testing.assert_allclose(put, [0.0, -1.0], atol=1e-12)
