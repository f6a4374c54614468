"""Risk-matrix margin against a plain-Python loop over the documented grid with QuantLib's Black formula."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import ndtr

from forecaster.margin import (
    MarginConfig,
    RiskMatrixConfig,
    SpanConfig,
    initial_margin_under_states,
    maintenance_from_initial,
    portfolio_margin,
    risk_matrix_grid,
    risk_matrix_margin,
    risk_matrix_shocked_vols,
    risk_matrix_vol_shocks,
    span_margin,
)
from forecaster.margin import scenarios as scenarios_module

SPOT = 60_000.0  # the books' default spot (conftest)
# The documented defaults, written out: 9 moves x (vol up, unchanged, down), then 4 extended moves with vol up.
MOVES = (-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16)
EXTENDED = (-0.66, -0.33, 0.5, 1.0)

SHORT_CALL = [{"w": -1.0, "call": True, "k": SPOT, "days": 30, "iv": 0.6}]
STRADDLE = [
    {"w": -1.0, "call": True, "k": SPOT, "days": 30, "iv": 0.6},
    {"w": -1.0, "call": False, "k": SPOT, "days": 30, "iv": 0.62},
]
MIXED = [  # a strangle over two expiries, a long wing, and a future: every branch of the grid is exercised
    {"w": -2.0, "call": True, "k": 66_000, "days": 7, "iv": 0.55},
    {"w": -1.5, "call": False, "k": 52_000, "days": 90, "iv": 0.7},
    {"w": 0.5, "call": False, "k": 45_000, "days": 0.3, "iv": 0.9},
    {"kind": "future", "w": 0.4},
]


def _reference_scenarios() -> list[tuple[float, int, float]]:
    grid = [(m, d, 1.0) for m in MOVES for d in (1, 0, -1)]
    return grid + [(m, 1, 0.16 / abs(m)) for m in EXTENDED]


def _shocked(iv: float, days: float, direction: int) -> float:
    scale = (30.0 / max(days, 1.0)) ** 0.3  # DTE floored at 1 day
    vol = {1: iv * (1 + 0.5 * scale), 0: iv, -1: iv * (1 - 0.25 * scale)}[direction]
    return max(vol, min(0.01, iv))


def _value(black, p: dict, spot: float, direction: int, iv_shift: float = 0.0) -> float:
    if p.get("kind", "option") != "option":
        return p["w"] * spot
    days = p["days"]
    vol = p["iv"] + iv_shift
    return p["w"] * black(spot, p["k"], days / 365, _shocked(vol, days, direction), p.get("call", True))


def reference(black, positions: list[dict], growth: float = 1.0, iv_shift: float = 0.0) -> dict:
    """Initial margin, summed over underlyings, and each underlying's weighted losses, by hand."""
    out: dict = {"initial": 0.0, "losses": {}, "contingency": 0.0}
    for name in dict.fromkeys(p.get("underlying", "BTC") for p in positions):
        mine = [p for p in positions if p.get("underlying", "BTC") == name]
        spot = mine[0].get("spot", SPOT) * growth
        base = sum(_value(black, p, spot, 0, iv_shift) for p in mine)
        losses = [
            weight * (base - sum(_value(black, p, spot * (1 + move), d, iv_shift) for p in mine))
            for move, d, weight in _reference_scenarios()
        ]
        sold = sum(-p["w"] for p in mine if p.get("kind", "option") == "option" and p["w"] < 0 and p["days"] > 0)
        out["losses"][name] = losses
        out["contingency"] += 0.01 * spot * sold
        out["initial"] += max(0.0, max(losses)) + 0.01 * spot * sold
    return out


@pytest.mark.parametrize("positions", [SHORT_CALL, STRADDLE, MIXED], ids=["short_call", "straddle", "mixed"])
def test_margin_equals_hand_computation(positions, book_of, black) -> None:
    result = risk_matrix_margin(book_of(positions))
    expected = reference(black, positions)
    assert result.initial == pytest.approx(expected["initial"], rel=1e-9)
    assert result.maintenance == pytest.approx(0.8 * expected["initial"], rel=1e-9)
    assert result.contingency == pytest.approx(expected["contingency"], rel=1e-12)
    np.testing.assert_allclose(result.losses["BTC"].to_numpy(), expected["losses"]["BTC"], rtol=1e-9, atol=1e-6)
    labels = [*(f"{m * 100:+.3g}% vol {w}" for m in MOVES for w in ("up", "unchanged", "down"))]
    labels += [f"{m * 100:+.3g}% vol up (extended)" for m in EXTENDED]
    assert list(result.losses.index) == labels
    assert result.worst_scenario == labels[int(np.argmax(expected["losses"]["BTC"]))]


def test_short_atm_call_example(book_of, black) -> None:
    """1 short 30-day ATM call, spot 60,000, vol 60%: the worst is +100% with vol up, weighted by 0.16."""
    result = risk_matrix_margin(book_of(SHORT_CALL))
    tau, premium = 30 / 365, black(SPOT, SPOT, 30 / 365, 0.6, True)
    # Closed-form Black-76 through ndtr at 120,000 with vol 0.6 x 1.5 (DTE = 30: the shock is exactly +50%).
    sd = 0.9 * math.sqrt(tau)
    d1 = (math.log(2.0) + 0.5 * sd * sd) / sd
    shocked_call = 2 * SPOT * ndtr(d1) - SPOT * ndtr(d1 - sd)
    expected = 0.16 * (shocked_call - premium) + 0.01 * SPOT
    assert result.initial == pytest.approx(expected, rel=1e-9)
    assert result.initial == pytest.approx(9545.876776, abs=1e-5)
    assert result.worst_scenario == "+100% vol up (extended)"


def test_delta_hedge_is_part_of_the_losses(book_of, black) -> None:
    sd = 0.6 * math.sqrt(30 / 365)
    hedge = float(ndtr(0.5 * sd))  # Black-76 call delta at the money
    hedged = [*SHORT_CALL, {"kind": "perp", "w": hedge}]
    result = risk_matrix_margin(book_of(hedged))
    assert result.initial == pytest.approx(reference(black, hedged)["initial"], rel=1e-9)
    assert result.initial < 0.6 * risk_matrix_margin(book_of(SHORT_CALL)).initial


def test_underlyings_are_margined_separately_and_summed(book_of, black) -> None:
    eth = [{**p, "underlying": "ETH", "spot": 3000.0, "k": p.get("k", 0) / 20} for p in STRADDLE]
    book = book_of(SHORT_CALL + eth)
    result = risk_matrix_margin(book)
    assert result.initial == pytest.approx(reference(black, SHORT_CALL + eth)["initial"], rel=1e-9)
    parts = [risk_matrix_margin(book_of(SHORT_CALL)).initial, risk_matrix_margin(book_of(eth)).initial]
    assert result.initial == pytest.approx(sum(parts), rel=1e-12)
    assert list(result.by_underlying.index) == ["BTC", "ETH"] and list(result.losses.columns) == ["BTC", "ETH"]
    np.testing.assert_allclose(result.by_underlying["initial"], parts, rtol=1e-12)
    assert result.by_underlying["initial"].sum() == pytest.approx(result.initial, rel=1e-12)


def test_margin_grows_with_short_size(book_of) -> None:
    sizes = [0.1, 0.5, 1.0, 2.0, 5.0]
    pure = [risk_matrix_margin(book_of([{**SHORT_CALL[0], "w": -s}])).initial for s in sizes]
    np.testing.assert_allclose(pure, np.array(sizes) * pure[2], rtol=1e-12)  # a pure short book scales linearly
    long_put = {"w": 1.0, "call": False, "k": 55_000, "days": 30, "iv": 0.65}
    collar = [risk_matrix_margin(book_of([long_put, {**SHORT_CALL[0], "w": -s}])).initial for s in [0, *sizes]]
    assert np.all(np.diff(collar) >= 0), collar
    straddles = [risk_matrix_margin(book_of([{**p, "w": -s} for p in STRADDLE])).initial for s in sizes]
    assert np.all(np.diff(straddles) > 0)


@pytest.mark.parametrize(
    "option",
    [
        {"w": 1.0, "call": True, "k": 60_000, "days": 30, "iv": 0.6},
        {"w": 2.0, "call": True, "k": 80_000, "days": 3, "iv": 0.8},
        {"w": 1.0, "call": False, "k": 40_000, "days": 180, "iv": 0.7},
        {"w": 0.5, "call": False, "k": 64_000, "days": 1, "iv": 0.5},
    ],
)
def test_long_option_margin_is_bounded_by_its_premium(option, book_of, black) -> None:
    result = risk_matrix_margin(book_of([option]))
    premium = option["w"] * black(SPOT, option["k"], option["days"] / 365, option["iv"], option["call"])
    assert result.contingency == 0.0
    # The worst case loses the whole premium (the option expires worthless); allow its last-bit rounding.
    assert 0.0 < result.initial <= premium * (1 + 1e-12)


def test_empty_and_linear_books(book_of) -> None:
    empty = risk_matrix_margin(book_of([]))
    assert (empty.initial, empty.maintenance, empty.worst_scenario) == (0.0, 0.0, "none")
    flat = risk_matrix_margin(book_of([{"kind": "perp", "w": 1.0}, {"kind": "spot", "w": -1.0}]))
    assert flat.initial == 0.0 and flat.worst_scenario == "none"
    # A linear position's weighted loss is 16% of its notional in the -16% move and in every extended move.
    long_perp = risk_matrix_margin(book_of([{"kind": "perp", "w": 1.0}]))
    assert long_perp.initial == pytest.approx(0.16 * SPOT, rel=1e-12)
    assert long_perp.losses["BTC"]["-16% vol up"] == pytest.approx(0.16 * SPOT, rel=1e-12)


def test_grid_and_vol_shocks() -> None:
    config = RiskMatrixConfig()
    grid = risk_matrix_grid(config)
    assert len(grid) == 31 and len(set(grid.labels)) == 31
    np.testing.assert_allclose(grid.loss_weight[-4:], [0.16 / 0.66, 0.16 / 0.33, 0.32, 0.16], rtol=1e-15)
    assert np.all(grid.loss_weight[:27] == 1.0) and np.all(grid.vol_direction[-4:] == 1)
    shocks = risk_matrix_vol_shocks(np.array([1, 0, -1]), np.array([30.0, 7.0, 1.0, 0.2]), config)
    scale = (30 / np.array([30.0, 7.0, 1.0, 1.0])) ** 0.3  # DTE 0.2 is floored at 1 day
    np.testing.assert_allclose(shocks, np.outer([0.5, 0.0, -0.25], scale), rtol=1e-15)
    assert shocks[0, 0] == 0.5 and shocks[2, 0] == -0.25
    # Vol floor: 2% vol shocked down at DTE 1 would be 0.6%: floored at 1 point. A vol already below the floor
    # (0.5%) stays where it is: the floor never raises a vol above its unshocked level.
    vols = risk_matrix_shocked_vols(np.array([[0.02, 0.005]]), np.array([1.0, 1.0]), np.array([-1, 1]), config)
    assert 0.02 * (1 - 0.25 * 30**0.3) < 0.01
    np.testing.assert_allclose(vols[0, 0], [0.01, 0.005], rtol=1e-15)
    np.testing.assert_allclose(vols[0, 1], [0.02 * (1 + 0.5 * 30**0.3), 0.005 * (1 + 0.5 * 30**0.3)], rtol=1e-15)


def test_option_expired_within_the_horizon_is_valued_at_intrinsic(book_of, black) -> None:
    # Expired short calls: K 65,000 out of the money loses 0.16 x (120,000 - 65,000) = 8,800 in the +100% move;
    # K 55,000 in the money loses 9,600 in every up move (its intrinsic is linear there); no contingency.
    for strike, expected in ((65_000.0, 8800.0), (55_000.0, 9600.0)):
        position = {"w": -1.0, "call": True, "k": strike, "days": 0.0, "iv": 0.6}
        result = risk_matrix_margin(book_of([position]))
        assert result.initial == pytest.approx(expected, rel=1e-12) and result.contingency == 0.0
    book = book_of(MIXED)
    aged = book.aged(1 / 365)  # the 0.3-day put expires within the day
    assert aged.tau[2] == 0.0
    states = initial_margin_under_states(book, np.zeros(1), tau=aged.tau)
    assert states[0] == risk_matrix_margin(aged).initial
    by_hand = [{**p, "days": max(p["days"] - 1, 0.0)} if "days" in p else p for p in MIXED]
    assert states[0] == pytest.approx(reference(black, by_hand)["initial"], rel=1e-9)


@pytest.mark.parametrize("model", ["risk_matrix", "span"])
def test_states_at_today_equal_the_single_state_margin(model: str, book_of) -> None:
    config = MarginConfig(model=model)
    rng = np.random.default_rng(3)
    wide = [
        {"w": rng.normal(), "call": bool(c), "k": 60_000 * math.exp(0.2 * rng.normal()), "days": d, "iv": v}
        for c, d, v in zip(rng.random(40) < 0.5, rng.uniform(1, 200, 40), rng.uniform(0.4, 1.0, 40), strict=True)
    ]
    for positions in (MIXED, [*wide, {"kind": "perp", "w": -3.0}]):
        book = book_of(positions)
        today = portfolio_margin(book, config).initial
        # One state: the very same computation, bit for bit.
        assert initial_margin_under_states(book, np.zeros(1), config=config)[0] == today
        # Inside a batch: BLAS may round a row's sum differently by its position, so allow the last bits.
        log_return = rng.normal(0.0, 0.05, 400)
        log_return[[0, 37, 398]] = 0.0
        states = initial_margin_under_states(book, log_return, config=config)
        np.testing.assert_allclose(states[[0, 37, 398]], today, rtol=1e-14, atol=0)


@pytest.mark.parametrize("model", ["risk_matrix", "span"])
def test_states_equal_margin_of_moved_books(model: str, book_of, black) -> None:
    config = MarginConfig(model=model)
    book = book_of(MIXED)
    log_return = np.array([-0.3, -0.05, 0.02, 0.15])
    shift = np.array([0.2, 0.05, -0.1, 0.0])
    states = initial_margin_under_states(book, log_return, shift, config=config)
    single = risk_matrix_margin if model == "risk_matrix" else span_margin
    part = config.risk_matrix if model == "risk_matrix" else config.span
    for m in range(log_return.size):
        moved = replace(book, spot=book.spot * np.exp(log_return[m]), iv=book.iv + shift[m])
        assert states[m] == pytest.approx(single(moved, part).initial, rel=1e-11)
    if model == "risk_matrix":
        growth = math.exp(log_return[1])
        assert states[1] == pytest.approx(reference(black, MIXED, growth, shift[1])["initial"], rel=1e-9)
    # The vols of every position per state (M, N) give the same as the shift (M,); positional as the drift engine
    full = initial_margin_under_states(book, log_return, book.iv + shift[:, None], book.tau, config)
    np.testing.assert_array_equal(full, states)


def test_states_are_chunked_without_changing_the_result(monkeypatch, book_of) -> None:
    book = book_of(MIXED)
    log_return = np.linspace(-0.2, 0.2, 11)
    whole = initial_margin_under_states(book, log_return)
    monkeypatch.setattr(scenarios_module, "CHUNK_ELEMENTS", 100)  # 100 // (31 x 3) = 1 state per chunk
    np.testing.assert_allclose(initial_margin_under_states(book, log_return), whole, rtol=1e-13)
    np.testing.assert_allclose(maintenance_from_initial(whole), 0.8 * whole, rtol=1e-15)
    span = MarginConfig(model="span", span=SpanConfig(initial_to_maintenance=1.25))
    assert maintenance_from_initial(10.0, span) == pytest.approx(8.0, rel=1e-15)


def test_a_large_negative_iv_shift_is_floored(book_of) -> None:
    book = book_of(SHORT_CALL)
    floored = initial_margin_under_states(book, np.zeros(1), np.array([-5.0]))
    at_floor = initial_margin_under_states(book, np.zeros(1), iv=np.array([[0.01]]))
    assert floored[0] == at_floor[0]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"log_return": np.zeros((2, 2))}, "log_return must be a finite array of shape (M,)"),
        ({"log_return": np.array([np.nan])}, "log_return must be a finite array"),
        ({"iv": np.ones((3, 4))}, "iv must have shape (2,) (a shift of every vol per state) or (2, 4)"),
        ({"iv": np.ones(4)}, "iv must have shape (2,)"),
        ({"iv": np.array([0.0, np.inf])}, "iv as a shift of the book's vols must be finite; got inf"),
        ({"tau": np.array([0.1, -0.01, 0.1, np.nan])}, "position p1: option tau must be a number of years >= 0"),
        ({"tau": np.ones(3)}, "tau must have shape (4,)"),
        (
            {"iv": np.array([[0.5, 0.2, 0.5, np.nan], [0.5, 0.0, 0.5, np.nan]])},
            "position p1: implied vol must be finite and > 0, got 0.0 in state 1",
        ),
    ],
)
def test_bad_state_inputs_say_what_and_how(kwargs, text, book_of) -> None:
    args = {"log_return": np.zeros(2), **kwargs}
    with pytest.raises(ValueError) as info:
        initial_margin_under_states(book_of(MIXED), args.pop("log_return"), **args)
    assert text in str(info.value)
