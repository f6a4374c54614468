"""Portfolio files, YAML and JSON (forecaster.market.portfolio_file)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from forecaster.errors import DataValidationError
from forecaster.market import Portfolio, Position, load_portfolio

BOOK = """
positions:
  - instrument: option
    underlying: BTC
    option_type: Call
    strike: 100000
    expiry: 2025-03-28T08:00:00Z
    quantity: -10
  - instrument: option
    underlying: BTC
    option_type: put
    strike: 90000
    expiry: "2025-01-31T08:00:00+00:00"
    quantity: 5
    multiplier: 0.1
  - {instrument: perp, underlying: BTC, quantity: 2.5}
  - {instrument: future, underlying: BTC, expiry: "2025-06-27T08:00:00Z", quantity: -1, id: hedge}
collateral: 250000
limits: {max_abs_delta: 5, max_order_size: 2}
"""
AS_OF = pd.Timestamp("2025-01-15T00:00:00Z")


def test_yaml_portfolio(write_file, untouched):
    result = load_portfolio(untouched(write_file("book.yaml", BOOK)), as_of=AS_OF)
    book = result.data
    assert isinstance(book, Portfolio) and len(book.positions) == 4
    first = book.positions[0]
    assert first == Position(
        id="1",
        instrument="option",
        underlying="BTC",
        quantity=-10.0,
        multiplier=1.0,
        option_type="call",
        strike=100000.0,
        expiry=pd.Timestamp("2025-03-28T08:00:00Z"),
    )
    assert book.positions[1].multiplier == 0.1
    assert book.positions[2].strike is None and book.positions[2].expiry is None
    assert book.positions[3].id == "hedge" and book.positions[3].expiry == pd.Timestamp("2025-06-27T08:00:00Z")
    assert book.collateral == 250000.0
    assert (book.limits.max_abs_delta, book.limits.max_order_size) == (5.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.quantity = 1.0  # type: ignore[misc]


def test_json_portfolio_equals_yaml(write_file):
    import yaml

    document = yaml.safe_load(BOOK)
    for position in document["positions"]:
        if "expiry" in position:
            position["expiry"] = pd.Timestamp(position["expiry"]).isoformat()
    from_json = load_portfolio(write_file("book.json", json.dumps(document)), as_of=AS_OF).data
    assert from_json == load_portfolio(write_file("book.yaml", BOOK), as_of=AS_OF).data


def test_limits_optional_and_naive_expiry_assumed_utc(write_file):
    text = "positions:\n  - {instrument: option, underlying: ETH, option_type: put, strike: 3000, "
    text += "expiry: '2025-03-28 08:00', quantity: 1}\ncollateral: 0\n"
    result = load_portfolio(write_file("book.yaml", text))
    assert result.data.limits.max_abs_delta is None
    assert result.data.positions[0].expiry == pd.Timestamp("2025-03-28T08:00:00Z")
    assert any("assumed UTC" in n for n in result.notes)


@pytest.mark.parametrize(
    ("old", "new", "row", "column", "rule"),
    [
        ("    strike: 100000\n", "", 1, "strike", "an option position needs 'strike'"),
        ("    quantity: -10", "    quantity: 0", 1, "quantity", "finite nonzero"),
        ("    quantity: -10", "    quantity: .nan", 1, "quantity", "finite nonzero"),
        ("    strike: 100000", "    strike: -5", 1, "strike", "'strike' must be a number > 0"),
        ("    strike: 100000", "    strike: lots", 1, "strike", "'strike' must be a number > 0"),
        ("    option_type: Call", "    option_type: straddle", 1, "option_type", "one of call, put"),
        ("    option_type: Call", "    optiontype: call", 1, "optiontype", "unknown key 'optiontype'"),
        (
            "instrument: perp, underlying: BTC,",
            "instrument: perp, strike: 1, underlying: BTC,",
            3,
            "strike",
            "a perp position must not have 'strike'",
        ),
        ("instrument: perp", "instrument: swap", 3, "instrument", "one of option, perp, spot, future"),
        ('expiry: "2025-06-27T08:00:00Z", ', "", 4, "expiry", "a future position needs 'expiry'"),
        ("    expiry: 2025-03-28T08:00:00Z", "    expiry: next friday", 1, "expiry", "ISO date-time"),
        ("id: hedge", "id: 2", 4, "id", "ids must be unique"),
        ("multiplier: 0.1", "multiplier: 0", 2, "multiplier", "'multiplier' must be a number > 0"),
    ],
    ids=[
        "option-without-strike",
        "zero-quantity",
        "nan-quantity",
        "negative-strike",
        "text-strike",
        "bad-option-type",
        "unknown-position-key",
        "perp-with-strike",
        "bad-instrument",
        "future-without-expiry",
        "bad-expiry",
        "duplicate-id",
        "zero-multiplier",
    ],
)
def test_position_errors_name_position_and_field(write_file, old, new, row, column, rule):
    assert old in BOOK
    with pytest.raises(DataValidationError) as info:
        load_portfolio(write_file("book.yaml", BOOK.replace(old, new, 1)), as_of=AS_OF)
    assert (info.value.row, info.value.column) == (row, column)
    assert rule in info.value.rule


@pytest.mark.parametrize(
    ("old", "new", "column", "rule"),
    [
        ("collateral: 250000", "collateral: -1", "collateral", "'collateral' must be a number ≥ 0"),
        ("collateral: 250000\n", "", "collateral", "'collateral' is required"),
        ("collateral: 250000", "collateral: 250000\ncurrency: USD", "currency", "allowed keys: positions"),
        ("max_order_size: 2", "max_order: 2", "max_order", "allowed keys: max_abs_delta, max_order_size"),
        ("max_abs_delta: 5", "max_abs_delta: 0", "max_abs_delta", "'limits.max_abs_delta' must be a number > 0"),
    ],
    ids=["negative-collateral", "no-collateral", "unknown-top-key", "unknown-limit", "zero-limit"],
)
def test_top_level_errors_name_the_key(write_file, old, new, column, rule):
    with pytest.raises(DataValidationError) as info:
        load_portfolio(write_file("book.yaml", BOOK.replace(old, new, 1)), as_of=AS_OF)
    assert info.value.column == column and rule in info.value.rule


def test_expired_option_in_a_live_portfolio(write_file):
    path = write_file("book.yaml", BOOK)
    with pytest.raises(DataValidationError, match="expired option in a live portfolio") as info:
        load_portfolio(path, as_of=pd.Timestamp("2025-02-01T00:00:00Z"))
    assert (info.value.row, info.value.column, info.value.count) == (2, "expiry", 1)
    # Expiring exactly at as-of is expired too; without as-of, expiries are not compared to a clock.
    with pytest.raises(DataValidationError):
        load_portfolio(path, as_of=pd.Timestamp("2025-01-31T08:00:00Z"))
    assert len(load_portfolio(path).data.positions) == 4


def test_repair_drops_expired_positions_and_reports_them(write_file):
    result = load_portfolio(write_file("book.yaml", BOOK), as_of=pd.Timestamp("2025-04-01T00:00:00Z"), repair=True)
    assert [p.instrument for p in result.data.positions] == ["perp", "future"]
    (action,) = result.repairs
    assert (action.count, action.rows_sample) == (2, (1, 2))


def test_as_of_must_be_tz_aware(write_file):
    with pytest.raises(ValueError, match="tz-aware"):
        load_portfolio(write_file("book.yaml", BOOK), as_of=pd.Timestamp("2025-01-01"))


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [
        ("book.yaml", "", "must not be empty"),
        ("book.yaml", "positions: [\n", "valid YAML"),
        ("book.json", '{"positions": [}', "valid JSON"),
        ("book.yaml", "- 1\n- 2\n", "top level must be a mapping"),
        ("book.yaml", "positions: {a: 1}\ncollateral: 1\n", "'positions' must be a list"),
    ],
    ids=["empty", "yaml-syntax", "json-syntax", "list", "positions-not-a-list"],
)
def test_file_level_errors(write_file, name, text, rule):
    path = write_file(name, text)
    with pytest.raises(DataValidationError, match=rule) as info:
        load_portfolio(path)
    assert info.value.file == str(path)


def test_empty_book_is_allowed(write_file):
    assert load_portfolio(write_file("book.yaml", "positions: []\ncollateral: 1000\n")).data.positions == ()
