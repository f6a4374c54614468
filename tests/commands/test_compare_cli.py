"""``forecaster compare``: the models of the latest tracked run side by side, a report with the plots, exit 2 when
nothing is tracked. MLflow writes to a temporary SQLite store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from forecaster.cli import main
from forecaster.config import load_spec
from training.tracking import log_evaluation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HORIZONS = (60, 240)
SCORES = {  # per model: qlike, coverage90, (dm stat, dm p), oracle gap; the same at both horizons
    "oracle": (0.10, 0.90, (-4.0, 0.001), None),
    "har": (0.30, 0.89, None, None),
    "boost": (0.25, 0.80, (-2.0, 0.03), 0.75),
}


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    stamps = pd.date_range("2026-01-10", periods=40, freq="15min", tz="UTC")
    parts = []
    for name in SCORES:
        for h in HORIZONS:
            var = 1e-5 * h / 60 * np.exp(rng.normal(0, 0.3, stamps.size))
            frame = pd.DataFrame({"timestamp": stamps, "horizon": h, "model": name, "var": var})
            for column, factor in zip(("q05", "q25", "q50", "q75", "q95"), (0.3, 0.6, 0.9, 1.3, 2.5), strict=True):
                frame[column] = var * factor
            p = rng.dirichlet([3, 3, 1], stamps.size)
            frame[["p_calm", "p_normal", "p_stressed"]] = p
            frame["realized"] = var * np.exp(rng.normal(0, 0.5, stamps.size))
            frame["realized_class"] = rng.integers(0, 3, stamps.size).astype(float)
            frame["fold"] = np.repeat([0, 1], stamps.size // 2)
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _evaluation() -> dict:
    models, dm, gap = {}, {}, {}
    for name, (qlike, coverage, test, oracle_gap) in SCORES.items():
        models[name] = {f"h{h}": {"qlike": qlike, "coverage90": coverage, "n": 40} for h in HORIZONS}
        if test is not None:
            dm[name] = {f"h{h}": {"stat": test[0], "p": test[1]} for h in HORIZONS}
        if oracle_gap is not None:
            gap[name] = {f"h{h}": oracle_gap for h in HORIZONS}
    return {
        "horizons": list(HORIZONS),
        "test_start": "2026-01-10T00:00:00+00:00",
        "test_end": "2026-01-10T09:45:00+00:00",
        "benchmark": "har",
        "models": models,
        "dm_vs_har": dm,
        "oracle_gap": gap,
        "warnings": [],
    }


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    spec_file = tmp_path / "cmp_test.yaml"
    spec_file.write_text("name: cmp_test\nhorizons: [60, 240]\nfeatures:\n  windows: [60, 240]\n")
    return tmp_path, spec_file


def _log(spec_file: Path, *, plots: bool = True):
    fitted = {
        name: SimpleNamespace(family=name if name != "boost" else "lgbm", get_params=lambda: {"seed": 0})
        for name in SCORES
    }
    return log_evaluation(
        spec=load_spec(spec_file),
        command="train",
        evaluation=_evaluation(),
        predictions=_predictions(),
        fitted=fitted,
        calibrators=None,
        data_fingerprint="0123456789abcdef",
        plots=plots,
    )


def test_compare_prints_table_and_writes_report(store, capsys):
    tmp, spec_file = store
    _log(spec_file, plots=False)  # an older run without plots
    latest = _log(spec_file)
    report, summary = tmp / "out" / "report.md", tmp / "out" / "compare.json"
    code = main(["compare", "--config", str(spec_file), "--out", str(report), "--json", str(summary)])
    out = capsys.readouterr().out
    assert code == 0
    assert latest.run_id in out  # the latest run, not the older one
    header = next(line for line in out.splitlines() if line.startswith("model"))
    for column in ("qlike/rv/h60", "qlike/rv/h240", "coverage90/rv/h60", "dm_p/rv/h240", "oracle_gap/rv/h60"):
        assert column in header
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in SCORES}
    assert set(rows) == set(SCORES)
    assert "0.2500*" in rows["boost"] and "0.890*" in rows["har"] and "0.030*" in rows["boost"]
    assert "*" not in rows["oracle"]  # the physical limit is shown, never marked best

    text = report.read_text()
    assert "| boost | lgbm |" in text and "**0.2500**" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    # the parent's QLIKE chart, and per model 2 forecast-vs-realized, 1 calibration, 2 regime plots
    assert len(links) == 1 + len(SCORES) * 5
    for link in links:
        assert (report.parent / link).read_bytes()[:8] == PNG_MAGIC, link

    data = json.loads(summary.read_text())
    assert data["run_id"] == latest.run_id and data["spec"] == "cmp_test"
    assert data["best"]["qlike/rv/h60"] == "boost" and data["best"]["coverage90/rv/h240"] == "har"
    assert data["best"]["dm_p/rv/h60"] == "boost" and data["best"]["oracle_gap/rv/h240"] == "boost"
    assert data["models"]["har"]["metrics"]["dm_p/rv/h60"] is None
    assert "har has no dm_p/rv/h60 (null)" in data["warnings"]


def test_compare_html_from_a_child_run_id(store, capsys):
    tmp, spec_file = store
    logged = _log(spec_file)
    report = tmp / "report.html"
    code = main(["compare", "--config", str(spec_file), "--run-id", logged.children["har"], "--out", str(report)])
    assert code == 0 and logged.run_id in capsys.readouterr().out  # a child's id shows its parent run
    sources = re.findall(r"<img src='([^']+)'", report.read_text())
    assert len(sources) == 1 + len(SCORES) * 5
    assert all((tmp / s).is_file() for s in sources)


def test_compare_without_a_run_exits_2(store, capsys):
    tmp, spec_file = store
    assert main(["compare", "--config", str(spec_file)]) == 2
    err = capsys.readouterr().err
    assert "no tracked run of spec 'cmp_test'" in err and "forecaster train --config cmp_test" in err
    assert not (tmp / "mlflow.db").exists()  # looking did not create a store

    other = tmp / "other.yaml"
    other.write_text("name: other_spec\n")
    _log(spec_file, plots=False)
    assert main(["compare", "--config", str(other)]) == 2
    assert "no experiment 'other_spec'" in capsys.readouterr().err
    assert main(["compare", "--config", str(spec_file), "--run-id", "f" * 32]) == 2
    assert "is not in the tracking store" in capsys.readouterr().err
    assert main(["compare", "--config", str(spec_file), "--out", str(tmp / "report.pdf")]) == 2


def test_compare_arguments_import_no_mlflow():
    """Registering the command and its arguments stays cheap: MLflow is imported only when it runs."""
    script = (
        "import argparse, sys; from forecaster.cli import COMMANDS, _command_module; "
        "parser = argparse.ArgumentParser(); _command_module('compare').add_arguments(parser); parser.print_help(); "
        "print('compare' in COMMANDS, 'mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--run-id" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "True False"


def test_compare_writes_a_report_at_a_relative_path(store, capsys, monkeypatch):
    """``--out demo_out/report.md`` (relative, as the demo passes it): the plot links are relative to the report."""
    tmp, spec_file = store
    _log(spec_file)
    monkeypatch.chdir(tmp)
    assert main(["compare", "--config", str(spec_file), "--out", "rel/report.md"]) == 0
    report = tmp / "rel" / "report.md"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())
    assert links and all(not link.startswith("/") and (report.parent / link).is_file() for link in links)
