"""``forecaster serve``: its flags, the settings they make (keys from the environment), and the command itself
run as a user runs it, with JSON log lines on stderr."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from forecaster import cli
from forecaster.errors import UsageError
from serving.settings import Settings, parse_keys

FORECASTER = str(Path(sys.executable).parent / "forecaster")


def _args(*words: str):
    parser = cli.build_parser()
    args, code = cli._parse(parser, ["serve", *words])
    assert code == 0
    return args


def test_flags_and_defaults_make_the_settings(monkeypatch, tmp_path):
    from forecaster.commands.serve import settings_from_args

    monkeypatch.setenv("FORECASTER_API_KEYS", " key-one , key-two ,")
    monkeypatch.setenv("FORECASTER_ADMIN_KEYS", "root-key")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/m.db")
    settings = settings_from_args(_args())
    assert settings.model_uri == "models:/drift-forecaster-sim_intraday@champion"
    assert settings.api_keys == ("key-one", "key-two") and settings.admin_keys == ("root-key",)
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/m.db" and settings.poll_seconds == 30
    assert settings.drift.n_scenarios == 2048 and settings.margin.model == "risk_matrix"
    custom = settings_from_args(
        _args("--config", "daily_index", "--max-rows", "10", "--poll-seconds", "0", "--model-uri", "models:/x/3")
    )
    assert (custom.model_uri, custom.max_rows, custom.poll_seconds) == ("models:/x/3", 10, 0)
    assert settings_from_args(_args("--config", "daily_index")).model_uri.endswith("daily_index@champion")


def test_without_keys_serve_stops_with_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTER_")}
    done = subprocess.run(
        [FORECASTER, "serve", "--model-uri", "models:/x@champion"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "no API key: set FORECASTER_API_KEYS" in done.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_rows": 0}, "max_rows must be a whole number ≥ 1"),
        ({"max_body_bytes": 10}, "max_body_bytes must be a whole number of bytes ≥ 1024"),
        ({"poll_seconds": -1}, "poll_seconds must be a number of seconds ≥ 0"),
        ({"model_uri": " "}, "model_uri must be a model URI"),
        ({"api_keys": (), "admin_keys": ()}, "no API key"),
    ],
)
def test_settings_refuse_bad_values(values, message):
    with pytest.raises(UsageError, match=message):
        Settings(**{"model_uri": "models:/x@champion", "api_keys": ("k" * 20,), **values})


def test_keys_are_parsed_and_checked():
    assert parse_keys(None, "V") == () and parse_keys(" a ,, b", "V") == ("a", "b")
    with pytest.raises(UsageError, match="V: key 2 holds whitespace"):
        parse_keys("good,bad key", "V")
    with pytest.raises(UsageError, match="non-ASCII"):
        parse_keys("clé", "V")
    assert Settings.from_env({"FORECASTER_ADMIN_KEYS": "root"}, model_uri="m").admin_keys == ("root",)


def test_serve_command_end_to_end(registry, tmp_path, auth, wait):
    with socket.socket() as probe:  # a free port (released for the server to take)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "FORECASTER_API_KEYS": auth["Authorization"].removeprefix("Bearer "),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.pop("FORECASTER_ADMIN_KEYS", None)
    command = [FORECASTER, "serve", "--port", str(port), "--model-uri", f"models:/{registry.name}@champion"]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                assert server.poll() is None, "forecaster serve exited"
                return False

        wait(ready, timeout=120, what="forecaster serve to be ready", every=0.2)
        sent = httpx.post(f"{url}/v1/forecast", json={"bars": registry.bars()}, headers=auth, timeout=60)
        assert sent.status_code == 200 and sent.json()["model"]["version"] == "1"
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr[-3000:]
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    assert all("color_message" not in line for line in lines)
    access = [line for line in lines if line["logger"] == "serving.access" and line["route"] == "/v1/forecast"]
    assert len(access) == 1 and access[0]["request_id"] == sent.headers["x-request-id"]
    assert access[0]["status"] == 200 and access[0]["model_version"] == "1"
    assert not (tmp_path / "mlflow.db").exists()  # the store of MLFLOW_TRACKING_URI, none in the working folder
