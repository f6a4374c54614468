"""Shared by the serving tests (as fixtures): one tiny registered model in a temporary MLflow store (built once per
session), the real app on uvicorn on a free loopback port (``serve``), API-key headers, a portfolio, a poller.

The model is a HAR on realized-variance features over 30- and 60-bar windows of one simulated day (bars and an IV
index), horizons 30 and 60: a request needs 122 bars. Each test that moves aliases registers its own model name
whose versions point at the same artifacts (creating a version is instant; logging a model is not).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from serving.settings import Settings

# Hypothesis caches its Unicode tables in ./.hypothesis: keep them out of the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "drift-forecaster-hypothesis")

API_KEY = "client-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
HORIZONS = (30, 60)
SPEC_NAME = "serving_test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Registry:
    """The temporary MLflow store and what the tests need of it."""

    tracking_uri: str
    root: Path
    name: str  # the registered model of version 1 (champion)
    source: str  # version 1's artifact location (a file URI: new versions point at the same files)
    market: Any  # features.base.MarketData of the simulated day
    bundle: Any  # models.pyfunc.Bundle that was registered

    @property
    def min_rows(self) -> int:
        return int(self.bundle.config["min_rows"])

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def new_model(self, name: str, versions: int = 1) -> str:
        """A registered model ``name`` with ``versions`` versions of the same artifacts; champion → version 1."""
        client = self.client()
        client.create_registered_model(name)
        for _ in range(versions):
            self.add_version(name)
        client.set_registered_model_alias(name, "champion", "1")
        return name

    def add_version(self, name: str, source: str | None = None) -> str:
        return str(self.client().create_model_version(name, source or self.source).version)

    def add_broken_version(self, name: str) -> str:
        """A version whose artifacts exist but cannot load (its pickled forecaster is garbage)."""
        import mlflow

        original = Path(mlflow.artifacts.download_artifacts(artifact_uri=self.source, tracking_uri=self.tracking_uri))
        broken = self.root / f"broken-{name}"
        shutil.copytree(original, broken)
        (broken / "artifacts" / "model.pkl").write_bytes(b"not a pickle")
        return self.add_version(name, str(broken))

    def set_champion(self, name: str, version: str) -> None:
        self.client().set_registered_model_alias(name, "champion", version)

    def bars(self, rows: int | None = None) -> list[dict[str, Any]]:
        """The last ``rows`` bars (default min_rows) of the simulated day as a request's ``bars``."""
        from models.pyfunc import request_frame

        return request_frame(self.market, rows or self.min_rows).to_dict("records")

    def settings(self, name: str | None = None, **values: Any) -> Settings:
        return Settings(
            model_uri=f"models:/{name or self.name}@champion",
            api_keys=(API_KEY,),
            admin_keys=(ADMIN_KEY,),
            tracking_uri=self.tracking_uri,
            poll_seconds=values.pop("poll_seconds", 0.0),
            audit_log=self.root / "audit.jsonl",
            **values,
        )


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils

    from features.pipeline import FeatureSpec
    from forecaster.market.simulator import SimConfig
    from models.baselines import Har
    from models.pyfunc import build_bundle
    from training.data import model_data, simulated_market
    from training.tracking import register_best, registered_model_name, setup_tracking

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    spec = FeatureSpec(groups=("realized",), windows=(30, 60))
    market, _ = simulated_market(SimConfig(days=1, seed=3), with_chain=False, with_trades=False)
    data = model_data(market, spec, HORIZONS)
    model = Har(horizons=list(HORIZONS), windows=[30, 60], name="har").fit(data, np.arange(200, len(data) - 60, 3))
    columns = model.input_features() or list(data.features.columns)
    bundle = build_bundle(model, spec, None, market=market, feature_columns=columns, name="har", data=data)
    # register_best reads MLFLOW_TRACKING_URI and sets MLflow's global URI: both are put back afterwards
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setattr(tracking_utils, "_tracking_uri", None)
        experiment = setup_tracking(SPEC_NAME)
        with mlflow.start_run(experiment_id=experiment, run_name=f"train {SPEC_NAME}") as parent:
            mlflow.set_tags({"run_type": "command", "data_fingerprint": "serving-test"})
            with mlflow.start_run(experiment_id=experiment, run_name="har", nested=True):
                mlflow.set_tags({"run_type": "model", "model_name": "har"})
        register_best(run_id=parent.info.run_id, spec_name=SPEC_NAME, model_name="har", bundle=bundle)
    name = registered_model_name(SPEC_NAME)
    registry = Registry(uri, root, name, "", market, bundle)
    return replace(registry, source=registry.client().get_model_version_download_uri(name, "1"))


@dataclass
class Live:
    """A running server: its app (to look inside), a client on its base URL."""

    app: Any
    url: str
    http: httpx.Client

    @property
    def service(self) -> Any:
        return self.app.state.service


@contextmanager
def live_server(settings: Settings) -> Iterator[Live]:
    """The app of ``settings`` on uvicorn, on a free loopback port, until the block ends."""
    import uvicorn

    from serving.app import create_app

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=60, what="the server to start")
        assert thread.is_alive(), "uvicorn stopped while starting"
        with httpx.Client(base_url=url, timeout=60) as http:
            yield Live(app, url, http)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def portfolio(expiry: str = "2026-01-09T08:00:00Z") -> dict[str, Any]:
    """A short-vol BTC book: a short call, a long put, a perp hedge."""
    return {
        "positions": [
            {"id": "c62", "instrument": "option", "underlying": "BTC", "option_type": "call", "strike": 62000,
             "expiry": expiry, "quantity": -10},
            {"id": "p55", "instrument": "option", "underlying": "BTC", "option_type": "put", "strike": 55000,
             "expiry": expiry, "quantity": 5},
            {"id": "hedge", "instrument": "perp", "underlying": "BTC", "quantity": 2.5},
        ],
        "collateral": 250000,
        "limits": {"max_abs_delta": 5},
    }  # fmt: skip


@pytest.fixture(scope="session")
def serve() -> Callable[[Settings], Any]:
    """``with serve(settings) as live:`` runs the app on uvicorn (:func:`live_server`)."""
    return live_server


@pytest.fixture(scope="session")
def auth() -> dict[str, str]:
    """Headers of a client key."""
    return dict(AUTH)


@pytest.fixture(scope="session")
def admin() -> dict[str, str]:
    """Headers of an admin key."""
    return dict(ADMIN)


@pytest.fixture(scope="session")
def book() -> Callable[..., dict[str, Any]]:
    """``book(expiry=...)``: the portfolio of :func:`portfolio`."""
    return portfolio


@pytest.fixture(scope="session")
def wait() -> Callable[..., Any]:
    """``wait(predicate, timeout=..., what=...)`` (:func:`wait_until`)."""
    return wait_until
