"""Cash Greeks of a book (forecaster.portfolio.greeks) against QuantLib, finite differences and exact sums."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import QuantLib as ql

from forecaster.portfolio import (
    GREEK_COLUMNS,
    Book,
    aggregate_greeks,
    expiry_buckets,
    position_greeks,
    total_greeks,
)

YEAR = pd.Timedelta(days=365)


def quantlib_unit_greeks(forward: float, strike: float, tau: float, sigma: float, is_call: bool) -> dict[str, float]:
    """Per-unit Black-76 (undiscounted, forward = spot) from QuantLib's BlackCalculator.

    vanna and volga are central differences of QuantLib's vega in the forward and in the vol.
    """

    def calc(f: float, s: float) -> ql.BlackCalculator:
        kind = ql.Option.Call if is_call else ql.Option.Put
        return ql.BlackCalculator(ql.PlainVanillaPayoff(kind, strike), f, s * np.sqrt(tau), 1.0)

    c = calc(forward, sigma)
    hf, hs = 1e-5 * forward, 1e-5
    return {
        "price": c.value(),
        "delta": c.deltaForward(),
        "gamma": c.gammaForward(),
        "vega": c.vega(tau),
        "theta_per_day": c.thetaPerDay(forward, tau),  # forward = spot, no carry: theta / 365
        "vanna": (calc(forward + hf, sigma).vega(tau) - calc(forward - hf, sigma).vega(tau)) / (2 * hf),
        "volga": (calc(forward, sigma + hs).vega(tau) - calc(forward, sigma - hs).vega(tau)) / (2 * hs),
        "ql_vanna": c.vanna(forward, tau),
    }


def test_option_greeks_match_quantlib_in_cash_units(mixed_book: Book) -> None:
    table = position_greeks(mixed_book)
    assert table.index.tolist() == list(mixed_book.ids)
    for i in np.flatnonzero(mixed_book.is_option):
        s, w = mixed_book.spot[i], mixed_book.weight[i]
        q = quantlib_unit_greeks(s, mixed_book.strike[i], mixed_book.tau[i], mixed_book.iv[i], mixed_book.is_call[i])
        row = table.iloc[i]
        # closed forms to ~1e-9 (QuantLib prices as F N(d1) - K N(d2)); the finite differences to 1e-6
        assert row["price"] == pytest.approx(q["price"], rel=1e-9, abs=1e-9 * s)
        assert row["value"] == pytest.approx(w * q["price"], rel=1e-9, abs=1e-9 * s * abs(w))
        assert row["delta"] == pytest.approx(w * s * q["delta"], rel=1e-10, abs=1e-12 * s)
        assert row["delta_units"] == pytest.approx(w * q["delta"], rel=1e-10, abs=1e-12)
        assert row["gamma"] == pytest.approx(w * s * s * q["gamma"] / 100, rel=1e-10, abs=1e-12 * s)
        assert row["vega"] == pytest.approx(w * q["vega"] / 100, rel=1e-10, abs=1e-12 * s)
        assert row["theta"] == pytest.approx(w * q["theta_per_day"], rel=1e-10, abs=1e-12 * s)
        assert row["vanna"] == pytest.approx(w * s * q["vanna"] / 100, rel=1e-6, abs=1e-9 * s)
        assert row["volga"] == pytest.approx(w * q["volga"] / 1e4, rel=1e-6, abs=1e-9 * s)
        # QuantLib's closed-form vanna says the same (its volga(T) is off by a factor 1/√T in 1.44: not used)
        assert row["vanna"] == pytest.approx(w * s * q["ql_vanna"] / 100, rel=1e-9, abs=1e-12 * s)


def test_linear_positions_are_delta_one(mixed_book: Book) -> None:
    table = position_greeks(mixed_book)
    linear = table[~mixed_book.is_option]
    assert linear.index.tolist() == ["btc-perp", "eth-spot", "btc-fut"]
    np.testing.assert_array_equal(linear["price"], [60_000.0, 3_000.0, 60_000.0])
    np.testing.assert_array_equal(linear["delta"], [2.5 * 60_000.0, -12 * 3_000.0, -60_000.0])
    np.testing.assert_array_equal(linear["value"], linear["delta"])
    np.testing.assert_array_equal(linear["delta_units"], [2.5, -12.0, -1.0])
    assert (linear[["gamma", "vega", "theta", "vanna", "volga"]] == 0).all().all()


def book_value(book: Book) -> float:
    return float(position_greeks(book)["value"].sum())


def bumped(book: Book, *, spot: float = 1.0, iv: float = 0.0) -> Book:
    """All spots times ``spot`` (both underlyings move together), all vols plus ``iv``."""
    return replace(book, spot=book.spot * spot, iv=book.iv + iv)


def taylor_residual(book: Book, h: float) -> tuple[float, float]:
    """V(S (1 + h)) - V(S) - (D h + G/100 · (100 h)² / 2) in cash units (at h = 1%: D/100 + G/200), and the
    gamma term G/100 · (100 h)² / 2 itself."""
    totals = total_greeks(position_greeks(book))
    change = book_value(bumped(book, spot=1 + h)) - book_value(book)
    gamma_term = totals["gamma"] * 50 * h * h
    return change - totals["delta"] * h - gamma_term, gamma_term


def test_spot_bump_matches_second_order_taylor(mixed_book: Book) -> None:
    # Options with 7 days or more (σ√τ ≥ 0.08): at a 1% bump the O(h³) remainder is under 10% of the gamma
    # term, and it shrinks 8-fold when h halves (a wrong gamma scale would leave an O(h²) remainder).
    week = mixed_book.select(~(mixed_book.tau < 7 / 365))
    residual, gamma_term = taylor_residual(week, 0.01)
    assert abs(residual) < 0.1 * abs(gamma_term)
    assert 6.0 < residual / taylor_residual(week, 0.005)[0] < 10.0
    # The whole book holds a 12-hour option (σ√τ = 0.023): a 1% move is half its standard deviation, so the
    # cubic term is larger (under 30% of the gamma term) and the h³ decay shows at smaller bumps.
    residual, gamma_term = taylor_residual(mixed_book, 0.01)
    assert abs(residual) < 0.3 * abs(gamma_term)
    assert 6.0 < taylor_residual(mixed_book, 0.002)[0] / taylor_residual(mixed_book, 0.001)[0] < 10.0


def test_vol_and_time_bumps_match_vega_volga_vanna_theta(mixed_book: Book) -> None:
    table = position_greeks(mixed_book)
    totals = total_greeks(table)
    base = book_value(mixed_book)
    # ±0.1 vol point: central differences in vol points (volga is per point²), O(bump²) accurate
    up, down = book_value(bumped(mixed_book, iv=0.001)) - base, book_value(bumped(mixed_book, iv=-0.001)) - base
    assert (up - down) / 2 / 0.1 == pytest.approx(totals["vega"], rel=1e-4)
    assert (up + down) / 0.1**2 == pytest.approx(totals["volga"], rel=1e-4)
    # vanna: the change of cash delta per vol point
    dh = 1e-4
    delta_up = position_greeks(bumped(mixed_book, iv=dh))["delta"]
    delta_down = position_greeks(bumped(mixed_book, iv=-dh))["delta"]
    np.testing.assert_allclose((delta_up - delta_down) / (2 * dh) / 100, table["vanna"], rtol=1e-5, atol=1e-6)
    # theta: the value change over one minute, per position, scaled to one calendar day
    minute = 1 / (365 * 1440)
    live = mixed_book.is_option
    later = position_greeks(mixed_book.aged(minute))["value"] - position_greeks(mixed_book)["value"]
    np.testing.assert_allclose((later / minute / 365)[live], table["theta"][live], rtol=1e-3)
    assert (table["theta"][live] * np.sign(mixed_book.weight[live]) < 0).all()  # long options lose to time


def test_expired_options_are_worth_intrinsic_with_no_greeks(mixed_book: Book) -> None:
    later = mixed_book.aged(2 / 365)  # the 12-hour call and the 1-day put have expired
    table = position_greeks(later)
    expired = table.loc[["btc-c-1d", "btc-p-1d"]]
    np.testing.assert_array_equal(expired["price"], [max(60_000.0 - 61_000.0, 0.0), max(59_000.0 - 60_000.0, 0.0)])
    assert (expired[[*GREEK_COLUMNS, "delta_units"]] == 0).all().all()
    itm = replace(later, spot=later.spot * 1.05)
    expired = position_greeks(itm).loc[["btc-c-1d", "btc-p-1d"]]
    np.testing.assert_allclose(expired["value"], [-3 * (63_000.0 - 61_000.0), 0.0], rtol=1e-15)
    assert (expired[[*GREEK_COLUMNS, "delta_units"]] == 0).all().all()  # cash-settled: no delta left


def test_aggregation_sums_to_the_totals(mixed_book: Book) -> None:
    table = position_greeks(mixed_book)
    grouped = aggregate_greeks(table)
    assert grouped.index.tolist() == [
        ("BTC", "0-1d"),
        ("BTC", "1-7d"),
        ("BTC", "7-30d"),
        ("BTC", "30-90d"),
        ("BTC", "90d+"),
        ("BTC", "linear"),
        ("ETH", "1-7d"),
        ("ETH", "7-30d"),
        ("ETH", "30-90d"),
        ("ETH", "linear"),
    ]
    totals = total_greeks(table)
    for name in ("value", *GREEK_COLUMNS):
        assert grouped[name].sum() == pytest.approx(totals[name], rel=1e-13, abs=1e-9)
        # each group is the sum of its own positions, added here by hand
        for (underlying, bucket), value in grouped[name].items():
            rows = (table["underlying"] == underlying) & (table["bucket"] == bucket)
            assert value == pytest.approx(sum(table.loc[rows, name].tolist()), rel=1e-13, abs=1e-9)
    by_underlying = aggregate_greeks(table, by=("underlying",))
    assert by_underlying.index.tolist() == ["BTC", "ETH"]
    eth_units = table["delta_units"].iloc[[6, 7, 8, 10]].sum()
    assert by_underlying["delta_units"]["ETH"] == pytest.approx(eth_units, rel=1e-13)
    assert set(totals) == {"value", *GREEK_COLUMNS}


def test_buckets_of_the_book_at_exact_edges(mixed_book: Book) -> None:
    bucket = position_greeks(mixed_book)["bucket"]
    assert bucket.to_dict() == {
        "btc-c-1d": "0-1d",
        "btc-p-1d": "0-1d",  # exactly 1 day
        "btc-c-7d": "1-7d",  # exactly 7 days
        "btc-p-20d": "7-30d",
        "btc-c-90d": "30-90d",  # exactly 90 days
        "btc-p-200d": "90d+",
        "eth-c-3d": "1-7d",
        "eth-p-30d": "7-30d",  # exactly 30 days
        "eth-c-45d": "30-90d",
        "btc-perp": "linear",
        "eth-spot": "linear",
        "btc-fut": "90d+",  # a future has an expiry
    }


def test_expiry_buckets_edges_and_linear() -> None:
    days = np.array([1e-6, 1.0, 1.0 + 1e-6, 7.0, 7.01, 30.0, 30.5, 90.0, 90.0 + 1e-6, 400.0, np.nan])
    labels = expiry_buckets(days / 365.0)
    expected = ["0-1d", "0-1d", "1-7d", "1-7d", "7-30d", "7-30d", "30-90d", "30-90d", "90d+", "90d+", "linear"]
    assert labels.tolist() == expected
    assert labels.categories.tolist() == ["0-1d", "1-7d", "7-30d", "30-90d", "90d+", "linear"] and labels.ordered
    # the same edges through timestamps, as the book computes tau
    taus = [pd.Timedelta(days=d) / YEAR for d in (1, 7, 30, 90)]
    assert expiry_buckets(np.array(taus)).tolist() == ["0-1d", "1-7d", "7-30d", "30-90d"]


def test_custom_bucket_edges_hold_exact_days() -> None:
    # 3 days / 365 days * 365 = 2.9999999999999996 and 29 -> 29.000000000000004 in floating point
    taus = np.array([pd.Timedelta(days=d) / YEAR for d in (3, 29, 53, 54)])
    labels = expiry_buckets(taus, bucket_days=(3, 29, 53))
    assert labels.tolist() == ["0-3d", "3-29d", "29-53d", "53d+"]
    assert labels.categories.tolist() == ["0-3d", "3-29d", "29-53d", "53d+", "linear"]


@pytest.mark.parametrize("bucket_days", [(), (0.0, 7.0), (-1.0,), (7.0, 1.0), (1.0, 1.0), (1.0, np.nan), (1, np.inf)])
def test_bad_bucket_days(bucket_days) -> None:
    with pytest.raises(ValueError, match=r"bucket_days must be finite, positive and increasing days; got \["):
        expiry_buckets(np.array([0.1]), bucket_days)


def test_position_greeks_uses_custom_buckets(mixed_book: Book) -> None:
    table = position_greeks(mixed_book, bucket_days=(10.0,))
    expected = ["0-10d"] * 3 + ["10d+"] * 3 + ["0-10d"] + ["10d+"] * 2 + ["linear"] * 2 + ["10d+"]
    assert table["bucket"].tolist() == expected
