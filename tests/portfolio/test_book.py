"""Books from portfolios (forecaster.portfolio.book): arrays, YAML round trip, and the usage errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import UsageError
from forecaster.market import load_portfolio
from forecaster.market.portfolio_file import Limits, Portfolio, Position
from forecaster.portfolio import Book, book_from_portfolio

AS_OF = pd.Timestamp("2025-01-15T00:00:00Z")  # the conftest's valuation time
SPOTS = {"BTC": 60_000.0, "ETH": 3_000.0}
YAML_BOOK = """
positions:
  - {id: btc-c, instrument: option, underlying: BTC, option_type: call, strike: 65000,
     expiry: "2025-01-22T00:00:00Z", quantity: -3, multiplier: 0.1}
  - {id: btc-p, instrument: option, underlying: BTC, option_type: put, strike: 55000,
     expiry: "2025-02-14T08:00:00Z", quantity: 4}
  - {id: eth-c, instrument: option, underlying: ETH, option_type: call, strike: 3200,
     expiry: "2025-03-28T08:00:00Z", quantity: 25}
  - {id: perp, instrument: perp, underlying: BTC, quantity: 1.5}
  - {id: coins, instrument: spot, underlying: ETH, quantity: -10}
  - {id: fut, instrument: future, underlying: BTC, expiry: "2025-06-27T08:00:00Z", quantity: -2}
collateral: 100000
limits: {max_abs_delta: 20, max_order_size: 5}
"""


def test_book_arrays_from_portfolio(mixed_book: Book, positions: tuple[Position, ...], vols, spots) -> None:
    assert spots == SPOTS
    book = mixed_book
    assert len(book) == len(positions) and book.ids == tuple(p.id for p in positions)
    assert book.as_of == AS_OF and book.underlyings == ["BTC", "ETH"]
    assert book.instrument.tolist() == [p.instrument for p in positions]
    np.testing.assert_array_equal(book.weight, [p.quantity * p.multiplier for p in positions])
    np.testing.assert_array_equal(book.spot, [SPOTS[p.underlying] for p in positions])
    np.testing.assert_array_equal(book.is_call, [p.option_type == "call" for p in positions])
    days = np.array([np.nan if p.expiry is None else (p.expiry - AS_OF) / pd.Timedelta(days=1) for p in positions])
    np.testing.assert_allclose(book.tau, days / 365.0, rtol=1e-15)
    assert np.isnan(book.tau[[9, 10]]).all() and book.tau[11] == pytest.approx(160 / 365, rel=1e-15)
    strike = np.array([np.nan if p.strike is None else p.strike for p in positions])
    np.testing.assert_array_equal(book.strike, strike)
    # the vol source's smile, evaluated here independently: iv = atm + skew k + curve k² + term / sqrt(days)
    for i, p in enumerate(positions):
        if p.instrument != "option":
            assert np.isnan(book.iv[i])
            continue
        smile, k = vols[p.underlying], np.log(p.strike / SPOTS[p.underlying])
        expected = smile.atm + smile.skew * k + smile.curve * k * k + smile.term / np.sqrt(days[i])
        assert book.iv[i] == pytest.approx(expected, rel=1e-14)
    assert book.collateral == 150_000.0 and book.limits == Limits(max_abs_delta=50.0)
    assert book.expiry == tuple(p.expiry for p in positions)


def test_book_from_yaml_file(tmp_path, as_of: pd.Timestamp, flat_vol) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(YAML_BOOK)
    loaded = load_portfolio(path, as_of=as_of).data
    vols = {"BTC": flat_vol(0.6), "ETH": flat_vol(0.75)}
    book = book_from_portfolio(loaded, as_of=as_of, spot={"BTC": 60_000.0, "ETH": 3_000.0}, vols=vols)
    assert book.ids == ("btc-c", "btc-p", "eth-c", "perp", "coins", "fut")
    np.testing.assert_array_equal(book.weight, [-3 * 0.1, 4.0, 25.0, 1.5, -10.0, -2.0])
    np.testing.assert_array_equal(book.spot, [60_000.0, 60_000.0, 3_000.0, 60_000.0, 3_000.0, 60_000.0])
    np.testing.assert_array_equal(book.iv[:3], [0.6, 0.6, 0.75])
    assert np.isnan(book.iv[3:]).all() and np.isnan(book.strike[3:]).all()
    assert book.tau[0] == pytest.approx(7 / 365, rel=1e-15)
    assert book.tau[1] == pytest.approx((30 + 8 / 24) / 365, rel=1e-15)
    assert book.collateral == 100_000.0 and book.limits == Limits(20.0, 5.0)
    # the same positions given in code give the same book
    same = Portfolio(
        (
            Position("btc-c", "option", "BTC", -3, 0.1, "call", 65_000, pd.Timestamp("2025-01-22T00:00:00Z")),
            Position("btc-p", "option", "BTC", 4, 1.0, "put", 55_000, pd.Timestamp("2025-02-14T08:00:00Z")),
            Position("eth-c", "option", "ETH", 25, 1.0, "call", 3_200, pd.Timestamp("2025-03-28T08:00:00Z")),
            Position("perp", "perp", "BTC", 1.5),
            Position("coins", "spot", "ETH", -10),
            Position("fut", "future", "BTC", -2, expiry=pd.Timestamp("2025-06-27T08:00:00Z")),
        ),
        collateral=100_000.0,
        limits=Limits(20.0, 5.0),
    )
    other = book_from_portfolio(same, as_of=as_of, spot={"BTC": 60_000.0, "ETH": 3_000.0}, vols=vols)
    for name in ("weight", "strike", "tau", "iv", "spot"):
        np.testing.assert_array_equal(getattr(book, name), getattr(other, name))
    assert book.instrument.tolist() == other.instrument.tolist() and book.is_call.tolist() == other.is_call.tolist()


def test_single_underlying_takes_plain_spot_and_vol_source(as_of, make_option, flat_vol) -> None:
    positions = (make_option("c", "BTC", "call", 62_000, 10, 1), Position("p", "perp", "BTC", -0.5))
    plain = book_from_portfolio(Portfolio(positions, 0.0), as_of=as_of, spot=60_000.0, vols=flat_vol(0.5))
    mapped = book_from_portfolio(
        Portfolio(positions, 0.0), as_of=as_of, spot={"BTC": 60_000.0}, vols={"BTC": flat_vol(0.5)}
    )
    for name in ("weight", "strike", "tau", "iv", "spot"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(mapped, name))
    assert plain.iv[0] == 0.5


def test_linear_book_needs_no_vol_source(as_of: pd.Timestamp) -> None:
    positions = (Position("p", "perp", "BTC", 1.0), Position("s", "spot", "ETH", 3.0))
    book = book_from_portfolio(Portfolio(positions, 0.0), as_of=as_of, spot={"BTC": 6e4, "ETH": 3e3}, vols=None)
    assert np.isnan(book.iv).all() and not book.is_option.any()


BOTH = {"BTC": 0.5, "ETH": 0.7}


@pytest.mark.parametrize(
    ("spot", "levels", "words"),
    [
        ({"BTC": 60_000.0}, BOTH, ["spot", "'ETH'", "--spot", "have: BTC"]),
        (SPOTS, {"BTC": 0.5}, ["vol source", "'ETH'", "--options or --iv-index"]),
        (SPOTS, None, ["vol source", "'BTC'", "--options or --iv-index"]),
        (60_000.0, BOTH, ["2 underlyings", "BTC, ETH", "one spot", "--spot"]),
        (SPOTS, 0.5, ["2 underlyings", "one vol source", "mapping"]),
        ({"BTC": 60_000.0, "ETH": -1.0}, BOTH, ["spot of ETH", "> 0", "-1.0"]),
        ({"BTC": np.nan, "ETH": 3e3}, BOTH, ["spot of BTC", "nan"]),
        (SPOTS, {"BTC": 0.5, "ETH": 0.0}, ["eth-c-3d", "implied vol 0.0", "strike 3100"]),
        (SPOTS, {"BTC": 0.5, "ETH": np.nan}, ["eth-c-3d", "implied vol nan"]),
    ],
)
def test_missing_or_bad_market_inputs_are_usage_errors(portfolio, as_of, flat_vol, spot, levels, words) -> None:
    if isinstance(levels, dict):
        vols = {name: flat_vol(level) for name, level in levels.items()}
    else:
        vols = None if levels is None else flat_vol(levels)
    with pytest.raises(UsageError) as error:
        book_from_portfolio(portfolio, as_of=as_of, spot=spot, vols=vols)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("late", [pd.Timedelta(0), pd.Timedelta(hours=5)])
def test_expired_option_is_a_usage_error(as_of, make_option, flat_vol, late: pd.Timedelta) -> None:
    expired = Position("old", "option", "BTC", 1.0, 1.0, "call", 60_000, as_of - late)
    portfolio = Portfolio((make_option("live", "BTC", "put", 55_000, 3, 1), expired), 0.0)
    with pytest.raises(UsageError, match=r"position old: the option expired at .* at or before the valuation time"):
        book_from_portfolio(portfolio, as_of=as_of, spot=60_000.0, vols=flat_vol(0.5))


def test_naive_as_of_is_a_usage_error(portfolio: Portfolio, vols) -> None:
    with pytest.raises(UsageError, match="as_of must carry a time zone"):
        book_from_portfolio(portfolio, as_of=pd.Timestamp("2025-01-15 00:00"), spot=SPOTS, vols=vols)


def test_as_of_in_another_zone_is_the_same_instant(portfolio: Portfolio, vols) -> None:
    paris = AS_OF.tz_convert("Europe/Paris")
    book = book_from_portfolio(portfolio, as_of=paris, spot=SPOTS, vols=vols)
    reference = book_from_portfolio(portfolio, as_of=AS_OF, spot=SPOTS, vols=vols)
    np.testing.assert_array_equal(book.tau, reference.tau)


def test_select_and_aged(mixed_book: Book) -> None:
    eth = mixed_book.select(mixed_book.underlying == "ETH")
    assert eth.ids == ("eth-c-3d", "eth-p-30d", "eth-c-45d", "eth-spot") and eth.underlyings == ["ETH"]
    assert eth.expiry == tuple(mixed_book.expiry[i] for i in (6, 7, 8, 10))
    np.testing.assert_array_equal(eth.weight, mixed_book.weight[[6, 7, 8, 10]])
    later = mixed_book.aged(2 / 365)
    assert later.as_of == AS_OF + pd.Timedelta(days=2)
    option_tau = mixed_book.tau[mixed_book.is_option]
    np.testing.assert_allclose(later.tau[mixed_book.is_option], np.maximum(option_tau - 2 / 365, 0.0), rtol=1e-14)
    assert later.tau[0] == 0.0 and later.tau[1] == 0.0  # the 12-hour and 1-day options have expired
    assert np.isnan(later.tau[[9, 10]]).all()  # perp and spot have no expiry
    np.testing.assert_array_equal(later.iv, mixed_book.iv)
    with pytest.raises(dataclasses.FrozenInstanceError):
        later.collateral = 0.0  # type: ignore[misc]


def test_expired_future_is_a_usage_error(as_of, make_option, flat_vol) -> None:
    expired = Position("fut", "future", "BTC", 2.0, 1.0, expiry=as_of - pd.Timedelta(hours=1))
    portfolio = Portfolio((make_option("live", "BTC", "put", 55_000, 3, 1), expired), 0.0)
    with pytest.raises(UsageError, match=r"position fut: the future expired at .* at or before the valuation time"):
        book_from_portfolio(portfolio, as_of=as_of, spot=60_000.0, vols=flat_vol(0.5))
    live = Position("fut", "future", "BTC", 2.0, 1.0, expiry=as_of + pd.Timedelta(days=30))
    book = book_from_portfolio(Portfolio((live,), 0.0), as_of=as_of, spot=60_000.0, vols=None)
    assert book.tau[0] == pytest.approx(30 / 365, rel=1e-12)
