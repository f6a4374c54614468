"""The registered model (DESIGN section 8): an MLflow pyfunc bundling the feature pipeline, a fitted forecaster and
its conformal calibration, so ``mlflow.pyfunc.load_model("models:/NAME@champion")`` (and ``mlflow models serve``)
forecasts from raw recent bars.

Input (one request = one market, one forecast origin: the last bar)
-------------------------------------------------------------------
A DataFrame of the most recent bars, sorted by time, one row per bar:

- ``timestamp``: UTC ISO 8601 strings or epoch numbers (s, ms, µs or ns, read as the bars loader reads files);
  labelled like the training bars (``bar_label`` of the bundle: the bar's end by default);
- ``open, high, low, close, volume``: checked against the bars contract (DESIGN section 3);
- ``iv`` (required when the model was trained with an implied vol): the IV index (30-day ATM IV) known at each
  bar, in ``iv_units`` (decimal by default); empty cells carry the last value forward (as-of, never backward).

At least ``min_rows`` rows (:func:`min_rows_needed`): ``W + A + LAG_ROWS + L`` with W the longest warm-up of the
model's feature columns (trailing windows; IV percentile days), A the longest calendar-anchor block of the spec's
windows in bars (the window the features are computed on starts at an anchor, so they equal the batch features
bit for bit: ``features.pipeline.recent_start``), ``LAG_ROWS`` = 2 (the previous close and return of that first
bar) and L the model's own history before the origin (:func:`history_bars`). More rows are accepted; the oldest
ones beyond what is needed are not read.

Output
------
The forecast frame at the last bar (``models.base.FORECAST_COLUMNS``): one row per horizon, ``model`` = the name
the model had in the spec, quantiles calibrated when the bundle has a calibrator.

What a bundle holds (MLflow artifacts)
--------------------------------------
``bundle.json`` (feature spec, the model's feature columns in order, horizons, bar length, annualization days,
bar label, IV units and whether IV is needed, warm-up/anchor/lag/history rows and ``min_rows``, model name and
family, calibrator class), ``model.pkl`` (the fitted forecaster, cloudpickle) and ``calibration.json``
(``ConformalCalibrator.to_dict()``, when calibrated). The code of ``features``, ``models`` and ``forecaster`` is
bundled too (``code_paths``), with the project's dependencies pinned to the installed versions.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.base import Context, MarketData
from features.implied import aligned_iv, chain_atm_iv_on_bars
from features.market import infer_freq, market_data
from features.pipeline import LAG_ROWS, FeatureSpec, build_features, feature_spec_from_spec, recent_start, resolve
from features.windows import anchor_for
from forecaster.errors import UsageError
from models.base import FORECAST_COLUMNS, Forecaster, ModelData

log = logging.getLogger(__name__)

FORMAT = 1
BAR_INPUTS = ("open", "high", "low", "close", "volume")
TIMESTAMP_ALIASES = ("timestamp", "date", "datetime", "time")  # as the bars loader accepts them
IV_UNITS = ("dec", "pct", "auto")
AUTO_PCT_ABOVE = 3.0  # iv_units auto: a median above 3 (300% as a decimal) can only be percent
MAX_IV = 5.0
EXAMPLE_MAX_ROWS = 5000  # the input example is the shortest valid request when it is at most this long, else none
ANCHOR_LENGTH = {
    "min": pd.Timedelta(minutes=1),
    "5min": pd.Timedelta(minutes=5),
    "15min": pd.Timedelta(minutes=15),
    "h": pd.Timedelta(hours=1),
    "D": pd.Timedelta(days=1),
    "W": pd.Timedelta(weeks=1),
}
# Families that read nothing before the origin but its feature row (and IV): HAR and the boosted log-HAR.
NO_HISTORY_FAMILIES = ("har", "lgbm")
ARTIFACT_CONFIG, ARTIFACT_MODEL, ARTIFACT_CALIBRATION = "bundle", "model", "calibration"
CODE_PACKAGES = ("features", "models", "forecaster")
PROJECT_DISTRIBUTION = "drift-forecaster"


# ---------------------------------------------------------------------------------------------------- sizes


def history_bars(model: Forecaster) -> int:
    """Bars before the origin that ``model`` reads besides the origin's feature row and IV (its own lookback).

    A model states it with a ``history_bars`` attribute or property (an int). Otherwise: 0 for HAR and LightGBM
    (features at the origin only), the longest horizon for persistence (the last h returns), ``(lookback − 1) ·
    lookback_step`` for the net (feature rows at lagged origins). Any other family (EWMA, GARCH: infinite-memory
    recursions) raises UsageError: it must state ``history_bars`` before it can be bundled.
    """
    declared = getattr(model, "history_bars", None)
    if declared is not None:
        value = declared() if callable(declared) else declared
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise UsageError(f"{model.label}: history_bars must be a whole number of bars ≥ 0; got {value!r}")
        return int(value)
    family = model.family
    if family in NO_HISTORY_FAMILIES:
        return 0
    if family == "persistence":
        return int(max(model.horizons_))
    if family == "net":
        return int((model.lookback - 1) * model.lookback_step)
    raise UsageError(
        f"model {model.label!r} (family {family!r}) does not state how many bars of history before the forecast "
        "origin it reads, so the served model cannot tell how many recent bars a request needs. Fix: give the "
        "model a history_bars property (bars), or register another model"
    )


def anchor_bars(spec: FeatureSpec, freq: pd.Timedelta) -> int:
    """The longest calendar-anchor block of the spec's windows, in bars (at least 1)."""
    return max(max(1, math.ceil(ANCHOR_LENGTH[anchor_for(w, freq)] / freq)) for w in spec.windows)


def serving_columns(spec: FeatureSpec, freq: pd.Timedelta, annualization_days: float, with_iv: bool) -> dict[str, int]:
    """Feature column → warm-up (rows) of what a request can compute: bars, and an IV known from its first bar.

    Groups that need trades or an option chain do not run (a request carries neither).
    """
    index = pd.date_range("2001-01-01", periods=3, freq=freq, tz="UTC")
    bars = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=index, dtype=float)
    iv = pd.Series(0.5, index=index, name="iv") if with_iv else None
    run, _ = resolve(spec, MarketData(bars, freq, float(annualization_days), None, iv, None))
    return {column: rows for columns in run.values() for column, rows in columns.items()}


def min_rows_needed(warmup: int, anchor: int, history: int) -> int:
    """Rows a request needs: warm-up + anchor block + :data:`LAG_ROWS` + the model's history (module docstring)."""
    return int(warmup) + int(anchor) + LAG_ROWS + int(history)


# ---------------------------------------------------------------------------------------------------- the pyfunc


class ForecastBundle(mlflow.pyfunc.PythonModel):
    """The pyfunc: raw recent bars in, the forecast frame at the last bar out (module docstring).

    MLflow pickles this object empty and calls :meth:`load_context` with the artifacts; :meth:`from_parts` builds
    a loaded one in process (the same code path as a served model).
    """

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.model: Forecaster | None = None
        self.calibrator: Any = None
        self.feature_spec: FeatureSpec | None = None

    @classmethod
    def from_parts(cls, config: Mapping[str, Any], model: Forecaster, calibrator: Any = None) -> ForecastBundle:
        bundle = cls()
        bundle._set(dict(config), model, calibrator)
        return bundle

    def _set(self, config: dict[str, Any], model: Forecaster, calibrator: Any) -> None:
        if config.get("format") != FORMAT:
            raise UsageError(f"not a forecast bundle of format {FORMAT}: got {config.get('format')!r}")
        self.config = config
        self.model = model
        self.calibrator = calibrator
        self.feature_spec = feature_spec_from_spec({"features": config["feature_spec"]}, where="bundle.json")

    def load_context(self, context: Any) -> None:
        """Read ``bundle.json``, the pickled forecaster and the calibration from the model's artifacts."""
        import cloudpickle

        artifacts = context.artifacts
        config = json.loads(Path(artifacts[ARTIFACT_CONFIG]).read_text())
        with open(artifacts[ARTIFACT_MODEL], "rb") as handle:
            model = cloudpickle.load(handle)
        calibrator = None
        if config.get("calibrator_class"):
            module, _, qualname = config["calibrator_class"].partition(":")
            cls = getattr(importlib.import_module(module), qualname)
            calibrator = cls.from_dict(json.loads(Path(artifacts[ARTIFACT_CALIBRATION]).read_text()))
        self._set(config, model, calibrator)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """MLflow's entry point: :meth:`forecast` of ``model_input`` (a DataFrame of recent bars); no params.

        The ``pd.DataFrame`` hint tells MLflow to infer no schema from it (the signature is given explicitly)."""
        return self.forecast(model_input)

    # ------------------------------------------------------------------------------------------------ forecast

    def forecast(self, bars: Any) -> pd.DataFrame:
        """The forecast frame at the last bar of ``bars`` (module docstring: input and output)."""
        if self.config is None or self.model is None:
            raise UsageError("the forecast bundle is not loaded: load it with mlflow.pyfunc.load_model")
        cfg = self.config
        frame = bars if isinstance(bars, pd.DataFrame) else pd.DataFrame(bars)
        market = self._market(frame)
        spec = self.feature_spec
        columns = list(cfg["feature_columns"])
        produced, _ = resolve(spec, market)
        warm = {c: rows for group in produced.values() for c, rows in group.items()}
        missing = [c for c in columns if c not in warm]
        if missing:
            raise UsageError(
                f"the request cannot produce the model's features {missing[:8]} ({len(missing)} missing): the served "
                "model computes its features from the bars and the iv column alone; send both as documented"
            )
        warmup = {c: warm[c] for c in columns}
        history = int(cfg["history_bars"])
        earliest = market.index[len(market.index) - 1 - history]
        window = market.tail_from(recent_start(market.until(earliest), spec, warmup))
        used = tuple(g for g in spec.groups if any(c in produced.get(g, {}) for c in columns))
        if used != spec.groups:  # groups are computed independently: skipping unread ones changes no value
            spec = dataclasses.replace(spec, groups=used)
        table = build_features(window, spec, with_fingerprint=False)
        features = table.frame[columns]
        needed = features.to_numpy(dtype=float)[features.index.searchsorted(earliest) :]  # (rows read, columns)
        bad = [c for c, ok in zip(columns, np.isfinite(needed).all(axis=0), strict=True) if not ok]
        if bad:
            raise UsageError(
                f"the features {bad[:8]} are not defined at the last {len(needed)} bar(s) the model reads: the request "
                f"has gaps or missing values (e.g. an iv column that starts late) inside the features' windows. "
                f"Send {cfg['min_rows']} complete recent bars"
            )
        iv = aligned_iv(window) if cfg["needs_iv"] else None
        data = ModelData(
            features=features,
            log_return=Context(window).log_return,
            bar_years=window.bar_years,
            horizons=tuple(int(h) for h in cfg["horizons"]),
            iv=iv,
            info={"warmup": warmup, "serving": True},
        )
        out = self.model.predict(data, np.array([len(features) - 1]))
        out["model"] = cfg["model_name"]
        if self.calibrator is not None:
            applied = self.calibrator.apply(out.assign(realized=np.nan), freq=pd.Timedelta(cfg["bar_length"]))
            out = applied
        if list(out.columns) != list(FORECAST_COLUMNS) or not isinstance(out.index, pd.RangeIndex):
            out = out[list(FORECAST_COLUMNS)].reset_index(drop=True)
        return out

    def _market(self, frame: pd.DataFrame) -> MarketData:
        """The request as a :class:`MarketData`: bars checked by the bars loader, the IV as an as-of series."""
        from forecaster.market import load_bars
        from forecaster.market.io import Source, Table, normalize_name

        cfg = self.config
        written = {normalize_name(c): str(c) for c in frame.columns}
        stamp = next((name for name in TIMESTAMP_ALIASES if name in written), None)
        need = [] if stamp else ["timestamp"]
        need += [c for c in BAR_INPUTS if c not in written]
        if cfg["needs_iv"] and "iv" not in written:
            need.append("iv")
        if need:
            raise UsageError(
                f"the request lacks the columns {need}; send the recent bars as rows with columns timestamp, open, "
                f"high, low, close, volume{', iv (decimal IV index)' if cfg['needs_iv'] else ''}; it has "
                f"{list(frame.columns)}"
            )
        if len(frame) < cfg["min_rows"]:
            raise UsageError(
                f"the request holds {len(frame)} bars; this model needs at least min_rows = {cfg['min_rows']} recent "
                f"bars (feature warm-up {cfg['warmup_rows']} + calendar anchor {cfg['anchor_rows']} + "
                f"{cfg['lag_rows']} lag rows + model history {cfg['history_bars']}). Send the last "
                f"{cfg['min_rows']} bars or more"
            )
        if len(written) < len(frame.columns):
            twice = [
                str(c) for c in frame.columns if list(map(normalize_name, frame.columns)).count(normalize_name(c)) > 1
            ]
            raise UsageError(f"the request names one column twice: {twice} (names are case- and space-insensitive)")
        original = {normalize_name(c): c for c in frame.columns}
        rows = pd.RangeIndex(1, len(frame) + 1, name="row")
        picked = {name: frame[original[name]].to_numpy() for name in (stamp, *BAR_INPUTS)}  # one copy, renamed
        source = Source(Path("<model input>"), "json")
        bars = load_bars(Table(pd.DataFrame(picked, index=rows, copy=False), source, written)).data
        freq = pd.Timedelta(cfg["bar_length"])
        spacing = infer_freq(bars.index)
        if spacing != freq:
            raise UsageError(f"the request's bars are {spacing} apart; this model was trained on {freq} bars")
        iv = None
        if "iv" in original and cfg["needs_iv"]:
            iv = self._iv(pd.Series(frame[original["iv"]].to_numpy(), index=rows), bars.index)
        return market_data(
            bars,
            freq=freq,
            annualization_days=float(cfg["annualization_days"]),
            bar_label=cfg["bar_label"],
            iv=iv,
        )

    def _iv(self, column: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
        """The iv column as decimals on the bars' timestamps; empty cells are no observation (carried as-of)."""
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)  # (n,)
        text = column.notna().to_numpy() & ~np.isfinite(values)
        if text.any():
            row = int(np.argmax(text))
            raise UsageError(f"iv must be a number; row {row + 1} holds {column.iloc[row]!r}")
        known = np.isfinite(values)
        if not known.any():
            raise UsageError("the iv column is empty: this model needs the IV known at the recent bars")
        units = self.config["iv_units"]
        if units == "auto":
            units = "pct" if float(np.median(values[known])) > AUTO_PCT_ABOVE else "dec"
        decimal = values / (100.0 if units == "pct" else 1.0)
        bad = known & ~((decimal > 0) & (decimal <= MAX_IV))
        if bad.any():
            row = int(np.argmax(bad))
            raise UsageError(
                f"iv at row {row + 1} is {values[row]!r} ({units}); an IV must be in (0, {MAX_IV:g}] as a decimal. "
                f"Send the IV in {'percent' if units == 'pct' else 'decimal'} units"
            )
        if self.config["bar_label"] == "open":  # the IV is stamped like the bars: move it with them
            index = index + pd.Timedelta(self.config["bar_length"])
        return pd.Series(decimal[known], index=index[known], name="iv")


# ---------------------------------------------------------------------------------------------------- building


@dataclass
class Bundle:
    """A forecast bundle ready to log: ``config`` (``bundle.json``), the fitted model, its calibrator, and an
    input example (the last ``min_rows`` bars of the training market when that is at most
    :data:`EXAMPLE_MAX_ROWS`, so MLflow's check of the example runs a real forecast; None when a valid request is
    longer: a shorter example would fail that check, and the signature already states the columns)."""

    config: dict[str, Any]
    model: Forecaster
    calibrator: Any
    example: pd.DataFrame | None

    def loaded(self) -> ForecastBundle:
        """The pyfunc loaded in process (what ``mlflow.pyfunc.load_model`` gives back)."""
        return ForecastBundle.from_parts(self.config, self.model, self.calibrator)

    def signature(self) -> Any:
        """Input: the bars frame (timestamp as text or number); output: the forecast frame."""
        from mlflow.models import ModelSignature
        from mlflow.types.schema import AnyType, ColSpec, Schema

        inputs = [ColSpec(AnyType(), "timestamp"), *(ColSpec("double", c) for c in BAR_INPUTS)]
        inputs.append(ColSpec("double", "iv", required=bool(self.config["needs_iv"])))
        outputs = [ColSpec("datetime", "timestamp"), ColSpec("long", "horizon"), ColSpec("string", "model")]
        outputs += [ColSpec("double", c) for c in FORECAST_COLUMNS[3:]]
        return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))

    def write_artifacts(self, folder: str | Path) -> dict[str, str]:
        """Write ``bundle.json``, ``model.pkl`` and ``calibration.json`` into ``folder``; name → path."""
        import cloudpickle

        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        paths = {ARTIFACT_CONFIG: root / "bundle.json", ARTIFACT_MODEL: root / "model.pkl"}
        paths[ARTIFACT_CONFIG].write_text(json.dumps(self.config, indent=2, allow_nan=False))
        with open(paths[ARTIFACT_MODEL], "wb") as handle:
            cloudpickle.dump(self.model, handle)
        if self.calibrator is not None:
            paths[ARTIFACT_CALIBRATION] = root / "calibration.json"
            paths[ARTIFACT_CALIBRATION].write_text(json.dumps(self.calibrator.to_dict(), allow_nan=False))
        return {name: str(path) for name, path in paths.items()}

    def log_model_kwargs(self, folder: str | Path) -> dict[str, Any]:
        """The keyword arguments of ``mlflow.pyfunc.log_model`` (all but ``name``), artifacts written to
        ``folder`` (which must exist until the model is logged)."""
        return {
            "python_model": ForecastBundle(),
            "artifacts": self.write_artifacts(folder),
            "signature": self.signature(),
            "input_example": self.example,
            "code_paths": code_paths(),
            "pip_requirements": pip_requirements(),
        }


def code_paths() -> list[str]:
    """The folders of the packages the bundle's code lives in (copied into the model)."""
    return [str(Path(importlib.import_module(name).__file__).parent) for name in CODE_PACKAGES]


def pip_requirements() -> list[str] | None:
    """The project's runtime dependencies pinned to the installed versions (``numpy==2.3.4`` ...; a local version
    label such as torch's ``+cpu`` is dropped so a package index resolves it), plus cloudpickle (the model
    artifact); None, with a warning, when the project is not installed (MLflow then infers them)."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires(PROJECT_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        log.warning("%s is not installed: MLflow infers the model's requirements", PROJECT_DISTRIBUTION)
        return None
    pinned = []
    for text in [*declared, "cloudpickle"]:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(requirement.name).split("+")[0]  # torch 2.13.0+cpu: PyPI knows 2.13.0
            pinned.append(f"{requirement.name}=={version}")
        except metadata.PackageNotFoundError:
            pinned.append(str(requirement))
    return pinned


def build_bundle(
    model: Forecaster,
    feature_spec: FeatureSpec,
    calibrator: Any = None,
    *,
    market: MarketData,
    feature_columns: Sequence[str],
    name: str | None = None,
    bar_label: str = "end",
    iv_units: str = "dec",
    data: ModelData | None = None,
) -> Bundle:
    """Bundle a fitted forecaster with the feature pipeline and its calibration (used by ``register_best``).

    Parameters
    ----------
    model
        The fitted forecaster (the walk-forward's last fold, ``result.fitted[name]``).
    feature_spec
        The spec's features section (the pipeline the served model runs).
    calibrator
        Its fitted ``ConformalCalibrator`` (``result.calibrators[name]``), or None.
    market
        The market the model was trained on: bar length, annualization, whether an IV was known (then the request
        must carry ``iv``), and the input example's bars.
    feature_columns
        The feature table's columns the model was fitted with, in order (``ModelData.features.columns``).
    name
        The model's name in the spec (the forecast frame's ``model``; the calibrator's key); default its label.
    bar_label
        How request timestamps label bars: ``end`` or ``open`` (the spec's ``data.bar_label``).
    iv_units
        Units of the request's ``iv`` column: ``dec`` (default), ``pct`` or ``auto``.
    data
        The training ``ModelData`` (of ``market``). When given, the bundle checks itself: the forecast it computes
        from the last ``min_rows`` bars of ``market`` (bars and IV only) must equal ``model.predict(data, [last
        bar])`` to 1e-9 relative; otherwise the model reads something a request does not carry (a column outside
        ``feature_columns``, trades, the option chain) and bundling fails.

    Raises
    ------
    UsageError
        The model is not fitted, is the oracle (it reads the simulator's latent state), does not state its history,
        uses features a request cannot carry (order flow from trades, option-chain columns), or (with ``data``)
        its served forecast differs from the batch one.
    """
    if model.family == "oracle":
        raise UsageError(
            "the oracle reads the simulator's latent state, which a request cannot carry: register another model"
        )
    if not hasattr(model, "residuals_"):
        raise UsageError(f"model {model.label!r} is not fitted: fit it (walk_forward) before bundling")
    if bar_label not in ("end", "open"):
        raise UsageError(f"bar_label must be end or open; got {bar_label!r}")
    if iv_units not in IV_UNITS:
        raise UsageError(f"iv_units must be one of {', '.join(IV_UNITS)}; got {iv_units!r}")
    freq = pd.Timedelta(market.freq)
    needs_iv = market.iv is not None or market.chain is not None
    columns = [str(c) for c in feature_columns]
    available = serving_columns(feature_spec, freq, market.annualization_days, needs_iv)
    missing = [c for c in columns if c not in available]
    if missing:
        raise UsageError(
            f"the model uses features a request cannot carry: {missing[:8]} ({len(missing)} in all; order flow needs "
            "trades, chain_* columns an option chain). A served model receives bars and an IV only. Fix: train the "
            "model to register without them (features.groups without flow, an IV index rather than a chain, or the "
            "model's own features list)"
        )
    warmup = max((available[c] for c in columns), default=0)
    anchor = anchor_bars(feature_spec, freq)
    history = history_bars(model)
    rows = min_rows_needed(warmup, anchor, history)
    horizons = [int(h) for h in model.horizons_]
    config = {
        "format": FORMAT,
        "model_name": name or model.label,
        "model_family": model.family,
        "feature_spec": feature_spec.to_dict(),
        "feature_columns": columns,
        "horizons": horizons,
        "bar_length": freq.isoformat(),
        "annualization_days": float(market.annualization_days),
        "bar_label": bar_label,
        "iv_units": iv_units,
        "needs_iv": needs_iv,
        "warmup_rows": int(warmup),
        "anchor_rows": int(anchor),
        "lag_rows": LAG_ROWS,
        "history_bars": int(history),
        "min_rows": rows,
        "calibrator_class": None
        if calibrator is None
        else f"{type(calibrator).__module__}:{type(calibrator).__qualname__}",
    }
    if len(market.index) < rows:
        raise UsageError(f"the training market has {len(market.index)} bars, fewer than min_rows = {rows}")
    example = None
    if rows <= EXAMPLE_MAX_ROWS:
        example = request_frame(market, rows, bar_label=bar_label, iv_units=iv_units, with_iv=needs_iv)
    else:
        log.info(
            "no input example: a valid request holds min_rows = %d bars (> %d); the signature states the columns",
            rows,
            EXAMPLE_MAX_ROWS,
        )
    bundle = Bundle(config, model, calibrator, example)
    if data is not None:
        _check_served_equals_batch(bundle, market, data)
    return bundle


SELF_CHECK_RTOL = 1e-9


def _check_served_equals_batch(bundle: Bundle, market: MarketData, data: ModelData) -> None:
    """Forecast the last bar from a request (bars and IV only) and from the batch data; refuse when they differ."""
    from forecaster.errors import ForecasterError

    cfg = bundle.config
    if len(data) != len(market.index) or not data.index.equals(market.index):
        raise UsageError("data must be the ModelData of market (same bars): build both from the same market")
    request = request_frame(
        market, cfg["min_rows"], bar_label=cfg["bar_label"], iv_units=cfg["iv_units"], with_iv=cfg["needs_iv"]
    )
    served = ForecastBundle.from_parts(cfg, bundle.model, None)
    why = (
        f"the served model does not reproduce the batch forecast of {cfg['model_name']!r} at the last bar, so it "
        "reads something a request does not carry (a feature column outside feature_columns, trades, the option "
        "chain, a longer history than history_bars)"
    )
    try:
        got = served.forecast(request)
    except ForecasterError as exc:
        raise UsageError(f"{why}: from the request it fails with {exc}") from exc
    want = bundle.model.predict(data, np.array([len(data) - 1]))
    columns = list(FORECAST_COLUMNS[3:])
    a, b = got[columns].to_numpy(dtype=float), want[columns].to_numpy(dtype=float)
    if list(got["horizon"]) != list(want["horizon"]) or not np.allclose(a, b, rtol=SELF_CHECK_RTOL, atol=0.0):
        worst = np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)
        raise UsageError(f"{why}: relative difference up to {float(np.nanmax(worst)):.3g}")


def request_frame(
    market: MarketData, rows: int, *, bar_label: str = "end", iv_units: str = "dec", with_iv: bool = True
) -> pd.DataFrame:
    """The last ``rows`` bars of ``market`` as a request: ISO timestamps, OHLCV and (``with_iv``) the IV known at
    each bar in ``iv_units`` (the IV index, else the chain's 30-day ATM IV)."""
    bars = market.bars.iloc[-rows:]
    stamps = bars.index - market.freq if bar_label == "open" else bars.index
    out = pd.DataFrame({"timestamp": [t.isoformat() for t in stamps]})
    for column in BAR_INPUTS:
        out[column] = bars[column].to_numpy(dtype=float)
    if with_iv:
        if market.iv is not None:
            iv = aligned_iv(market)
        elif market.chain is not None:
            iv = chain_atm_iv_on_bars(market, 30.0)
        else:
            raise UsageError("the market has no IV (neither an IV index nor an option chain) to put in the request")
        out["iv"] = iv[-rows:] * (100.0 if iv_units == "pct" else 1.0)
    return out
