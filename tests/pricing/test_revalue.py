"""The revaluation kernel against its plain twin (``revalue_reference``, through black.py) and the definitions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest

from forecaster.pricing import black76_greeks, black76_price, revalue
from forecaster.pricing.revalue import OUTPUTS, revalue_reference

FloatArray = npt.NDArray[np.float64]


def book(n_scenarios: int, n_options: int, kind: str, sigma_by_scenario: bool, seed: int = 3) -> SimpleNamespace:
    """A seeded book with signed weights and scenario log moves.

    Shapes: (S,) log moves, (N,) options, sigma (N,) or (S, N) when ``sigma_by_scenario``.
    """
    rng = np.random.default_rng(seed)
    forward = np.exp(rng.uniform(math.log(1e3), math.log(1e5), n_options))
    tau = np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n_options))
    sigma = rng.uniform(0.2, 1.5, n_options)
    strike = forward * np.exp(rng.uniform(-2.0, 2.0, n_options) * sigma * np.sqrt(tau))
    is_call = {"calls": np.ones(n_options, bool), "puts": np.zeros(n_options, bool)}.get(
        kind, rng.random(n_options) < 0.5
    )
    if sigma_by_scenario:
        sigma = sigma * np.exp(rng.normal(0.0, 0.2, (n_scenarios, n_options)))  # (S, N): vol moves with the scenario
    return SimpleNamespace(
        log_return=rng.normal(0.0, 0.1, n_scenarios),
        forward=forward,
        strike=strike,
        tau=tau,
        sigma=sigma,
        is_call=is_call,
        weight=rng.normal(0.0, 5.0, n_options),
    )


def args(b: SimpleNamespace, weight: FloatArray | None = None) -> tuple:
    w = b.weight if weight is None else weight
    return (b.log_return, b.forward, b.strike, b.tau, b.sigma, b.is_call, w)


def gross(b: SimpleNamespace) -> dict[str, FloatArray]:
    """Σ |w · per-option quantity| per scenario: the size against which a signed book's totals cancel. Shape: (S,)."""
    absolute = revalue_reference(*args(b, np.abs(b.weight)))  # value, gamma, vega are >= 0 per option
    calls = revalue_reference(*args(b, np.abs(b.weight) * b.is_call))["delta"]  # a call's delta is >= 0
    puts = revalue_reference(*args(b, np.abs(b.weight) * ~b.is_call))["delta"]  # a put's is <= 0
    return {**absolute, "delta": calls - puts}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sigma_by_scenario", [False, True], ids=["sigma(N,)", "sigma(S,N)"])
@pytest.mark.parametrize("kind", ["calls", "puts", "mixed"])
@pytest.mark.parametrize("shape", [(500, 300), (1, 1), (3, 40_000)], ids=["5-blocks", "single", "row-per-block"])
def test_revalue_equals_reference(shape: tuple[int, int], kind: str, sigma_by_scenario: bool, threads: int) -> None:
    """Totals to 1e-12 of the book's gross size (measured worst: 1.1e-14), and 1e-10 of the net total (2.2e-12).

    Signed weights make totals cancel; the kernel prices calls as F N(d1) − K N(d2) and puts by parity, which
    round differently from black.py, so the error is relative to Σ|w·V|, not to the (smaller) net total.
    """
    b = book(*shape, kind, sigma_by_scenario)
    got, expected, size = revalue(*args(b), threads=threads), revalue_reference(*args(b)), gross(b)
    assert set(got) == set(OUTPUTS)
    for name in OUTPUTS:
        assert got[name].shape == (shape[0],) and np.isfinite(got[name]).all(), name
        np.testing.assert_array_less(np.abs(got[name] - expected[name]), 1e-12 * size[name] + 1e-300, err_msg=name)
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, err_msg=name)


def test_outputs_follow_their_definitions() -> None:
    """One option, no move: value V, delta F dV/dF, gamma F² d²V/dF², vega dV/dσ, all times the weight."""
    f, k, t, s, w = 60_000.0, 65_000.0, 0.25, 0.7, -3.0
    for is_call in (True, False):
        out = revalue(np.zeros(1), [f], [k], [t], [s], [is_call], [w])
        g = black76_greeks(f, k, t, s, is_call)
        assert out["value"][0] == pytest.approx(w * float(black76_price(f, k, t, s, is_call)), rel=1e-13)
        assert out["delta"][0] == pytest.approx(w * f * float(g["delta"]), rel=1e-13)
        assert out["gamma"][0] == pytest.approx(w * f**2 * float(g["gamma"]), rel=1e-13)
        assert out["vega"][0] == pytest.approx(w * float(g["vega"]), rel=1e-13)
    moved = revalue(np.array([math.log(1.1)]), [f], [k], [t], [s], [True], [1.0])  # the forward moves by +10%
    assert moved["value"][0] == pytest.approx(float(black76_price(1.1 * f, k, t, s, True)), rel=1e-13)


def test_default_threads_give_the_same_totals() -> None:
    b = book(500, 300, "mixed", True)
    single, default = revalue(*args(b), threads=1), revalue(*args(b))
    for name in OUTPUTS:
        np.testing.assert_array_equal(default[name], single[name], err_msg=name)  # blocks are the same either way


@pytest.mark.parametrize("bad", [(501, 300), (299,), (500, 299), (300, 500), (1, 500, 300)])
def test_sigma_of_the_wrong_shape_is_refused(bad: tuple[int, ...]) -> None:
    b = book(500, 300, "mixed", False)
    b.sigma = np.full(bad, 0.5)
    with pytest.raises(
        ValueError, match=rf"sigma must have shape \(300,\) or \(500, 300\); got \({', '.join(map(str, bad))},?\)"
    ):
        revalue(*args(b))
