"""The ``forecaster`` command: help, exit codes (0 ok, 2 bad input/usage, 1 internal), simulate and demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forecaster import cli


def test_help_is_instant_and_lists_commands() -> None:
    code = (
        "import sys; from forecaster.cli import main; main(['--help']); "
        "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", "forecaster --help must not import the heavy libraries"
    res = subprocess.run([sys.executable, "-m", "forecaster.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for name in ("demo", "simulate", "validate"):
        assert name in res.stdout


def test_no_command_prints_help(capsys) -> None:
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    res = subprocess.run([sys.executable, "-m", "forecaster.cli", "bogus"], capture_output=True, text=True)
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_simulate_writes_files_and_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sim"
    rc = cli.main(["simulate", "--days", "0.5", "--seed", "3", "--out", str(out), "--json", str(tmp_path / "s.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "simulated 0.5 days, 720 bars, seed 3" in printed and "trades per day" in printed
    for name in ("bars", "trades", "options_chain", "iv_index", "truth"):
        assert (out / f"{name}.parquet").is_file()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["bars"] == 720 and set(summary["regimes"]) == {"calm", "normal", "stressed"}


def test_simulate_csv_without_trades(tmp_path: Path) -> None:
    assert cli.main(["simulate", "--days", "0.2", "--out", str(tmp_path), "--format", "csv", "--no-trades"]) == 0
    assert (tmp_path / "bars.csv").is_file() and not (tmp_path / "trades.csv").exists()
    assert (tmp_path / "bars.csv").read_text().splitlines()[1].startswith("2026-01-01T00:01:00+0000")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["simulate", "--days", "-1"], "simulator.days: must be > 0"),
        (["simulate", "--freq", "7min"], "simulator.freq"),
        (["simulate", "--config", "no_such_spec"], "experiment spec 'no_such_spec' not found"),
        (["simulate", "--days", "1", "--format", "xlsx"], "invalid choice"),
        (["simulate"], "--out"),
    ],
)
def test_bad_usage_exits_2_with_message(tmp_path: Path, capsys, args: list[str], text: str) -> None:
    out = tmp_path / "out"
    full = args if args == ["simulate"] else [*args, "--out", str(out)]
    assert cli.main(full) == 2
    assert text in capsys.readouterr().err
    assert not out.exists()


def test_bad_spec_file_exits_2(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("simulator:\n  regimes:\n    ann_vol: [0.3, 0.5]\n")
    assert cli.main(["simulate", "--config", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(spec) in err and "simulator.regimes.ann_vol" in err and "one value per regime" in err


def test_internal_error_exits_1(monkeypatch, capsys, tmp_path: Path) -> None:
    import forecaster.commands.simulate as simulate_cmd

    def boom(args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(simulate_cmd, "run", boom)
    assert cli.main(["simulate", "--out", str(tmp_path)]) == 1
    assert "internal error" in capsys.readouterr().err


def test_demo_prints_summary(tmp_path: Path, capsys) -> None:
    assert cli.main(["demo", "--days", "1", "--out", str(tmp_path / "demo"), "--no-train", "--no-backtest"]) == 0
    out = capsys.readouterr().out
    for text in ("regime", "calm", "normal", "stressed", "ann vol", "trades per day", "option chain", "validated"):
        assert text in out
    # then the features (written beside the market) and the book: Greeks, margin and drift
    assert "features: 1,440 bars ×" in out and (tmp_path / "demo" / "features.parquet").is_file()
    for text in ("short-straddle book", "short-call", "margin (risk_matrix): initial", "its drift over 1440 bars"):
        assert text in out
    for metric in ("delta", "gamma", "vega", "pnl", "margin_initial"):
        assert f"\n{metric} " in out
    book = str(tmp_path / "demo" / "book.yaml")
    assert cli.main(["validate", "--portfolio", book, "--as-of", "2026-01-02T00:00:00Z"]) == 0


def test_demo_trains_evaluates_and_compares_the_models(tmp_path: Path, capsys, monkeypatch) -> None:
    """The demo's model part on a small spec (short windows, three models): train, register, compare."""
    import yaml

    from forecaster.config import resolve_spec_path

    values = yaml.safe_load(resolve_spec_path(None).read_text())
    values["features"]["windows"] = [60, 240, 1440]
    values["features"]["iv_percentile_days"] = 1
    values["horizons"] = [60, 240]
    values["evaluation"].update(embargo=240, refit_every=2880)
    values["models"] = {name: values["models"][name] for name in ("har", "lgbm_bars", "oracle")}
    values["models"]["har"]["windows"] = [60, 240, 1440]  # the benchmark pins its windows: the short ones here
    values["models"]["lgbm_bars"]["n_estimators"] = 50
    values["training"]["demo_models"] = ["har", "lgbm_bars", "oracle"]
    values["backtest"].update(model="har", train_days=5, demo_days=2)  # har reads the short windows above
    spec = tmp_path / "demo_small.yaml"
    spec.write_text(yaml.safe_dump(values))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["demo", "--config", str(spec), "--days", "1", "--train-days", "9", "--out", str(tmp_path / "demo")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "models: walk-forward training and evaluation" in out
    assert "registered 'lgbm_bars'" in out or "registered 'har'" in out
    assert "not registered: 'oracle'" in out
    assert (tmp_path / "demo" / "report.md").is_file() and (tmp_path / "demo" / "metrics.json").is_file()
    assert "open the MLflow UI" in out
    # it ends with the policy comparison on 2 backtested days
    assert "policies: hedge and margin policies on 2 simulated days" in out
    policies = json.loads((tmp_path / "demo" / "backtest.json").read_text())["policies"]
    assert {"none", "band", "ww", "predictive", "oracle"} <= set(policies)
    assert out.index("hedge policies (margin policy") > out.index("models took")


@pytest.mark.parametrize(
    ("command", "flag"), [("train", "--models"), ("evaluate", "--predictions"), ("tune", "--trials")]
)
def test_command_help_lists_the_commands_own_options(command: str, flag: str, capsys) -> None:
    assert cli.main([command, "--help"]) == 0
    assert flag in capsys.readouterr().out
