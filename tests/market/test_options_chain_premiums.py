"""Option premiums come out of the loader in quote currency: coin premiums (Deribit, the simulator) are converted
with ``underlying_price``, and ``premium_units="auto"`` tells coin from quote currency by pricing the marks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.cli import main
from forecaster.errors import DataValidationError, UsageError
from forecaster.market import load_options_chain
from forecaster.market.simulator import SimConfig, SimulatedMarket, simulate
from forecaster.pricing import black76_price

PREMIUMS = ["mark_price", "bid_price", "ask_price", "last_price"]
YEAR_US = 365 * 86_400e6
# ETH options quoted in USD, written by hand: marks are Black-76 at mark_iv to the cent, bid/ask around them
USD_CHAIN = (
    "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,"
    "bid_price,ask_price,last_price,mark_price,mark_iv,underlying_price\n"
    """okx,ETH-31JAN25-3000-C,1735689600000000,1735689600000100,call,3000,1738310400000000,468.50,479.00,471.25,473.87,72.0,3350.5
okx,ETH-31JAN25-3000-P,1735689600000000,1735689600000200,put,3000,1738310400000000,126.00,133.50,,129.68,74.0,3350.5
okx,ETH-31JAN25-3400-C,1735689600000000,1735689600000300,call,3400,1738310400000000,235.00,244.00,240.10,239.52,68.0,3350.5
okx,ETH-31JAN25-3400-P,1735689600000000,1735689600000400,put,3400,1738310400000000,286.50,295.50,,290.95,68.5,3350.5
okx,ETH-31JAN25-3800-C,1735689600000000,1735689600000500,call,3800,1738310400000000,113.00,120.00,116.00,116.48,70.0,3350.5
okx,ETH-31JAN25-3800-P,1735689600000000,1735689600000600,put,3800,1738310400000000,564.00,575.00,,569.35,71.0,3350.5
"""
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedMarket, Path]:
    out = tmp_path_factory.mktemp("sim")
    market = simulate(SimConfig(days=1, seed=4), out_dir=out, with_trades=False)
    return market, Path(market.files["options_chain"])


@pytest.fixture
def deribit(fixture_path) -> Path:
    return fixture_path("deribit_options_chain.csv")


def _write(tmp_path: Path, text: str, name: str = "chain.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _premium_note(notes: tuple[str, ...]) -> str:
    (note,) = [n for n in notes if n.startswith("premiums (")]
    return note


def test_simulated_coin_premiums_become_black76_prices(simulated) -> None:
    market, path = simulated
    result = load_options_chain(path)
    chain, raw = result.data, market.options_chain
    assert raw is not None and len(chain) == len(raw)
    note = _premium_note(result.notes)
    assert "in coin, multiplied by underlying_price into quote currency (auto" in note
    assert "0 as coin" in note  # the simulator's marks are Black-76 at mark_iv exactly
    tau = (raw["expiration"] - raw["timestamp"]).to_numpy() / YEAR_US
    forward, strike, call = raw["underlying_price"].to_numpy(), raw["strike_price"].to_numpy(), raw["type"] == "call"
    model = black76_price(forward, strike, tau, raw["mark_iv"].to_numpy() / 100, call.to_numpy())
    np.testing.assert_allclose(chain["mark_price"].to_numpy(), model, rtol=1e-12)
    # bid/ask: coin prices floored/ceiled to a tick of 0.0001 coin, so within one tick x forward of their IV's price
    tick = market.config.chain.price_tick * forward
    for side, sign in (("bid", -1.0), ("ask", 1.0)):
        quoted = chain[f"{side}_price"].notna().to_numpy()
        at_iv = black76_price(forward, strike, tau, raw[f"{side}_iv"].to_numpy() / 100, call.to_numpy())
        gap = sign * (chain[f"{side}_price"].to_numpy() - at_iv)[quoted]
        assert (gap >= -1e-9 * forward[quoted]).all() and (gap <= tick[quoted] * (1 + 1e-9)).all()
    quoted = chain["bid_price"].notna()
    assert (chain.loc[quoted, "bid_price"] <= chain.loc[quoted, "mark_price"]).all()
    assert (chain["mark_price"] <= chain["ask_price"]).all()


def test_hand_written_quote_currency_chain_is_left_unchanged(tmp_path) -> None:
    path = _write(tmp_path, USD_CHAIN)
    result = load_options_chain(path)
    raw = pd.read_csv(io.StringIO(USD_CHAIN))
    for column in PREMIUMS:
        np.testing.assert_array_equal(result.data[column].to_numpy(), raw[column].to_numpy())
    note = _premium_note(result.notes)
    assert "in quote currency, kept as they are (auto" in note and "as quote currency" in note
    explicit = load_options_chain(path, premium_units="quote")
    pd.testing.assert_frame_equal(explicit.data, result.data)
    assert "(premium_units=quote)" in _premium_note(explicit.notes)


def test_explicit_units_skip_detection(deribit, tmp_path) -> None:
    auto = load_options_chain(deribit).data
    pd.testing.assert_frame_equal(load_options_chain(deribit, premium_units="coin").data, auto)
    # quote: the file's numbers are taken as they are, even when they are coin amounts
    raw = pd.read_csv(deribit)
    kept = load_options_chain(deribit, premium_units="quote").data
    np.testing.assert_array_equal(kept["mark_price"].to_numpy(), raw["mark_price"].to_numpy())
    # marks off mark_iv by a factor of 3 fail auto, but load when the units are given
    frame = raw.assign(mark_price=raw["mark_price"] * 3)
    path = tmp_path / "off.csv"
    frame.to_csv(path, index=False)
    data = load_options_chain(path, premium_units="coin").data
    np.testing.assert_allclose(data["mark_price"], frame["mark_price"] * frame["underlying_price"], rtol=1e-15)


def test_marks_that_fit_neither_units_fail_with_a_fix(deribit, tmp_path) -> None:
    raw = pd.read_csv(deribit)
    path = tmp_path / "off.csv"
    raw.assign(mark_price=raw["mark_price"] * 3).to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        load_options_chain(path)
    error = info.value
    assert error.file == str(path) and error.column == "mark_price"
    assert "within a factor of 2, in coin or in quote currency" in error.rule
    assert "1.1 as coin" in error.rule and "premium_units='coin' or 'quote'" in str(error)
    assert "--premium-units" in str(error)


def test_underlying_near_one_cannot_tell_coin_from_quote(tmp_path) -> None:
    # a chain on an underlying worth 1.2: coin and quote premiums differ by 20%, too close to call
    frame = pd.read_csv(io.StringIO(USD_CHAIN))
    scale = 1.2 / 3350.5
    frame = frame.assign(**{c: frame[c] * scale for c in [*PREMIUMS, "strike_price", "underlying_price"]})
    path = tmp_path / "near_one.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="coin and quote-currency premiums must be told apart"):
        load_options_chain(path)
    data = load_options_chain(path, premium_units="quote").data
    np.testing.assert_allclose(data["mark_price"], frame["mark_price"], rtol=1e-15)


def test_no_mark_to_compare(tmp_path) -> None:
    frame = pd.read_csv(io.StringIO(USD_CHAIN)).assign(mark_price=0.0)
    path = tmp_path / "no_marks.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="needs a row with a positive 'mark_price'"):
        load_options_chain(path)
    assert (load_options_chain(path, premium_units="coin").data["mark_price"] == 0).all()


def test_bad_premium_units_name_the_choices(deribit) -> None:
    with pytest.raises(UsageError, match="premium_units must be one of coin, quote, auto; got 'usd'"):
        load_options_chain(deribit, premium_units="usd")


def test_validate_passes_premium_units_through(deribit, tmp_path, capsys) -> None:
    report = tmp_path / "report.json"
    assert main(["validate", "--options", str(deribit), "--premium-units", "quote", "--json", str(report)]) == 0
    (summary,) = json.loads(report.read_text())["files"]
    assert any("(premium_units=quote)" in note for note in summary["notes"])
    assert "premiums (mark_price, bid_price, ask_price, last_price) in quote currency" in capsys.readouterr().out
    assert main(["validate", "--options", str(deribit), "--json", str(report)]) == 0  # default: auto
    (summary,) = json.loads(report.read_text())["files"]
    assert any("in coin, multiplied by underlying_price" in note for note in summary["notes"])
    assert main(["validate", "--options", str(deribit), "--premium-units", "usd"]) == 2
    assert "invalid choice: 'usd'" in capsys.readouterr().err
