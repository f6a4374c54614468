"""SPAN-style margin against a plain-Python loop over CME's 16 scenarios with QuantLib's Black formula."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.margin import (
    MarginConfig,
    SpanConfig,
    initial_margin_under_states,
    portfolio_margin,
    span_grid,
    span_margin,
    span_shocked_vols,
    span_vol_shocks,
)

SPOT = 60_000.0  # the books' default spot (conftest)
RANGE, VOL_RANGE = 0.15, 0.15  # documented defaults: 15% price scan range, 15 vol points

SHORT_CALL = [{"w": -1.0, "call": True, "k": SPOT, "days": 30, "iv": 0.6}]
HEDGED_STRANGLE = [
    {"w": -1.0, "call": True, "k": 66_000, "days": 14, "iv": 0.58},
    {"w": -1.0, "call": False, "k": 54_000, "days": 45, "iv": 0.66},
    {"w": 0.5, "call": True, "k": 75_000, "days": 45, "iv": 0.6},
    {"kind": "perp", "w": 0.2},
]


def reference(black, positions: list[dict], config: tuple = (RANGE, VOL_RANGE, 3.0, 0.35, 0.01, 1.1)) -> dict:
    """CME's scenario order by hand: (0, up), (0, down), (+1/3, up), ..., (-1, down), (+3, same), (-3, same)."""
    price_range, vol_range, multiple, extreme_weight, minimum, ratio = config
    scenarios = []
    for fraction in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0):
        scenarios += [(fraction * price_range, 1, 1.0), (fraction * price_range, -1, 1.0)]
    scenarios += [(multiple * price_range, 0, extreme_weight), (-multiple * price_range, 0, extreme_weight)]

    def value(p: dict, spot: float, direction: int) -> float:
        if p.get("kind", "option") != "option":
            return p["w"] * spot
        vol = max(p["iv"] + direction * vol_range, min(0.01, p["iv"]))
        return p["w"] * black(spot, p["k"], p["days"] / 365, vol, p.get("call", True))

    base = sum(value(p, SPOT, 0) for p in positions)
    losses = [w * (base - sum(value(p, SPOT * (1 + m), d) for p in positions)) for m, d, w in scenarios]
    sold = sum(-p["w"] for p in positions if p.get("kind", "option") == "option" and p["w"] < 0)
    maintenance = max(0.0, max(losses), minimum * SPOT * sold)
    return {
        "losses": losses,
        "maintenance": maintenance,
        "initial": ratio * maintenance,
        "minimum": minimum * SPOT * sold,
    }


@pytest.mark.parametrize("positions", [SHORT_CALL, HEDGED_STRANGLE], ids=["short_call", "hedged_strangle"])
def test_span_equals_hand_computation(positions, book_of, black) -> None:
    result = span_margin(book_of(positions))
    expected = reference(black, positions)
    assert result.model == "span"
    assert result.maintenance == pytest.approx(expected["maintenance"], rel=1e-9)
    assert result.initial == pytest.approx(expected["initial"], rel=1e-9)
    assert result.contingency == pytest.approx(expected["minimum"], rel=1e-12)
    np.testing.assert_allclose(result.losses["BTC"].to_numpy(), expected["losses"], rtol=1e-9, atol=1e-6)
    assert result.worst_scenario == result.losses.index[int(np.argmax(expected["losses"]))]


def test_short_atm_call_example(book_of, black) -> None:
    """1 short 30-day ATM call at 60,000, vol 60%: the +45% extreme move (35% of its loss) is the worst."""
    result = span_margin(book_of(SHORT_CALL))
    premium = black(SPOT, SPOT, 30 / 365, 0.6, True)
    extreme = 0.35 * (black(1.45 * SPOT, SPOT, 30 / 365, 0.6, True) - premium)
    up_range = black(1.15 * SPOT, SPOT, 30 / 365, 0.75, True) - premium
    assert extreme > up_range  # the 35%-weighted 3x move beats the full +15% move with vol up here
    assert result.worst_scenario == "+45% vol unchanged (extreme)"
    assert result.maintenance == pytest.approx(extreme, rel=1e-9)
    assert result.initial == pytest.approx(1.1 * extreme, rel=1e-9)


def test_short_option_minimum_binds_for_far_out_of_the_money_shorts(book_of, black) -> None:
    far_put = [{"w": -2.0, "call": False, "k": 20_000, "days": 7, "iv": 0.8}]
    result = span_margin(book_of(far_put))
    assert result.scan_risk < result.contingency == pytest.approx(0.01 * SPOT * 2, rel=1e-12)
    assert result.maintenance == result.contingency and result.initial == pytest.approx(1.1 * 1200.0, rel=1e-12)
    assert result.initial == pytest.approx(reference(black, far_put)["initial"], rel=1e-9)


def test_grid_is_cmes_sixteen_scenarios() -> None:
    grid = span_grid(SpanConfig())
    assert list(grid.labels) == [
        "+0% vol up", "+0% vol down", "+5% vol up", "+5% vol down", "-5% vol up", "-5% vol down",
        "+10% vol up", "+10% vol down", "-10% vol up", "-10% vol down", "+15% vol up", "+15% vol down",
        "-15% vol up", "-15% vol down", "+45% vol unchanged (extreme)", "-45% vol unchanged (extreme)",
    ]  # fmt: skip
    np.testing.assert_allclose(grid.loss_weight, [1.0] * 14 + [0.35, 0.35], rtol=0)
    np.testing.assert_allclose(span_vol_shocks(grid.vol_direction, SpanConfig()), [0.15, -0.15] * 7 + [0, 0])
    vols = span_shocked_vols(np.array([[0.6, 0.1, 0.005]]), np.ones(3), np.array([1, -1, 0]), SpanConfig())
    np.testing.assert_allclose(vols[0], [[0.75, 0.25, 0.155], [0.45, 0.01, 0.005], [0.6, 0.1, 0.005]], rtol=1e-15)


def test_long_option_maintenance_is_bounded_by_its_premium(book_of, black) -> None:
    for option in ({"w": 1.0, "call": True, "k": 62_000, "days": 30, "iv": 0.6}, {"w": 3.0, "call": False,
                   "k": 50_000, "days": 2, "iv": 0.9}):  # fmt: skip
        result = span_margin(book_of([option]))
        premium = option["w"] * black(SPOT, option["k"], option["days"] / 365, option["iv"], option["call"])
        assert result.contingency == 0.0 and 0.0 < result.maintenance <= premium * (1 + 1e-12)


def test_other_scan_ranges_and_the_spec_model_switch(book_of, black) -> None:
    config = SpanConfig(price_scan_range=0.1, vol_scan_range=0.3, extreme_multiple=2.0, extreme_weight=0.5,
                        short_option_minimum=0.02, initial_to_maintenance=1.35)  # fmt: skip
    book = book_of(HEDGED_STRANGLE)
    expected = reference(black, HEDGED_STRANGLE, (0.1, 0.3, 2.0, 0.5, 0.02, 1.35))
    assert span_margin(book, config).initial == pytest.approx(expected["initial"], rel=1e-9)
    via_model = portfolio_margin(book, MarginConfig(model="span", span=config))
    assert via_model.initial == span_margin(book, config).initial
    states = initial_margin_under_states(book, np.zeros(2), config=MarginConfig(model="span", span=config))
    assert states[0] == states[1] == via_model.initial
