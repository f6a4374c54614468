"""A running ``forecaster serve`` picks up a promotion by ``forecaster retrain`` without a failed request: a client
keeps sending forecasts while the retrain registers version 2 and moves ``champion``; every answer is 200, the
served version goes from 1 to 2 once and never back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import yaml

from forecaster.config import load_spec, resolve_spec_path

FORECASTER = str(Path(sys.executable).parent / "forecaster")
SPEC = "retrain_serve_test"
KEY = "retrain-serve-test-key-0123456789"


def test_serve_swaps_to_the_promoted_champion_without_a_failed_request(tmp_path, monkeypatch, shuffled_targets):
    from forecaster.market.simulator import sim_config_from_spec
    from models.pyfunc import request_frame
    from training.data import simulated_market
    from training.retrain import retrain

    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = SPEC
    values["horizons"] = [30, 60]
    values["features"].update({"groups": ["realized"], "windows": [30, 60]})
    values["models"] = {"har": {"family": "har", "log": True, "windows": [30, 60]}}
    values["simulator"]["days"] = 6
    values["evaluation"].update({"embargo": 60})
    values["retrain"] = {"model": "har", "window_days": 3, "holdout_days": 1, "gate": {"coverage90": [0.3, 1.0]}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    for key, value in {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "FORECASTER_LOCK_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    spec = load_spec(str(tmp_path / "spec.yaml"))
    market, _ = simulated_market(
        sim_config_from_spec(spec.values, where=spec.path), with_chain=False, with_trades=False
    )
    day = pd.Timedelta(days=1)
    first = retrain(spec, market, as_of=market.index[0] + 4 * day, challenger_hook=shuffled_targets)
    assert first.decision == "promoted" and first.champion_version == "1"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FORECASTER_API_KEYS": KEY, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen(
        [FORECASTER, "serve", "--config", "spec.yaml", "--port", str(port), "--poll-seconds", "0.5",
         "--audit-log", str(tmp_path / "audit.jsonl")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        info = http.get("/v1/model").json()
        assert info["version"] == "1"
        frame = request_frame(market, int(info["min_rows"]), iv_units=info["iv_units"])
        body = {"bars": frame.to_dict("records")}

        def client() -> None:
            while not stop.is_set():
                sent = http.post("/v1/forecast", json=body)
                statuses.append(sent.status_code)
                if sent.status_code == 200:
                    versions.append(sent.json()["model"]["version"])

        thread = threading.Thread(target=client)
        thread.start()
        second = retrain(spec, market, as_of=market.index[0] + 5 * day)
        assert second.decision == "promoted" and second.champion_version == "2", second.reason
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not versions or versions[-1] != "2"):
            time.sleep(0.1)
        time.sleep(1.0)  # a little more traffic on version 2
        stop.set()
        thread.join(timeout=60)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=60)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}  # one swap, never back
