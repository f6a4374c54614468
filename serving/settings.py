"""Settings of the HTTP service (DESIGN section 9): which model, who may call, how much a request may carry.

API keys come from the environment (``FORECASTER_API_KEYS`` and ``FORECASTER_ADMIN_KEYS``, comma-separated) or
are passed in; every other value from ``forecaster serve``'s flags and the experiment spec (its ``drift`` and
``margin`` sections). An admin key may also call every normal route; a normal key gets 403 on admin routes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forecaster.errors import UsageError

if TYPE_CHECKING:  # imported when needed: `forecaster serve --help` stays instant
    from forecaster.backtest.run import BacktestSpec
    from forecaster.drift.config import DriftConfig
    from forecaster.margin import MarginConfig

log = logging.getLogger(__name__)

API_KEYS_ENV, ADMIN_KEYS_ENV = "FORECASTER_API_KEYS", "FORECASTER_ADMIN_KEYS"
DEFAULT_POLL_SECONDS = 30.0
DEFAULT_MAX_BODY_BYTES = 16 * 2**20  # 16 MiB: ~100,000 bars as JSON rows
DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_POSITIONS = 1_000
DEFAULT_AUDIT_LOG = Path("forecaster-audit.jsonl")
SHORT_KEY = 16  # a key shorter than this is accepted with a warning


def parse_keys(text: str | None, variable: str) -> tuple[str, ...]:
    """The keys of a comma-separated list (``"k1, k2"``); empty entries are dropped.

    Raises
    ------
    UsageError
        A key holds whitespace or a character outside printable ASCII (it could never arrive in a header as it
        is written).
    """
    keys = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    for number, key in enumerate(keys, start=1):
        if any(ch.isspace() for ch in key) or not key.isascii() or not key.isprintable():
            raise UsageError(
                f"{variable}: key {number} holds whitespace or a non-ASCII character; keys are comma-separated "
                "printable ASCII, e.g. FORECASTER_API_KEYS=3f9c...,a71b..."
            )
    return keys


@dataclass(frozen=True)
class Settings:
    """Everything the app reads; frozen: one app, one set of settings.

    Attributes
    ----------
    model_uri
        What to serve: ``models:/NAME@ALIAS`` (watched: a new version behind the alias is hot-swapped in),
        ``models:/NAME/VERSION`` or any other MLflow model URI (loaded once).
    api_keys, admin_keys
        Bearer keys of the normal routes, and of the admin routes (which may call the normal ones too).
    tracking_uri
        The MLflow tracking (and registry) store; None: MLflow's own default (``MLFLOW_TRACKING_URI``).
    poll_seconds
        How often the watcher reads the alias; 0 turns the watcher off (``/v1/admin/reload`` still works).
    max_body_bytes, max_rows, max_positions
        Limits of one request: its body, its bars, its portfolio's positions.
    drift, margin
        The drift engine's and the margin model's settings (the spec's ``drift`` and ``margin`` sections).
    backtest
        The policy layer's settings (the spec's ``backtest`` section: hedge and margin policies, safety caps,
        costs, the predictive policy's horizon and scenarios) that ``/v1/portfolio/adjustments`` decides with;
        default the ``sim_intraday`` spec's.
    audit_log
        The append-only decision log (JSON Lines), written by routes that return decisions.
    """

    model_uri: str
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    tracking_uri: str | None = None
    poll_seconds: float = DEFAULT_POLL_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    max_positions: int = DEFAULT_MAX_POSITIONS
    drift: DriftConfig = field(default_factory=lambda: _defaults()[0])
    margin: MarginConfig = field(default_factory=lambda: _defaults()[1])
    audit_log: Path = DEFAULT_AUDIT_LOG
    backtest: BacktestSpec = field(default_factory=lambda: _default_backtest())

    def __post_init__(self) -> None:
        for name, (allowed, ok) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise UsageError(f"serving setting {name} must be {allowed}; got {value!r}")
        if not self.api_keys and not self.admin_keys:
            raise UsageError(
                f"no API key: set {API_KEYS_ENV}=KEY1,KEY2 (and {ADMIN_KEYS_ENV} for /v1/admin/reload) in the "
                "environment; every /v1 route needs 'Authorization: Bearer KEY'"
            )
        short = [k for k in (*self.api_keys, *self.admin_keys) if len(k) < SHORT_KEY]
        if short:
            log.warning("%d API key(s) are shorter than %d characters: use long random keys", len(short), SHORT_KEY)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **values: Any) -> Settings:
        """Settings whose keys come from ``FORECASTER_API_KEYS`` / ``FORECASTER_ADMIN_KEYS`` (of ``environ``,
        default ``os.environ``) unless ``api_keys`` / ``admin_keys`` are among ``values``."""
        env = os.environ if environ is None else environ
        values.setdefault("api_keys", parse_keys(env.get(API_KEYS_ENV), API_KEYS_ENV))
        values.setdefault("admin_keys", parse_keys(env.get(ADMIN_KEYS_ENV), ADMIN_KEYS_ENV))
        return cls(**values)


def _defaults() -> tuple[DriftConfig, MarginConfig]:
    from forecaster.drift.config import DriftConfig
    from forecaster.margin import MarginConfig

    return DriftConfig(), MarginConfig()


def _default_backtest() -> BacktestSpec:
    from forecaster.backtest.run import backtest_spec
    from forecaster.config import load_spec

    spec = load_spec("sim_intraday")
    return backtest_spec(spec.values, where=spec.path)


def _whole(low: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


_RULES: dict[str, tuple[str, Any]] = {
    "model_uri": ("a model URI such as models:/NAME@champion", lambda v: isinstance(v, str) and v.strip() != ""),
    "poll_seconds": (
        "a number of seconds ≥ 0 (0: no watcher)",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
    ),
    "max_body_bytes": ("a whole number of bytes ≥ 1024", _whole(1024)),
    "max_rows": ("a whole number ≥ 1", _whole(1)),
    "max_positions": ("a whole number ≥ 1", _whole(1)),
    "api_keys": ("a tuple of keys", lambda v: isinstance(v, tuple) and all(isinstance(k, str) and k for k in v)),
    "admin_keys": ("a tuple of keys", lambda v: isinstance(v, tuple) and all(isinstance(k, str) and k for k in v)),
    "audit_log": ("a path", lambda v: isinstance(v, Path)),
}
