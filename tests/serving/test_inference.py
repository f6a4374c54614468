"""The steps between a request and the engines: the portfolio body checked exactly as a portfolio file is, the
IV the options are valued with, the horizon picked."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from forecaster.errors import DataValidationError, UsageError
from forecaster.market.portfolio_file import load_portfolio, portfolio_from_mapping
from serving.inference import last_iv, pick_horizon
from serving.schemas import Bar, BarTable

AS_OF = pd.Timestamp("2026-01-02T00:00:00Z")
GOOD = {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 1}], "collateral": 10}
BAD = [
    {"positions": [{"instrument": "option", "underlying": "BTC", "quantity": 1}], "collateral": 0},
    {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 0}], "collateral": 0},
    {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 1, "strike": 5}], "collateral": 0},
    {**GOOD, "collateral": -1},
    {**GOOD, "extra": 1},
    {
        "positions": [{"instrument": "future", "underlying": "BTC", "quantity": 1, "expiry": "2026-01-01T00:00:00Z"}],
        "collateral": 0,
    },
]


@pytest.mark.parametrize("document", BAD)
def test_a_body_breaks_the_same_rule_as_the_same_file(tmp_path, document):
    path = tmp_path / "book.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DataValidationError) as from_file:
        load_portfolio(path, as_of=AS_OF)
    with pytest.raises(DataValidationError) as from_body:
        portfolio_from_mapping(document, name="portfolio", as_of=AS_OF)
    assert (from_body.value.rule, from_body.value.row, from_body.value.column) == (
        from_file.value.rule,
        from_file.value.row,
        from_file.value.column,
    )
    assert str(from_body.value).startswith("portfolio")


def test_a_good_body_loads_as_the_file_does(tmp_path):
    path = tmp_path / "book.json"
    path.write_text(json.dumps(GOOD))
    assert portfolio_from_mapping(GOOD, as_of=AS_OF).data == load_portfolio(path, as_of=AS_OF).data
    with pytest.raises(DataValidationError, match="the top level must be a mapping"):
        portfolio_from_mapping([GOOD])


def _bars(*ivs):
    return BarTable.of_rows(
        [Bar(timestamp=i, open=1, high=1, low=1, close=1, volume=0, iv=iv) for i, iv in enumerate(ivs)]
    )


@pytest.mark.parametrize(
    ("units", "ivs", "expected"),
    [
        ("dec", (0.5, None, 0.6, None), 0.6),
        ("pct", (50.0, 61.0), 0.61),
        ("auto", (50.0, 62.0), 0.62),
        ("auto", (0.5, 0.63), 0.63),
        ("dec", (None, None), None),
    ],
)
def test_last_iv_in_the_model_units(units, ivs, expected):
    model = SimpleNamespace(config={"iv_units": units})
    assert last_iv(_bars(*ivs), model) == (pytest.approx(expected) if expected is not None else None)


def test_pick_horizon():
    model = SimpleNamespace(horizons=[60, 240, 1440])
    assert pick_horizon(None, model) == 60 and pick_horizon(1440, model) == 1440
    with pytest.raises(UsageError, match=r"pick one of \[60, 240, 1440\]"):
        pick_horizon(30, model)
