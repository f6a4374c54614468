"""``training.retrain``: the gate against the champion on one holdout, promotion with ``previous_champion``,
rollback, the same window twice, and the per-spec lock. A small spec (1-minute bars, windows of 30 and 60 bars,
horizons 30 and 60) on a 7-day simulated market; MLflow in a temporary SQLite store."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import yaml

from forecaster.config import load_spec, resolve_spec_path
from training.retrain import Gate, RetrainBusy, Scores, judge, retrain, rollback, spec_lock

SPEC = "retrain_test"
NAME = f"drift-forecaster-{SPEC}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from forecaster.market.simulator import sim_config_from_spec
    from training.data import simulated_market

    root = tmp_path_factory.mktemp("retrain")
    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = SPEC
    values["horizons"] = [30, 60]
    values["features"].update({"groups": ["realized"], "windows": [30, 60]})
    values["models"] = {"har": {"family": "har", "log": True, "windows": [30, 60]}}
    values["simulator"]["days"] = 7
    values["evaluation"].update({"embargo": 60})
    values["retrain"] = {
        "model": "har",
        "window_days": 3,
        "holdout_days": 1,
        "gate": {"min_qlike_improvement": 0.0, "coverage90": [0.5, 1.0], "max_latency_ms": 5000},
    }
    path = root / "retrain_test.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    spec = load_spec(str(path))
    market, _ = simulated_market(
        sim_config_from_spec(spec.values, where=spec.path), with_chain=False, with_trades=False
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mp.setenv("FORECASTER_LOCK_DIR", str(root / "locks"))
    yield spec, market, root
    mp.undo()


def _aliases():
    from mlflow import MlflowClient

    return {k: str(v) for k, v in MlflowClient().get_registered_model(NAME).aliases.items()}


def test_gate_promotion_worse_challenger_same_window_and_rollback(world, shuffled_targets):
    spec, market, _ = world
    day = pd.Timedelta(days=1)
    start = market.index[0]
    # 1. no champion: a deliberately bad model passes the absolute checks only, and becomes champion v1
    first = retrain(spec, market, as_of=start + 4 * day, challenger_hook=shuffled_targets)
    assert first.decision == "promoted" and "no champion yet" in first.reason
    assert _aliases() == {"champion": "1", "challenger": "1"}
    # 2. the same window again: nothing is done
    again = retrain(spec, market, as_of=start + 4 * day, challenger_hook=shuffled_targets)
    assert again.decision == "skipped" and "already retrained" in again.reason
    assert _aliases() == {"champion": "1", "challenger": "1"}
    # 3. a properly trained challenger on the next window beats it on QLIKE at every horizon: promoted
    better = retrain(spec, market, as_of=start + 5 * day)
    assert better.decision == "promoted", better.reason
    for h in ("h30", "h60"):
        assert better.metrics["challenger"][h]["qlike"] < better.metrics["champion"][h]["qlike"]
    assert _aliases() == {"champion": "2", "challenger": "2", "previous_champion": "1"}
    # 4. a deliberately worse challenger against the good champion: kept, aliases untouched, reason says why
    worse = retrain(spec, market, as_of=start + 6 * day, challenger_hook=shuffled_targets)
    assert worse.decision == "kept" and "QLIKE at h" in worse.reason
    assert worse.challenger_version is None and worse.champion_version == "2"
    assert _aliases() == {"champion": "2", "challenger": "2", "previous_champion": "1"}
    # 5. rollback swaps champion and previous_champion, and a second one undoes it
    assert rollback(SPEC) == ("1", "2")
    assert _aliases()["champion"] == "1" and _aliases()["previous_champion"] == "2"
    assert rollback(SPEC) == ("2", "1")
    # the JSON of DESIGN section 11
    assert set(worse.to_json()) >= {"decision", "reason", "champion_version", "challenger_version", "metrics"}


def test_a_second_retrain_of_the_spec_exits_while_the_first_holds_the_lock(world):
    spec, market, root = world
    with spec_lock(SPEC, root / "locks"):
        with pytest.raises(RetrainBusy, match="another retrain of spec 'retrain_test' is running"):
            retrain(spec, market, lock_folder=root / "locks")
    with spec_lock(SPEC, root / "locks"):  # released: taken again
        pass


def test_gate_checks_in_order():
    gate = Gate(min_qlike_improvement=0.05, coverage90=(0.85, 0.95), max_latency_ms=50)
    good = Scores({60: {"qlike": 1.0, "coverage90": 0.9, "n": 100}}, True, 10.0)
    champion = Scores({60: {"qlike": 1.1, "coverage90": 0.9, "n": 100}}, True, 10.0)
    assert judge(gate, good, champion, [60])[0] is True
    assert judge(gate, good, Scores({60: {"qlike": 1.02, "coverage90": 0.9, "n": 1}}, True, 1.0), [60])[0] is False
    assert "NaN or inf" in judge(gate, dataclasses.replace(good, finite=False), champion, [60])[1]
    wide = Scores({60: {"qlike": 1.0, "coverage90": 0.99, "n": 100}}, True, 10.0)
    assert "outside [0.85, 0.95]" in judge(gate, wide, champion, [60])[1]
    slow = dataclasses.replace(good, latency_ms=80.0)
    assert "over 50 ms" in judge(gate, slow, champion, [60])[1]
    promote, why = judge(gate, good, None, [60])
    assert promote and why.startswith("no champion yet")


def test_the_cli_decides_writes_the_json_and_exits_75_when_busy(world, tmp_path, monkeypatch, capsys):
    import json

    from forecaster.cli import main

    _, _, root = world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("FORECASTER_LOCK_DIR", str(tmp_path / "locks"))
    spec_path = str(root / "retrain_test.yaml")
    out = tmp_path / "retrain.json"
    assert main(["retrain", "--config", spec_path, "--days", "5", "--json", str(out)]) == 0
    decided = json.loads(out.read_text())
    assert decided["decision"] == "promoted" and decided["champion_version"] == "1"
    assert set(decided["metrics"]["challenger"]) >= {"h30", "h60", "finite", "latency_ms"}
    printed = capsys.readouterr().out
    assert "decision: promoted: no champion yet" in printed
    with spec_lock(SPEC, tmp_path / "locks"):
        assert main(["retrain", "--config", spec_path, "--days", "5"]) == 75
    assert "another retrain of spec" in capsys.readouterr().out
    assert main(["rollback", "--config", spec_path]) == 2  # no previous champion yet: a clear error, exit 2
    assert "no previous_champion alias" in capsys.readouterr().err
    replay = tmp_path / "replay.json"
    assert main(["retrain", "--config", spec_path, "--simulate-days", "2", "--json", str(replay)]) == 0
    days = json.loads(replay.read_text())
    assert len(days) == 2 and all(d["decision"] in ("promoted", "kept") for d in days)
    assert "simulating 6 days: the 2-day replay after a first full window" in capsys.readouterr().out


def test_if_drift_skips_a_stable_window_and_trains_on_a_drifted_one(world, tmp_path, monkeypatch):
    """The 7-day market of seed 7 is normal, stressed, then calm from day 3.6: the window ending on day 5 has a
    calm last day after normal and stressed days (median PSI 3.6), the one ending on day 7 a calm one after calm
    days (0.24)."""
    from mlflow import MlflowClient

    spec, market, _ = world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    start = market.index[0]
    stable = retrain(spec, market, as_of=start + pd.Timedelta(days=7), if_drift=True, lock_folder=tmp_path)
    assert stable.decision == "skipped" and stable.reason.startswith("no drift: median PSI")
    assert stable.metrics["drift"]["drifted"] is False and stable.metrics["drift"]["median_psi"] < 1.0
    logged = {a.path for a in MlflowClient().list_artifacts(stable.run_id)}
    assert {"drift.csv", "drift_psi.png"} <= logged
    drifted = retrain(spec, market, as_of=start + pd.Timedelta(days=5), if_drift=True, lock_folder=tmp_path)
    assert drifted.decision == "promoted" and drifted.metrics["drift"]["drifted"] is True
    assert drifted.metrics["drift"]["median_psi"] > 1.0
    # the stable window was not marked retrained: without --if-drift it trains
    assert retrain(spec, market, as_of=start + pd.Timedelta(days=7), lock_folder=tmp_path).decision != "skipped"


def test_simulate_days_charts_the_champion_by_day(world, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from training.retrain import simulate_days

    spec, market, _ = world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("FORECASTER_LOCK_DIR", str(tmp_path))
    results = simulate_days(spec, market, 3)
    assert results[0].decision == "promoted"  # day 1: no champion yet
    assert all(r.decision in ("promoted", "kept") for r in results)
    client = MlflowClient()
    parent = client.get_run(results[0].run_id).data.tags.get("mlflow.parentRunId")
    assert parent is not None and client.get_run(parent).data.tags["run_type"] == "simulate_retrain"
    history = client.get_metric_history(parent, "champion/qlike/rv/h30")
    assert [m.step for m in history] == [1, 2, 3] and all(m.value > 0 for m in history)
    assert [m.step for m in client.get_metric_history(parent, "decision")] == [1, 2, 3]
    with pytest.raises(Exception, match="needs 3 \\+ 9 days of data"):
        simulate_days(spec, market, 9)
