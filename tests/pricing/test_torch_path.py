"""The torch path of the pricing functions: equal to numpy, on every available device, and differentiable.

Devices: the CPU always, CUDA whenever ``torch.cuda.is_available()`` (the list is built at collection, so a GPU
machine runs the same tests there instead of skipping them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from forecaster.pricing import GREEKS, black76_greeks, black76_price, black_scholes_greeks, black_scholes_price

FloatArray = npt.NDArray[np.float64]
Values = Any  # python floats, numpy arrays or torch tensors
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
MODELS = ("black76", "black_scholes")
FIELDS = ("underlying", "strike", "tau", "sigma", "is_call", "rate", "dividend")


def domain(n: int, seed: int, z_max: float = 6.0) -> SimpleNamespace:
    """Seeded options: 1 day to 3 years, vol 5%..300%, ln(K/F) within ±z_max sd, rates -2%..10%. Shape: (n,)."""
    rng = np.random.default_rng(seed)
    tau = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    underlying = np.exp(rng.uniform(0.0, math.log(1e5), n))
    z = rng.uniform(-z_max, z_max, n)
    return SimpleNamespace(
        underlying=underlying,
        strike=underlying * np.exp(np.clip(z * sigma * np.sqrt(tau), -3.0, 3.0)),
        tau=tau,
        sigma=sigma,
        is_call=rng.random(n) < 0.5,
        rate=rng.uniform(-0.02, 0.10, n),
        dividend=rng.uniform(-0.02, 0.10, n),
    )


def evaluate(model: str, u: Values, k: Values, t: Values, s: Values, c: Values, r: Values, q: Values) -> dict:
    """Price and Greeks of either model, for numpy or torch inputs (in FIELDS order)."""
    if model == "black76":
        return {"price": black76_price(u, k, t, s, c, rate=r), **black76_greeks(u, k, t, s, c, rate=r)}
    kw = {"rate": r, "dividend": q}
    return {"price": black_scholes_price(u, k, t, s, c, **kw), **black_scholes_greeks(u, k, t, s, c, **kw)}


def price_fn(model: str) -> Callable[..., torch.Tensor]:
    if model == "black76":
        return lambda u, k, t, s, c, r, q: black76_price(u, k, t, s, c, rate=r)
    return lambda u, k, t, s, c, r, q: black_scholes_price(u, k, t, s, c, rate=r, dividend=q)


def on(device: str, d: SimpleNamespace) -> list[torch.Tensor]:
    """The fields as tensors on ``device`` (float64; is_call boolean), in FIELDS order."""
    return [torch.as_tensor(getattr(d, f), device=device) for f in FIELDS]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_torch_equals_numpy(device: str, model: str) -> None:
    """Every price and Greek, float64, to 1e-10 relative (measured worst on CPU: 1.7e-12), on the tensors' device."""
    d = domain(10_000, seed=5)
    expected = evaluate(model, *(getattr(d, f) for f in FIELDS))
    got = evaluate(model, *on(device, d))
    assert set(got) == {"price", *GREEKS}
    for name, value in got.items():
        assert isinstance(value, torch.Tensor) and value.device.type == device and value.dtype == torch.float64
        np.testing.assert_allclose(value.cpu().numpy(), expected[name], rtol=1e-10, atol=0.0, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_edge_inputs_match_numpy(device: str, model: str) -> None:
    """Expiry and zero vol (the branches that take intrinsic value and step delta) agree with numpy exactly enough."""
    ratio, tau, sigma = np.meshgrid([0.5, 1.0, 2.0], [0.0, 1e-12, 1.0], [0.0, 0.5, 1e3], indexing="ij")
    strike, t, s = (a.ravel() for a in (100.0 * ratio, tau, sigma))
    for is_call in (True, False):
        args = (100.0, strike, t, s, is_call, 0.05, 0.02)
        expected = evaluate(model, *args)
        got = evaluate(model, 100.0, torch.as_tensor(strike, device=device), *args[2:])
        for name, value in got.items():
            assert torch.isfinite(value).all(), name
            np.testing.assert_allclose(value.cpu().numpy(), expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_inputs_give_a_tensor_on_the_same_device(device: str) -> None:
    """One tensor among python floats and numpy arrays: the result is a tensor there, broadcast, equal to numpy."""
    forward = torch.tensor([90.0, 100.0, 110.0], dtype=torch.float64, device=device)
    strike, tau, is_call = 100.0, np.array([[0.25], [1.0]]), np.array([True, False, True])  # (2, 1) x (3,) -> (2, 3)
    price = black76_price(forward, strike, tau, 0.6, is_call, rate=0.03)
    greeks = black76_greeks(forward, strike, tau, 0.6, is_call, rate=0.03)
    expected_price = black76_price(forward.cpu().numpy(), strike, tau, 0.6, is_call, rate=0.03)
    expected_greeks = black76_greeks(forward.cpu().numpy(), strike, tau, 0.6, is_call, rate=0.03)
    for name, value in {"price": price, **greeks}.items():
        assert isinstance(value, torch.Tensor), name
        assert value.device == forward.device and value.dtype == torch.float64 and value.shape == (2, 3), name
    np.testing.assert_allclose(price.cpu().numpy(), expected_price, rtol=1e-12)
    for name in GREEKS:
        np.testing.assert_allclose(greeks[name].cpu().numpy(), expected_greeks[name], rtol=1e-12, err_msg=name)
    spot = torch.tensor(100.0, device=device)  # a float32 scalar tensor: the dtype and device the caller chose
    value = black_scholes_price(spot, np.array([90.0, 110.0]), 0.5, 0.4, [True, False], rate=0.01, dividend=0.02)
    assert value.device == spot.device and value.dtype == torch.float32 and value.shape == (2,)
    expected = black_scholes_price(100.0, np.array([90.0, 110.0]), 0.5, 0.4, [True, False], rate=0.01, dividend=0.02)
    np.testing.assert_allclose(value.cpu().numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", MODELS)
def test_autograd_greeks_equal_analytic(device: str, model: str) -> None:
    """pfhedge-style: autograd through the price gives delta, vega, theta; twice through it gamma, vanna, volga.

    Measured worst relative error on CPU: 4e-11 (first order), 1.1e-10 (second order); allowed 1e-9 and 1e-8.
    """
    d = domain(2_000, seed=6, z_max=4.0)
    u, k, t, s, c, r, q = on(device, d)
    for leaf in (u, t, s):
        leaf.requires_grad_(True)
    price = price_fn(model)(u, k, t, s, c, r, q)
    # each option depends only on its own inputs, so the gradient of the sum is the per-option derivative
    delta, dv_dtau, vega = torch.autograd.grad(price.sum(), (u, t, s), create_graph=True)
    gamma, vanna = torch.autograd.grad(delta.sum(), (u, s), retain_graph=True)
    (volga,) = torch.autograd.grad(vega.sum(), (s,))
    expected = evaluate(model, *(getattr(d, f) for f in FIELDS))
    autograd = {"delta": delta, "vega": vega, "theta": -dv_dtau, "gamma": gamma, "vanna": vanna, "volga": volga}
    for name, value in autograd.items():
        rtol = 1e-9 if name in ("delta", "vega", "theta") else 1e-8
        np.testing.assert_allclose(value.detach().cpu().numpy(), expected[name], rtol=rtol, err_msg=f"{model} {name}")
