"""Latency and throughput of the HTTP service: ``/v1/forecast``, ``/v1/portfolio/adjustments``, ``/v1/portfolio/drift``.

The server is ``forecaster serve`` in a subprocess on loopback (one uvicorn process, JSON logs to a file, the audit
log fsync-ed per decision as in production), serving a small registered model in a temporary MLflow store (a
log-HAR on realized variance over 30- and 60-bar windows, horizons 60 and 240, fitted on two simulated days) or
``--model-uri`` from ``MLFLOW_TRACKING_URI``. This process is the load generator: a pool of threads on one
``httpx`` client sends pre-encoded bodies, so the client's own JSON work stays out of the numbers.

A request holds 1,440 one-minute bars (with IV), the portfolio 100 positions (99 options on a grid of strikes and
expiries of 1 to 30 days, and a perp), 2,000 drift scenarios; adjustments ask the spec's default (predictive)
policy for the hedge and the collateral at once.

1. **Open loop**: each endpoint at ``--rate`` requests/s for ``--duration`` seconds; a request's latency runs from
   its scheduled send time (a server that falls behind shows it, no coordinated omission). p50, p90, p99, the
   throughput achieved and the errors (any status but 200, or a failed connection).
2. **Closed loop**: ``--clients`` clients sending back to back for ``--closed-duration`` seconds per endpoint: the
   maximum throughput.

    python bench/bench_serving.py                               # 60 s per endpoint at 20 req/s, then closed loop
    python bench/bench_serving.py --duration 20 --json bench_serving.json
    python bench/bench_serving.py --duration 5 --closed-duration 5 --profile 20   # and where a request's time goes
    python bench/bench_serving.py --timestamps epoch           # bars stamped in epoch ms (no ISO parsing)
    python bench/bench_serving.py --format columns             # bars as columns (bar_columns): less JSON

Targets (printed, not asserted): ``/v1/forecast`` p99 <= 20 ms and ``/v1/portfolio/adjustments`` p99 <= 50 ms at
20 req/s with zero errors. ``--profile N`` runs each endpoint's handler N times in this process under cProfile
(request parsing, the route's work, the audit write, response serialization) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

API_KEY = "bench-client-key-0123456789abcdef"
ENDPOINTS = {
    "forecast": "/v1/forecast",
    "adjustments": "/v1/portfolio/adjustments",
    "drift": "/v1/portfolio/drift",
}
TARGETS_MS = {"forecast": 20.0, "adjustments": 50.0}  # p99 at the open-loop rate, zero errors
SPEC_NAME = "bench_serving"
HORIZONS = (60, 240)


# ---------------------------------------------------------------------------------------------------- the model


def register_model(root: Path) -> tuple[str, str, Any]:
    """A small HAR registered in a fresh MLflow store under ``root``: (tracking URI, model URI, its market)."""
    import mlflow

    from features.pipeline import FeatureSpec
    from forecaster.market.simulator import SimConfig
    from models.baselines import Har
    from models.pyfunc import build_bundle
    from training.data import model_data, simulated_market
    from training.tracking import register_best, registered_model_name, setup_tracking

    uri = f"sqlite:///{root}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # read by the registry helpers (and by the server, from its env)
    spec = FeatureSpec(groups=("realized",), windows=(30, 60))
    market, _ = simulated_market(SimConfig(days=2, seed=3), with_chain=False, with_trades=False)
    data = model_data(market, spec, HORIZONS)
    model = Har(horizons=list(HORIZONS), windows=[30, 60], name="har")
    model.fit(data, np.arange(200, len(data) - max(HORIZONS), 3))
    bundle = build_bundle(model, spec, None, market=market, feature_columns=model.input_features(), name="har")
    experiment = setup_tracking(SPEC_NAME)
    with mlflow.start_run(experiment_id=experiment, run_name=f"train {SPEC_NAME}") as parent:
        with mlflow.start_run(experiment_id=experiment, run_name="har", nested=True):
            mlflow.set_tags({"run_type": "model", "model_name": "har"})
    register_best(run_id=parent.info.run_id, spec_name=SPEC_NAME, model_name="har", bundle=bundle)
    return uri, f"models:/{registered_model_name(SPEC_NAME)}@champion", market


def bench_market(days: float = 2.0) -> Any:
    from forecaster.market.simulator import SimConfig
    from training.data import simulated_market

    market, _ = simulated_market(SimConfig(days=days, seed=3), with_chain=False, with_trades=False)
    return market


# ---------------------------------------------------------------------------------------------------- requests


def portfolio(spot: float, as_of: Any, positions: int, seed: int = 0) -> dict[str, Any]:
    """``positions − 1`` options on a grid of strikes around the spot and expiries of 1 to 30 days, and a perp."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    expiry_day = (pd.Timestamp(as_of).normalize() + pd.Timedelta(hours=8)).tz_convert("UTC")
    out = []
    for i in range(positions - 1):
        days = int(rng.choice([1, 2, 7, 14, 30]))
        strike = max(500.0, round(spot * math.exp(rng.uniform(-0.2, 0.2)) / 500.0) * 500.0)
        kind = str(rng.choice(["call", "put"]))
        out.append(
            {"id": f"o{i}", "instrument": "option", "underlying": "BTC", "option_type": kind, "strike": strike,
             "expiry": (expiry_day + pd.Timedelta(days=days)).isoformat(),
             "quantity": float(np.round(rng.normal(0.0, 5.0), 2) or 1.0)}
        )  # fmt: skip
    out.append({"id": "hedge", "instrument": "perp", "underlying": "BTC", "quantity": 3.0})
    return {"positions": out, "collateral": 2_000_000.0}


def bodies(
    market: Any, *, bars: int, positions: int, scenarios: int, timestamps: str = "iso", form: str = "rows"
) -> dict[str, bytes]:
    """The request body of each endpoint, JSON-encoded once; ``timestamps``: ISO text or epoch milliseconds;
    ``form``: the bars as rows (``bars``) or as columns (``bar_columns``)."""
    from models.pyfunc import request_frame

    frame = request_frame(market, bars)
    if timestamps == "epoch":
        frame["timestamp"] = [int(t.value // 1_000_000) for t in market.index[-bars:]]
    if form == "columns":
        sent = {"bar_columns": {c: frame[c].tolist() for c in frame.columns}}
    else:
        sent = {"bars": frame.to_dict("records")}
    book = portfolio(float(frame["close"].iloc[-1]), market.index[-1], positions)
    return {
        "forecast": json.dumps(sent).encode(),
        "adjustments": json.dumps(
            {**sent, "portfolio": book, "n_scenarios": scenarios, "desk": {"sigma_bar": 0.0008}}
        ).encode(),
        "drift": json.dumps({**sent, "portfolio": book, "n_scenarios": scenarios, "horizon": 240}).encode(),
    }


# ---------------------------------------------------------------------------------------------------- the server


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path


def start_server(tracking_uri: str, model_uri: str, root: Path, *, max_rows: int) -> Server:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "FORECASTER_API_KEYS": API_KEY}
    env.pop("FORECASTER_ADMIN_KEYS", None)
    command = [
        sys.executable, "-m", "forecaster.cli", "serve", "--port", str(port), "--model-uri", model_uri,
        "--poll-seconds", "0", "--audit-log", str(root / "audit.jsonl"), "--max-rows", str(max_rows),
    ]  # fmt: skip
    log = root / "server.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"forecaster serve exited ({server.process.returncode}): see {server.log}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"forecaster serve was not ready after {timeout:g} s: see {server.log}")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()


# ---------------------------------------------------------------------------------------------------- load


@dataclass
class Result:
    endpoint: str
    mode: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # of the successful requests, seconds
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def tally(self, status: str, elapsed: float, lock: threading.Lock) -> None:
        """Count one answer: its latency when it succeeded (200), an error otherwise."""
        with lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == "200":
                self.latencies.append(elapsed)
            else:
                self.errors += 1

    def row(self) -> dict[str, Any]:
        ms = np.array(self.latencies) * 1000.0
        done = len(self.latencies) + self.errors

        def pct(q: float) -> float | None:
            return float(np.percentile(ms, q)) if ms.size else None

        return {
            "endpoint": ENDPOINTS[self.endpoint],
            "mode": self.mode,
            "requests": done,
            "errors": self.errors,
            "statuses": self.statuses,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "max_ms": float(ms.max()) if ms.size else None,
            "throughput_per_s": len(self.latencies) / self.seconds if self.seconds > 0 else None,
        }


def _send(http: Any, endpoint: str, body: bytes) -> str:
    try:
        sent = http.post(ENDPOINTS[endpoint], content=body, headers={"content-type": "application/json"})
    except Exception as exc:  # a failed connection is an error like a 5xx
        return type(exc).__name__
    return str(sent.status_code)


def open_loop(http: Any, endpoint: str, body: bytes, *, rate: float, duration: float) -> Result:
    """``rate`` requests/s for ``duration`` s; latency from each request's scheduled time."""
    n = max(1, round(rate * duration))
    result = Result(endpoint, f"{rate:g}/s x {duration:g} s", duration)
    lock = threading.Lock()
    workers = max(8, int(rate * 2))  # enough that a slow answer never delays the next send
    pool = ThreadPoolExecutor(workers)
    ready = threading.Barrier(workers + 1)
    for _ in range(workers):  # every sender thread started before the clock does
        pool.submit(ready.wait)
    ready.wait()
    start = time.perf_counter() + 0.05

    def one(i: int) -> None:
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        status = _send(http, endpoint, body)
        elapsed = time.perf_counter() - due
        result.tally(status, elapsed, lock)

    with pool:
        list(pool.map(one, range(n)))
    result.seconds = max(time.perf_counter() - start, duration)
    return result


def closed_loop(http: Any, endpoint: str, body: bytes, *, clients: int, duration: float) -> Result:
    """``clients`` clients back to back for ``duration`` s."""
    result = Result(endpoint, f"closed, {clients} clients x {duration:g} s", duration)
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def client() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            status = _send(http, endpoint, body)
            elapsed = time.perf_counter() - began
            result.tally(status, elapsed, lock)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


# ---------------------------------------------------------------------------------------------------- profile


def profile(
    model_uri: str, tracking_uri: str, encoded: dict[str, bytes], root: Path, repeats: int, endpoints: list[str]
) -> None:
    """Each endpoint's handler ``repeats`` times in this process under cProfile: what a request spends where."""
    import cProfile
    import pstats

    from forecaster.backtest.run import backtest_spec
    from forecaster.config import load_spec
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.margin import margin_config_from_spec
    from serving.app import create_app
    from serving.routes import forecast as forecast_route
    from serving.routes import portfolio as portfolio_route
    from serving.schemas import AdjustmentRequest, DriftRequest, ForecastRequest
    from serving.settings import Settings

    spec = load_spec("sim_intraday")
    settings = Settings(
        model_uri=model_uri, api_keys=(API_KEY,), tracking_uri=tracking_uri, poll_seconds=0,
        drift=drift_config_from_spec(spec.values, where=spec.path), margin=margin_config_from_spec(spec),
        backtest=backtest_spec(spec.values, where=spec.path), audit_log=root / "profile-audit.jsonl",
    )  # fmt: skip
    app = create_app(settings)
    service = app.state.service
    service.holder.refresh()
    model = service.holder.get()
    handlers = {
        "forecast": (ForecastRequest, forecast_route.forecast),
        "adjustments": (AdjustmentRequest, portfolio_route.portfolio_adjustments),
        "drift": (DriftRequest, portfolio_route.portfolio_drift),
    }
    loop = asyncio.new_event_loop()  # the handlers are coroutines: they run on the server's event loop
    for endpoint in endpoints:
        schema, handler = handlers[endpoint]

        def request(schema: Any = schema, handler: Any = handler, endpoint: str = endpoint) -> None:
            body = schema.model_validate_json(encoded[endpoint])
            loop.run_until_complete(handler(body, model, service, "profile")).model_dump_json()

        request()  # warm
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for _ in range(repeats):
            request()
        profiler.disable()
        mean = (time.perf_counter() - began) / repeats * 1000.0
        print(f"\nprofile of {ENDPOINTS[endpoint]}: {mean:.1f} ms per request in process (under cProfile)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


# ---------------------------------------------------------------------------------------------------- report


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'endpoint':<27} {'mode':<26} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
    print(header + f"{'req/s':>7}  target")
    for row in rows:
        p50, p90, p99 = ("-" if row[k] is None else f"{row[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms"))
        print(
            f"{row['endpoint']:<27} {row['mode']:<26} {row['requests']:>8} {row['errors']:>6} {p50:>8} {p90:>8} "
            f"{p99:>8} {row['throughput_per_s'] or 0:>7.1f}  {row.get('target') or ''}"
        )


def target_note(endpoint: str, row: dict[str, Any]) -> str:
    goal = TARGETS_MS.get(endpoint)
    if goal is None:
        return ""
    met = row["p99_ms"] is not None and row["p99_ms"] <= goal and row["errors"] == 0
    return f"p99 <= {goal:g} ms, 0 errors: {'met' if met else 'MISSED'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="open-loop seconds per endpoint (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="open-loop requests/s (default 20)")
    parser.add_argument("--closed-duration", type=float, default=10.0, help="closed-loop seconds per endpoint")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop concurrent clients (default 8)")
    parser.add_argument("--endpoints", default="forecast,adjustments,drift", help="comma-separated subset")
    parser.add_argument("--bars", type=int, default=1440, help="bars per request (default 1,440)")
    parser.add_argument("--positions", type=int, default=100, help="portfolio positions (default 100)")
    parser.add_argument("--scenarios", type=int, default=2000, help="drift scenarios (default 2,000)")
    parser.add_argument(
        "--timestamps", choices=("iso", "epoch"), default="iso", help="bar timestamps as ISO text or epoch ms"
    )
    parser.add_argument(
        "--format", choices=("rows", "columns"), default="rows", help="bars as rows (bars) or columns (bar_columns)"
    )
    parser.add_argument("--model-uri", help="serve this model of MLFLOW_TRACKING_URI instead of a fresh small one")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also profile N requests per endpoint")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown:
        parser.error(f"--endpoints: {unknown} unknown; choose from {', '.join(ENDPOINTS)}")

    import httpx

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        if args.model_uri:
            tracking_uri, model_uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"), args.model_uri
            market = bench_market(max(2.0, args.bars / 1440 + 1))
        else:
            tracking_uri, model_uri, market = register_model(root)
        encoded = bodies(
            market,
            bars=args.bars,
            positions=args.positions,
            scenarios=args.scenarios,
            timestamps=args.timestamps,
            form=args.format,
        )
        server = start_server(tracking_uri, model_uri, root, max_rows=max(args.bars, 50_000))
        print(f"server ready at {server.url} ({model_uri}) after {time.perf_counter() - began:.1f} s")
        sizes = ", ".join(f"{e} {len(encoded[e]) / 1024:.0f} KiB" for e in endpoints)
        what = f"{args.bars} bars as {args.format} ({args.timestamps} timestamps), {args.positions} positions, "
        what += f"{args.scenarios} "
        print(f"requests: {what}scenarios ({sizes})\n")
        rows, closed = [], []
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        gc.collect()  # this process holds MLflow, pandas and the model it registered: a full collection of that
        gc.freeze()  # heap mid-run paused every sender thread for 100-300 ms, a stall of the client, not the server
        try:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60, limits=limits) as http:
                for endpoint in endpoints:
                    for _ in range(5):  # warm: first-call imports and caches
                        _send(http, endpoint, encoded[endpoint])
                    row = open_loop(http, endpoint, encoded[endpoint], rate=args.rate, duration=args.duration).row()
                    row["target"] = target_note(endpoint, row)
                    rows.append(row)
                    print_table([row])
                for endpoint in endpoints:
                    result = closed_loop(
                        http, endpoint, encoded[endpoint], clients=args.clients, duration=args.closed_duration
                    )
                    closed.append(result.row())
                    print_table([closed[-1]])
        finally:
            stop_server(server)
        print("\nopen loop:")
        print_table(rows)
        print("maximum throughput (closed loop):")
        print_table(closed)
        if args.profile:
            profile(model_uri, tracking_uri, encoded, root, args.profile, endpoints)
    if args.json:
        payload = {
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "targets_p99_ms": TARGETS_MS,
            "open_loop": rows,
            "closed_loop": closed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
