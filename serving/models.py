"""The served model: loaded from the MLflow registry, held for requests, hot-swapped when its alias moves.

- :class:`ModelSource` resolves the configured URI (``models:/NAME@champion``) to a concrete version and loads it
  (the pyfunc of :mod:`models.pyfunc`: recent bars in, the forecast frame out).
- :class:`ModelHolder` holds the current :class:`LoadedModel`. :meth:`ModelHolder.refresh` loads a new version
  off the request path and swaps it in atomically under a lock; a version that fails to load is not swapped in:
  the old one keeps serving and the failure is kept for ``/readyz``. A request takes one snapshot
  (:meth:`ModelHolder.get`) and uses it throughout, so a swap never changes a model under a running request.
- :class:`AliasWatcher` calls :meth:`ModelHolder.refresh` every ``poll_seconds`` on a daemon thread.

MLflow is asked with an explicit tracking URI (no global state is set); note that MLflow puts each loaded
version's bundled code folder on ``sys.path`` (the project's own packages are imported first, so they win).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from forecaster.errors import UsageError
from training.tracking import CHAMPION, registered_model_name

log = logging.getLogger(__name__)

BUNDLE_KEYS = ("horizons", "min_rows", "needs_iv", "bar_length", "annualization_days", "iv_units", "model_name")
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def champion_uri(spec_name: str) -> str:
    """``models:/drift-forecaster-<spec>@champion``: the default model of ``forecaster serve``."""
    return f"models:/{registered_model_name(spec_name)}@{CHAMPION}"


class ModelLoadError(Exception):
    """A model version could not be resolved or loaded; the message says which and why."""


@dataclass(frozen=True)
class ModelRef:
    """The configured URI, parsed: a registered model with an alias (watched) or a version, or anything else."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        match = _REGISTERED.match(uri.strip())
        if match is None:
            return cls(uri.strip())
        return cls(uri.strip(), match["name"], match["alias"], match["version"])

    @property
    def watchable(self) -> bool:
        return self.alias is not None


@dataclass(frozen=True)
class Target:
    """A concrete model version to load."""

    uri: str
    name: str | None
    version: str | None
    run_id: str | None


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model version: its registry identity and the forecast bundle (``models.pyfunc.ForecastBundle``)."""

    target: Target
    source_uri: str
    bundle: Any
    loaded_at: dt.datetime

    @property
    def name(self) -> str | None:
        return self.target.name

    @property
    def version(self) -> str | None:
        return self.target.version

    @property
    def config(self) -> dict[str, Any]:
        """The bundle's ``bundle.json``: horizons, min_rows, needs_iv, bar_length, iv_units..."""
        return self.bundle.config

    @property
    def horizons(self) -> list[int]:
        return [int(h) for h in self.config["horizons"]]

    @property
    def min_rows(self) -> int:
        return int(self.config["min_rows"])

    @property
    def bar_length(self) -> pd.Timedelta:
        return pd.Timedelta(self.config["bar_length"])

    @property
    def bar_years(self) -> float:
        """One bar in years (DESIGN section 2: the bundle's annualization days)."""
        return self.bar_length / pd.Timedelta(days=1) / float(self.config["annualization_days"])

    def forecast(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The forecast frame at the last bar (``models.base.FORECAST_COLUMNS``, one row per horizon).

        Raises ``UsageError`` / ``DataValidationError`` when the bars break the contract or are too few."""
        return self.bundle.forecast(bars)


class ModelSource:
    """Resolves and loads the configured model from MLflow (the tracking store doubles as the registry)."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        self.ref = ModelRef.parse(uri)
        self.tracking_uri = tracking_uri

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def resolve(self) -> Target:
        """The version the URI points at now (an alias is read from the registry)."""
        ref = self.ref
        if ref.name is None:
            return Target(ref.uri, None, None, None)
        try:
            client = self._client()
            if ref.alias is not None:
                found = client.get_model_version_by_alias(ref.name, ref.alias)
            else:
                found = client.get_model_version(ref.name, ref.version)
        except Exception as exc:  # the registry is another service: any failure means "cannot tell now"
            raise ModelLoadError(
                f"cannot resolve {ref.uri} in the registry {self.tracking_uri}: {_short(exc)}"
            ) from exc
        return Target(f"models:/{ref.name}/{found.version}", ref.name, str(found.version), found.run_id)

    def load(self, target: Target) -> LoadedModel:
        """Load ``target`` and check it is a forecast bundle (:mod:`models.pyfunc`)."""
        import mlflow

        try:
            # the storage location itself: MLflow would resolve a models:/ URI against its global registry URI
            where = target.uri
            if target.name is not None:
                where = self._client().get_model_version_download_uri(target.name, target.version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=where, tracking_uri=self.tracking_uri)
            bundle = mlflow.pyfunc.load_model(local).unwrap_python_model()
        except Exception as exc:  # unpickling runs the artifact's code: anything can fail
            raise ModelLoadError(f"{_describe(target)} failed to load: {_short(exc)}") from exc
        config = getattr(bundle, "config", None)
        missing = [k for k in BUNDLE_KEYS if not isinstance(config, dict) or k not in config]
        if not callable(getattr(bundle, "forecast", None)) or missing:
            raise ModelLoadError(
                f"{_describe(target)} is not a drift-forecaster forecast bundle (models.pyfunc.ForecastBundle; "
                f"missing {missing or ['forecast()']}): register it with `forecaster train`"
            )
        return LoadedModel(target, self.ref.uri, bundle, dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class Reload:
    """What one :meth:`ModelHolder.refresh` did (``serving.schemas.ReloadReport``)."""

    outcome: str  # loaded | swapped | unchanged | failed
    previous_version: str | None
    model_version: str | None
    target_version: str | None
    error: str | None
    seconds: float


class ModelHolder:
    """The current model, swapped atomically; the last reload failure, for ``/readyz``.

    Parameters
    ----------
    source
        Where versions come from.
    on_reload
        Called after every refresh with its :class:`Reload` and the model serving afterwards (metrics).
    """

    def __init__(self, source: ModelSource, on_reload: Callable[[Reload, LoadedModel | None], None] | None = None):
        self.source = source
        self.on_reload = on_reload
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()  # held only to replace the reference
        self._reload_lock = threading.Lock()  # one load at a time (watcher and admin reload)
        self._failed: tuple[str | None, str] | None = None  # (version, error) of the last failure
        self.last_reload_at: dt.datetime | None = None

    def get(self) -> LoadedModel | None:
        """The model serving now (None before the first successful load)."""
        with self._swap_lock:
            return self._current

    @property
    def last_error(self) -> str | None:
        failed = self._failed
        return failed[1] if failed else None

    def refresh(self, *, force: bool = False) -> Reload:
        """Resolve the URI; load and swap in a version that differs from the serving one. Never raises.

        A version that failed before is not loaded again until the URI points elsewhere or ``force`` (the admin
        reload) asks, unless nothing is serving (then every refresh retries).
        """
        with self._reload_lock:
            started = time.perf_counter()
            before = self.get()
            previous = before.version if before else None
            target: Target | None = None
            try:
                target = self.source.resolve()
                if before is not None and before.target.uri == target.uri:
                    self._failed = None  # the alias points at the serving version again: nothing is wrong
                    return self._done("unchanged", previous, target.version, None, started)
                failed = self._failed
                if failed and failed[0] == target.version and not force and before is not None:
                    return self._done("failed", previous, target.version, failed[1], started, quiet=True)
                loaded = self.source.load(target)
            except ModelLoadError as exc:
                version = target.version if target is not None else None
                self._failed = (version, str(exc))
                log.error("model reload failed (%s keeps serving): %s", previous or "nothing", exc)
                return self._done("failed", previous, version, str(exc), started)
            except Exception as exc:  # a bug or an unforeseen registry failure: keep serving, say so
                log.exception("model reload failed unexpectedly")
                self._failed = (None, f"unexpected error while reloading: {_short(exc)}")
                return self._done("failed", previous, None, self._failed[1], started)
            with self._swap_lock:
                self._current = loaded
            gc.freeze()  # as at startup (serving.app): the new model's objects leave the collector's walks
            self._failed = None
            outcome = "loaded" if before is None else "swapped"
            log.info("model %s: serving %s (was %s)", outcome, _describe(loaded.target), previous or "nothing")
            return self._done(outcome, previous, loaded.version, None, started)

    def _done(
        self,
        outcome: str,
        previous: str | None,
        target: str | None,
        error: str | None,
        started: float,
        *,
        quiet: bool = False,
    ) -> Reload:
        self.last_reload_at = dt.datetime.now(dt.UTC)
        current = self.get()
        report = Reload(
            outcome,
            previous,
            current.version if current else None,
            target,
            error,
            time.perf_counter() - started,
        )
        if self.on_reload is not None and not quiet:
            self.on_reload(report, current)
        return report


class AliasWatcher:
    """Polls the alias every ``poll_seconds`` on a daemon thread (:meth:`ModelHolder.refresh`)."""

    def __init__(self, holder: ModelHolder, poll_seconds: float) -> None:
        if poll_seconds <= 0:
            raise UsageError(f"the watcher's poll_seconds must be > 0; got {poll_seconds}")
        self.holder, self.poll_seconds = holder, float(poll_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-alias-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.holder.refresh()


def _describe(target: Target) -> str:
    return f"version {target.version} of {target.name}" if target.name else target.uri


def _short(exc: BaseException, limit: int = 600) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[:limit] + " …"
