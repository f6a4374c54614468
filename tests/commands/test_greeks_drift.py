"""``forecaster greeks`` and ``forecaster drift`` end to end: the JSON against in-process references, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from forecaster import cli
from forecaster.config import resolve_spec_path
from forecaster.drift import HorizonForecast, drift_distribution
from forecaster.margin import margin_config_from_spec, portfolio_margin
from forecaster.market import load_iv_index, load_options_chain, load_portfolio
from forecaster.portfolio import book_from_portfolio, position_greeks, total_greeks
from forecaster.pricing.surface import flat_surface, surface_from_chain

BOOK = {
    "positions": [
        {"id": "sc", "instrument": "option", "underlying": "BTC", "option_type": "call", "strike": 62000,
         "expiry": "2026-01-30T08:00:00Z", "quantity": -5},
        {"id": "lp", "instrument": "option", "underlying": "BTC", "option_type": "put", "strike": 55000,
         "expiry": "2026-03-27T08:00:00Z", "quantity": 3, "multiplier": 2},
        {"id": "hedge", "instrument": "perp", "underlying": "BTC", "quantity": 1.5},
    ],
    "collateral": 250000,
}  # fmt: skip
GREEKS = ("delta", "gamma", "vega", "theta", "vanna", "volga")


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default spec with a 3-day simulated market (as of 2026-01-04 00:00 UTC)."""
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["simulator"]["days"] = 3
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, spec_path: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("market")
    assert cli.main(["simulate", "--config", str(spec_path), "--out", str(out), "--no-trades"]) == 0
    book = out / "book.yaml"
    book.write_text(yaml.safe_dump(BOOK))
    return {"dir": out, "book": book, "chain": out / "options_chain.parquet", "iv": out / "iv_index.parquet"}


def _run(args: list[str], tmp_path: Path) -> dict:
    target = tmp_path / "out.json"
    assert cli.main([*args, "--json", str(target)]) == 0
    return json.loads(target.read_text())


def test_greeks_from_a_chain_match_the_book_valued_in_process(files, spec_path, tmp_path, capsys) -> None:
    got = _run(["greeks", "--config", str(spec_path), "--portfolio", str(files["book"]), "--options",
                str(files["chain"])], tmp_path)  # fmt: skip
    printed = capsys.readouterr().out
    assert "by underlying and expiry bucket" in printed and "margin (risk_matrix)" in printed
    chain = load_options_chain(files["chain"]).data
    as_of = chain.index[-1]
    snapshot = chain.loc[chain.index == as_of]
    spot = float(snapshot.loc[snapshot["expiration"] == snapshot["expiration"].min(), "underlying_price"].median())
    book = book_from_portfolio(
        load_portfolio(files["book"], as_of=as_of).data,
        as_of=as_of,
        spot={"BTC": spot},
        vols={"BTC": surface_from_chain(snapshot)},
    )
    table = position_greeks(book)
    totals = total_greeks(table)
    assert got["as_of"] == as_of.isoformat() and got["spot"] == pytest.approx(spot, rel=1e-15)
    for name in GREEKS:
        assert got["greeks"][name] == pytest.approx(totals[name], rel=1e-12, abs=1e-9)
        assert sum(p[name] for p in got["positions"]) == pytest.approx(totals[name], rel=1e-12, abs=1e-9)
    margin = portfolio_margin(book, margin_config_from_spec(yaml.safe_load(spec_path.read_text())))
    assert got["margin"]["initial"] == pytest.approx(margin.initial, rel=1e-12)
    assert got["margin"]["maintenance"] == pytest.approx(0.8 * got["margin"]["initial"], rel=1e-12)
    hedge = next(p for p in got["positions"] if p["id"] == "hedge")
    assert hedge["delta_units"] == 1.5 and hedge["delta"] == pytest.approx(1.5 * spot) and hedge["gamma"] == 0


def test_greeks_from_an_iv_index_use_a_flat_surface_and_the_given_spot(files, spec_path, tmp_path) -> None:
    got = _run(["greeks", "--config", str(spec_path), "--portfolio", str(files["book"]), "--iv-index",
                str(files["iv"]), "--spot", "58000", "--margin-model", "span"], tmp_path)  # fmt: skip
    iv = load_iv_index(files["iv"]).data
    as_of = iv.index[-1]
    book = book_from_portfolio(
        load_portfolio(files["book"], as_of=as_of).data,
        as_of=as_of,
        spot={"BTC": 58000.0},
        vols={"BTC": flat_surface(float(iv.iloc[-1]))},
    )
    totals = total_greeks(position_greeks(book))
    assert got["spot"] == 58000.0 and got["margin"]["model"] == "span"
    for name in GREEKS:
        assert got["greeks"][name] == pytest.approx(totals[name], rel=1e-12, abs=1e-9)


def test_drift_with_a_zero_forecast_is_pure_time_decay(files, spec_path, tmp_path) -> None:
    chain = load_options_chain(files["chain"]).data
    as_of = chain.index[-1]
    zero = {"timestamp": [as_of.isoformat()], "horizon": [60], "model": ["zero"], "var": [0.0]}
    zero.update({f"q{q:02d}": [0.0] for q in (5, 25, 50, 75, 95)})
    preds = tmp_path / "preds.csv"
    pd.DataFrame(zero).to_csv(preds, index=False)
    spec = yaml.safe_load(spec_path.read_text())
    spec["drift"]["iv_change_stdev_daily"] = 0.0
    flat_spec = tmp_path / "no_iv_moves.yaml"
    flat_spec.write_text(yaml.safe_dump(spec))
    got = _run(["drift", "--config", str(flat_spec), "--portfolio", str(files["book"]), "--options",
                str(files["chain"]), "--horizon", "60", "--forecast", str(preds)], tmp_path)  # fmt: skip
    snapshot = chain.loc[chain.index == as_of]
    spot = float(snapshot.loc[snapshot["expiration"] == snapshot["expiration"].min(), "underlying_price"].median())
    book = book_from_portfolio(
        load_portfolio(files["book"], as_of=as_of).data, as_of=as_of, spot={"BTC": spot},
        vols={"BTC": surface_from_chain(snapshot)},
    )  # fmt: skip
    later = total_greeks(position_greeks(book.aged(60 / 525_600)))
    today = total_greeks(position_greeks(book))
    assert got["horizon"] == 60 and got["n_scenarios"] == 2048
    for name in ("delta", "gamma", "vega"):
        levels = [got[name][f"q{q:02d}"] for q in (5, 25, 50, 75, 95)]
        assert np.allclose(levels, later[name], rtol=1e-11, atol=1e-8), name
    assert got["pnl"]["q50"] == pytest.approx(later["value"] - today["value"], rel=1e-9)
    assert got["margin_initial"]["now"] > 0


def test_drift_on_the_simulated_market_uses_the_oracle(spec_path, files, tmp_path, capsys) -> None:
    got = _run(["drift", "--config", str(spec_path), "--portfolio", str(files["book"]), "--horizon", "240",
                "--scenarios", "512", "--seed", "3", "--plot", str(tmp_path / "fan.png")], tmp_path)  # fmt: skip
    assert "the simulator's oracle" in capsys.readouterr().out
    assert (tmp_path / "fan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert got["forecast"].startswith("the simulator's oracle") and got["n_scenarios"] == 512
    assert set(got) >= {"horizon", "quantiles", "delta", "gamma", "vega", "pnl", "margin_initial"}
    for metric in ("delta", "gamma", "vega", "pnl", "margin_initial"):
        levels = [got[metric][f"q{q:02d}"] for q in (5, 25, 50, 75, 95)]
        assert levels == sorted(levels) and levels[0] < levels[-1], metric


def test_drift_engine_matches_the_command_with_an_explicit_forecast(files, spec_path, tmp_path) -> None:
    """The command's numbers are the engine's: same book, forecast, seed and sampling."""
    chain = load_options_chain(files["chain"]).data
    as_of = chain.index[-1]
    row = {"timestamp": as_of.isoformat(), "horizon": 240, "model": "m", "var": 4e-4, "q05": 1e-4, "q25": 2.5e-4,
           "q50": 3.5e-4, "q75": 5e-4, "q95": 9e-4, "div_mean": 0.01}  # fmt: skip
    preds = tmp_path / "p.csv"
    pd.DataFrame([row]).to_csv(preds, index=False)
    args = ["--horizon", "240", "--forecast", str(preds), "--model", "m"]
    got = _run(["drift", "--config", str(spec_path), "--portfolio", str(files["book"]), "--options",
                str(files["chain"]), *args], tmp_path)  # fmt: skip
    snapshot = chain.loc[chain.index == as_of]
    spot = float(snapshot.loc[snapshot["expiration"] == snapshot["expiration"].min(), "underlying_price"].median())
    book = book_from_portfolio(
        load_portfolio(files["book"], as_of=as_of).data, as_of=as_of, spot={"BTC": spot},
        vols={"BTC": surface_from_chain(snapshot)},
    )  # fmt: skip
    forecast = HorizonForecast(
        horizon=240, bar_years=1 / 525_600, var=4e-4,
        rv_quantiles={0.05: 1e-4, 0.25: 2.5e-4, 0.5: 3.5e-4, 0.75: 5e-4, 0.95: 9e-4},
        div_mean=0.01, div_stdev=0.03 * np.sqrt(240 / 1440), spot_vol_corr=-0.4, rv_log_stdev=0.5,
    )  # fmt: skip
    ref = drift_distribution(book, forecast, n_scenarios=2048, seed=7, method="sobol")
    for metric in ("delta", "gamma", "vega", "pnl"):
        expected = ref.summary(metric)
        for key, value in expected.items():
            assert got[metric][key] == pytest.approx(value, rel=1e-12, abs=1e-8), (metric, key)


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ("two_underlyings", [], "split the portfolio per underlying"),
        ("none", ["--bars", "{dir}/bars.parquet"], "pass --options (a chain) or --iv-index"),
        ("none", ["--as-of", "2025-01-01T00:00:00Z"], "no option-chain snapshot at or before"),
        ("none", ["--spot", "-5"], "--spot must be a finite price > 0"),
        ("expired", [], "expired"),
    ],
)
def test_bad_inputs_exit_2_with_a_message(files, spec_path, tmp_path, capsys, change, extra, message) -> None:
    book = json.loads(json.dumps(BOOK))
    if change == "two_underlyings":
        book["positions"].append({"instrument": "perp", "underlying": "ETH", "quantity": 1})
    if change == "expired":
        book["positions"][0]["expiry"] = "2026-01-02T08:00:00Z"
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(book))
    data = ["--options", str(files["chain"])] if "--bars" not in extra else []
    args = ["greeks", "--config", str(spec_path), "--portfolio", str(path), *data]
    args += [a.format(dir=files["dir"]) for a in extra]
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_drift_forecast_file_errors(files, spec_path, tmp_path, capsys) -> None:
    preds = tmp_path / "p.csv"
    pd.DataFrame({"timestamp": ["2026-01-03T00:00:00Z"] * 2, "horizon": [60, 60], "model": ["a", "b"],
                  "var": [1e-4, 2e-4]}).to_csv(preds, index=False)  # fmt: skip
    base = ["drift", "--config", str(spec_path), "--portfolio", str(files["book"]), "--options", str(files["chain"])]
    assert cli.main([*base, "--horizon", "60", "--forecast", str(preds)]) == 2
    assert "several models (a, b); pick one with --model" in capsys.readouterr().err
    assert cli.main([*base, "--horizon", "240", "--forecast", str(preds), "--model", "a"]) == 2
    assert "no forecast for horizon 240" in capsys.readouterr().err
    pd.DataFrame({"timestamp": ["2026-01-03T00:00:00Z"], "horizon": [60], "var": [float("nan")]}).to_csv(
        preds, index=False
    )
    assert cli.main([*base, "--horizon", "60", "--forecast", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "p.csv" in err and "row 1" in err and "column 'var'" in err
