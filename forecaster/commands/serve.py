"""``forecaster serve``: the HTTP service (DESIGN section 9) on uvicorn.

Serves ``models:/drift-forecaster-<spec>@champion`` (or ``--model-uri``) from the MLflow store of
``MLFLOW_TRACKING_URI`` (default ``./mlflow.db``), polls the alias every ``--poll-seconds`` and hot-swaps a new
version in. API keys come from the environment: ``FORECASTER_API_KEYS`` (the /v1 routes) and
``FORECASTER_ADMIN_KEYS`` (/v1/admin/reload, and every /v1 route), comma-separated. Logs are JSON lines on
stderr, one per request. OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serving.settings import (
    DEFAULT_AUDIT_LOG,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_POSITIONS,
    DEFAULT_MAX_ROWS,
    DEFAULT_POLL_SECONDS,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--model-uri",
        metavar="URI",
        help="MLflow model URI; default models:/drift-forecaster-<spec name>@champion (an alias is watched)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        metavar="S",
        help=f"how often to check the alias for a new version (default {DEFAULT_POLL_SECONDS:g}; 0: never)",
    )
    limits = parser.add_argument_group("limits of one request")
    limits.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="N")
    limits.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N", help="bars per request")
    limits.add_argument("--max-positions", type=int, default=DEFAULT_MAX_POSITIONS, metavar="N")
    parser.add_argument(
        "--audit-log",
        type=Path,
        default=DEFAULT_AUDIT_LOG,
        metavar="PATH",
        help=f"append-only JSON Lines log of every decision returned (default ./{DEFAULT_AUDIT_LOG})",
    )


def settings_from_args(args: argparse.Namespace):
    """The :class:`serving.settings.Settings` of the flags, the spec and the environment (keys)."""
    from forecaster.backtest.run import backtest_spec
    from forecaster.config import load_spec
    from forecaster.drift.config import drift_config_from_spec
    from forecaster.errors import UsageError
    from forecaster.margin import margin_config_from_spec
    from serving.models import champion_uri
    from serving.settings import Settings
    from training.tracking import tracking_uri

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1..65535; got {args.port}")
    spec = load_spec(args.config)
    return Settings.from_env(
        model_uri=args.model_uri or champion_uri(spec.name),
        tracking_uri=tracking_uri(),
        poll_seconds=args.poll_seconds,
        max_body_bytes=args.max_body_bytes,
        max_rows=args.max_rows,
        max_positions=args.max_positions,
        drift=drift_config_from_spec(spec.values, where=spec.path),
        margin=margin_config_from_spec(spec),
        audit_log=args.audit_log,
        backtest=backtest_spec(spec.values, where=spec.path),
    )


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from serving.app import create_app
    from serving.logs import configure_json_logging

    configure_json_logging(logging.DEBUG if args.verbose else logging.INFO)
    app = create_app(settings_from_args(args))
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_config=None)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down gracefully: a normal stop
        pass
    return 0
