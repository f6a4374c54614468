"""The tracking-server deployment (issue: scale-out): a real ``mlflow server`` on loopback with a PostgreSQL backend
store (a fresh database) and an artifact root, ``forecaster train`` against ``MLFLOW_TRACKING_URI=http://...``
registering its champion, the MLflow UI in headless Chromium listing the runs with the shared metric names (a DOM
check), and ``forecaster serve`` loading that champion from the server. Skipped, saying why,
only where no PostgreSQL server answers (``FORECASTER_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from forecaster.config import resolve_spec_path

PG = os.environ.get("FORECASTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent
KEY = "mlflow-server-test-key-0123456789"


def _admin():
    """A psycopg connection to the server's maintenance database, autocommit (CREATE/DROP DATABASE); None if none."""
    try:
        import psycopg

        return psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except Exception:
        return None


_probe = _admin()
pytestmark = pytest.mark.skipif(_probe is None, reason=f"no PostgreSQL server reachable at {PG} (or no psycopg)")
if _probe is not None:
    _probe.close()


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[:3]} exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=3).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready after {timeout} s: {log.read_text()[-3000:]}")


@pytest.fixture
def tracking_server(tmp_path):
    """``mlflow server`` on a fresh PostgreSQL database, artifacts under tmp_path; yields its URL."""
    database = f"mlflow_test_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    admin.execute(f'CREATE DATABASE "{database}"')
    backend = PG.rsplit("/", 1)[0] + f"/{database}"
    port, log = _port(), tmp_path / "mlflow-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination",
             str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/health", server, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def test_train_registers_on_the_server_and_serve_loads_the_champion_from_it(tracking_server, tmp_path):
    values = yaml.safe_load(resolve_spec_path("sim_intraday").read_text())
    values["name"] = "server_pg_test"
    values["horizons"] = [30, 60]
    values["features"].update({"groups": ["realized"], "windows": [30, 60]})
    values["models"] = {"har": {"family": "har", "log": True, "windows": [30, 60]}}
    values["training"]["days"] = 4
    values["evaluation"].update({"embargo": 60, "max_folds": 2})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server, "OMP_WAIT_POLICY": "PASSIVE"}
    trained = subprocess.run(
        [str(BIN / "forecaster"), "train", "--config", "spec.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "registered 'har' as drift-forecaster-server_pg_test version 1" in trained.stdout

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    aliases = client.get_registered_model("drift-forecaster-server_pg_test").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "1", "challenger": "1"}
    runs = client.search_runs([client.get_experiment_by_name("server_pg_test").experiment_id])
    assert any("qlike/rv/h30" in r.data.metrics for r in runs)  # the shared metric names, on the server

    _the_ui_lists_the_runs_and_metrics(tracking_server, runs[0].info.experiment_id, [r.info.run_id for r in runs])

    port, log = _port(), tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen(
            [str(BIN / "forecaster"), "serve", "--config", "spec.yaml", "--port", str(port), "--poll-seconds", "0",
             "--audit-log", str(tmp_path / "audit.jsonl")],
            cwd=tmp_path, env={**env, "FORECASTER_API_KEYS": KEY}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/readyz", serve, log)
        info = httpx.get(f"http://127.0.0.1:{port}/v1/model", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert info["name"] == "drift-forecaster-server_pg_test" and info["version"] == "1"
        assert info["source_uri"] == "models:/drift-forecaster-server_pg_test@champion"
    finally:
        serve.terminate()
        serve.wait(timeout=60)


def _visible_text(html_text: str) -> str:
    import html
    import re

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html_text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


def _dump_dom(url: str) -> str:
    """The page's visible text once headless Chromium has run its JavaScript (which fetches from the server)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: .ci/run installs Debian's chromium (apt-get install chromium)"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return _visible_text(done.stdout)


def _the_ui_lists_the_runs_and_metrics(server: str, experiment_id: str, run_ids: list[str]) -> None:
    """The MLflow UI in headless Chromium (DOM checks): the experiment's runs page lists the command's parent run
    (its model's child nested under it: 2 runs); the runs' comparison page shows both runs by name with the shared
    metric names."""
    runs_page = _dump_dom(f"{server}/#/experiments/{experiment_id}/runs")
    listed = runs_page[runs_page.find("Run Name") : runs_page.find("matching runs") + 20]
    assert "train server_pg_test" in listed and "2 matching runs" in listed, listed
    ids = ",".join(f'"{run}"' for run in run_ids)
    compare = _dump_dom(f'{server}/#/compare-runs?runs=[{ids}]&experiments=["{experiment_id}"]')
    details = compare[compare.find("Run details") : compare.find("Artifacts")]
    assert "Run Name:" in details and " har " in f" {details} ", details
    for metric in ("qlike/rv/h30", "qlike/rv/h60", "coverage90/rv/h30"):
        assert metric in details, (metric, details[:3000])
