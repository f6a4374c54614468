"""``forecaster features`` end to end: files in, feature table and targets out, groups skipped when an input is
missing, no NaN after the warm-up on simulated and real (NASDAQ daily) data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from arch.data import nasdaq as arch_nasdaq

from forecaster import cli
from forecaster.config import resolve_spec_path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-day simulated market on disk and a spec with short windows."""
    root = tmp_path_factory.mktemp("features")
    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["simulator"]["days"] = 3
    values["features"]["windows"] = [5, 60, 240]
    values["features"]["iv_percentile_days"] = 1
    spec = root / "small.yaml"
    spec.write_text(yaml.safe_dump(values))
    assert cli.main(["simulate", "--config", str(spec), "--out", str(root / "sim")]) == 0
    return {"spec": spec, "sim": root / "sim", "root": root}


def test_files_in_features_and_targets_out(small, tmp_path, capsys) -> None:
    sim = small["sim"]
    out, targets, summary = tmp_path / "f.parquet", tmp_path / "t.csv", tmp_path / "s.json"
    args = ["features", "--config", str(small["spec"]), "--bars", str(sim / "bars.parquet"), "--trades",
            str(sim / "trades.parquet"), "--iv-index", str(sim / "iv_index.parquet"), "--options",
            str(sim / "options_chain.parquet"), "--out", str(out),
            "--targets", str(targets), "--json", str(summary)]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "features in" in printed and "kept apart from the features" in printed
    frame = pd.read_parquet(out)
    info = json.loads(summary.read_text())
    assert list(frame.columns) == info["columns"] and len(frame) == info["rows"] == 3 * 1440
    assert set(info["groups"]) == {"realized", "implied", "volume", "flow", "calendar"} and info["skipped"] == {}
    assert not any(c.startswith(("rv_h", "div_h")) for c in frame.columns)  # no target among the features
    assert {"iv", "chain_atm_iv_30d", "chain_rr25_30d", "chain_vrp_240"} <= set(info["groups"]["implied"])
    after = frame.iloc[max(info["warmup"].values()) :]
    assert len(after) > 0 and not after.isna().any().any()
    t = pd.read_csv(targets, index_col=0)
    assert list(t.columns) == ["rv_h60", "rv_h240", "rv_h1440", "div_h60", "div_h240", "div_h1440"]
    assert t["rv_h60"].iloc[-60:].isna().all() and t["rv_h60"].iloc[:-60].notna().all()


def test_bars_alone_skip_the_groups_that_need_more(small, tmp_path, capsys) -> None:
    out, summary = tmp_path / "f.csv", tmp_path / "s.json"
    args = ["features", "--config", str(small["spec"]), "--bars", str(small["sim"] / "bars.parquet"),
            "--out", str(out), "--json", str(summary)]  # fmt: skip
    assert cli.main(args) == 0
    assert "flow      skipped: no trades input" in capsys.readouterr().out
    info = json.loads(summary.read_text())
    assert info["skipped"] == {"implied": "no iv or chain input", "flow": "no trades input"}
    assert set(info["groups"]) == {"realized", "volume", "calendar"}


def test_real_nasdaq_daily_has_no_nan_after_the_warmup(tmp_path) -> None:
    raw = arch_nasdaq.load()
    bars = tmp_path / "nasdaq.csv"
    raw.rename(columns=str.lower).rename_axis("date").to_csv(bars)
    out, summary = tmp_path / "f.parquet", tmp_path / "s.json"
    args = ["features", "--config", "daily_index", "--bars", str(bars), "--out", str(out), "--json", str(summary)]
    assert cli.main(args) == 0
    info = json.loads(summary.read_text())
    frame = pd.read_parquet(out)
    assert info["freq"] == "1 days 00:00:00" and len(frame) == len(raw)
    assert "hour_sin" not in frame.columns and "dow_sin" in frame.columns  # daily bars: weekday, no hour
    for column, rows in info["warmup"].items():
        values = frame[column].to_numpy()
        assert not np.isnan(values[rows:]).any(), column
    assert max(info["warmup"].values()) <= 2 * 22  # the longest: a 22-day change


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trades", "x.parquet", "--out", "f.parquet"], "--trades, --iv-index and --options need --bars"),
        (["--out", "f.txt"], "--out must name a .parquet or .csv file"),
    ],
)
def test_usage_errors(small, tmp_path, capsys, extra, message) -> None:
    assert cli.main(["features", "--config", str(small["spec"]), *extra]) == 2
    assert message in capsys.readouterr().err
