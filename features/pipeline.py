"""The feature pipeline: the spec's groups and windows resolved to an ordered list of columns, computed on a
market, with the warm-up of every column, the groups skipped for lack of input, and a fingerprint.

``build_features`` is the batch path; ``last_row`` is the serving path and runs the very same code on a recent
window that starts at a calendar anchor (:func:`recent_start`), so its row equals the batch row bit for bit.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from features.base import Context, FeatureGroup, MarketData
from features.windows import anchor_for, history_start
from forecaster.errors import ConfigError, UsageError

LAG_ROWS = 2  # bars a per-bar feature may look back beyond its window (a return, and the return before it)
# group name -> module defining GROUP; order here is the column order of the table
GROUP_MODULES = {
    "realized": "features.realized",
    "implied": "features.implied",
    "volume": "features.volume",
    "flow": "features.flow",
    "calendar": "features.calendar",
}


@dataclass(frozen=True)
class FeatureSpec:
    """The ``features:`` section of an experiment spec.

    ``windows`` are in bars of the base frequency (HAR: a day, a week, a month); ``params`` holds the groups'
    extra settings (e.g. ``iv_percentile_days``).
    """

    groups: tuple[str, ...] = tuple(GROUP_MODULES)
    windows: tuple[int, ...] = (60, 1440, 10080, 43200)
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": list(self.groups), "windows": list(self.windows), **dict(self.params)}


def feature_spec_from_spec(spec_values: Mapping[str, Any], *, where: str = "<spec>") -> FeatureSpec:
    """Read and check the spec's ``features:`` section (groups known, windows increasing positive integers)."""
    section = dict(spec_values.get("features") or {})
    groups = tuple(section.pop("groups", GROUP_MODULES))
    unknown = [g for g in groups if g not in GROUP_MODULES]
    if unknown or not groups or len(set(groups)) != len(groups):
        raise ConfigError(
            where, "features.groups", f"must list distinct groups among {', '.join(GROUP_MODULES)}; got {list(groups)}"
        )
    windows = section.pop("windows", list(FeatureSpec.windows))
    if (
        not isinstance(windows, list | tuple)
        or not windows
        or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in windows)
        or any(b <= a for a, b in pairwise(windows))
    ):
        raise ConfigError(where, "features.windows", f"must be increasing bar counts ≥ 1; got {windows!r}")
    ordered = tuple(g for g in GROUP_MODULES if g in groups)  # stable order whatever the spec's order
    _check_params(section, where)
    return FeatureSpec(ordered, tuple(int(w) for w in windows), section)


def _check_params(params: Mapping[str, Any], where: str) -> None:
    """The groups' settings: known keys only, each value checked by the group that reads it."""
    from features.implied import chain_tenors, percentile_days

    checks = {"iv_percentile_days": percentile_days, "chain_tenors_days": chain_tenors}
    for key in params:
        if key not in checks:
            raise ConfigError(
                where,
                f"features.{key}",
                f"unknown key; the features section takes groups, windows, {', '.join(checks)}",
            )
        try:
            checks[key](params)
        except UsageError as error:
            raise ConfigError(where, f"features.{key}", str(error)) from None


def group(name: str) -> FeatureGroup:
    return importlib.import_module(GROUP_MODULES[name]).GROUP


@dataclass
class FeatureTable:
    """Features of one market: ``frame`` (index = bar end times, columns = ``names`` in order); ``groups``: the
    groups that ran with their columns; ``skipped``: the groups that did not, with the reason."""

    frame: pd.DataFrame
    names: list[str]
    warmup: dict[str, int]
    groups: dict[str, list[str]]
    skipped: dict[str, str]
    fingerprint: str

    def after_warmup(self) -> pd.DataFrame:
        """Rows past the longest warm-up: where every column is defined by construction."""
        return self.frame.iloc[max(self.warmup.values(), default=0) :]


def resolve(spec: FeatureSpec, data: MarketData) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Groups that run (name -> {column: warm-up}) and groups skipped (name -> why)."""
    run: dict[str, dict[str, int]] = {}
    skipped: dict[str, str] = {}
    for name in spec.groups:
        g = group(name)
        missing = [need for need in g.needs if not data.has(need)]
        if missing:
            skipped[name] = f"no {', '.join(m.replace('|', ' or ') for m in missing)} input"
            continue
        columns = g.columns(spec.windows, spec.params, data)
        if not columns:
            skipped[name] = "no column applies at this frequency"
            continue
        run[name] = columns
    return run, skipped


def build_features(
    data: MarketData, spec: FeatureSpec, *, with_fingerprint: bool = True, show_progress: bool = False
) -> FeatureTable:
    """Compute every column of the spec's groups on ``data`` (batch).

    ``with_fingerprint=False`` skips hashing the inputs (``fingerprint`` is then empty): serving needs no cache key.
    ``show_progress`` shows a bar over the groups on a terminal.
    """
    from forecaster.progress import progress

    _check_bars(data)
    run, skipped = resolve(spec, data)
    ctx = Context(data)
    parts = []
    groups = progress(run.items(), desc="features", total=len(run), unit="group") if show_progress else run.items()
    for name, columns in groups:
        part = group(name).compute(ctx, spec.windows, spec.params)
        parts.append(part[list(columns)])
    frame = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=data.index)
    warmup = {column: rows for columns in run.values() for column, rows in columns.items()}
    by_group = {name: list(columns) for name, columns in run.items()}
    key = fingerprint(spec, data) if with_fingerprint else ""
    return FeatureTable(frame, list(frame.columns), warmup, by_group, skipped, key)


def recent_start(data: MarketData, spec: FeatureSpec, warmup: Mapping[str, int]) -> pd.Timestamp:
    """The earliest bar a recent window must start at so :func:`last_row` equals the batch row exactly: the
    longest warm-up back from the last bar, then back to the start of that bar's calendar anchor."""
    rows = max(warmup.values(), default=0)
    anchors = {anchor_for(w, data.freq) for w in spec.windows}
    start = min(history_start(data.index, rows, anchor) for anchor in anchors)
    # the anchor block's first rows need their own lagged inputs (the previous close for a return, the return
    # before for bipower variation): keep a few bars before the anchor so they are computed as in batch
    position = max(int(data.index.get_loc(start)) - LAG_ROWS, 0)
    return data.index[position]


def last_row(data: MarketData, spec: FeatureSpec) -> pd.Series:
    """The features of the last bar, from a recent window of ``data`` (the serving path, same code as batch).

    ``data`` may hold any history; it is cut to :func:`recent_start` first, so passing more changes nothing.
    """
    run, _ = resolve(spec, data)
    warmup = {column: rows for columns in run.values() for column, rows in columns.items()}
    start = recent_start(data, spec, warmup)
    needed = max(warmup.values(), default=0)
    if data.index.get_loc(start) == 0 and len(data.index) <= needed:
        raise UsageError(
            f"the recent window holds {len(data.index)} bars; the features need {needed + 1} "
            f"(their longest warm-up) plus the start of a calendar anchor: send more history"
        )
    return build_features(data.tail_from(start), spec, with_fingerprint=False).frame.iloc[-1]


def fingerprint(spec: FeatureSpec, data: MarketData) -> str:
    """A short hash of the spec and the inputs (values and times): a cache key and an MLflow tag."""
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode())
    digest.update(str(data.freq).encode())
    digest.update(pd.util.hash_pandas_object(data.bars, index=True).to_numpy().tobytes())
    for extra in (data.trades, data.iv):
        if extra is not None:
            digest.update(pd.util.hash_pandas_object(extra, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_bars(data: MarketData) -> None:
    index = data.bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise UsageError("bars must be indexed by tz-aware UTC timestamps (load them with forecaster.market)")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise UsageError("bar timestamps must be strictly increasing (validate or --repair the bars file)")
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in data.bars.columns]
    if missing:
        raise UsageError(f"bars need the columns open, high, low, close, volume; missing: {', '.join(missing)}")
    if len(index) and not np.all(np.isfinite(data.bars["close"].to_numpy(dtype=float))):
        raise UsageError("bar closes must be finite numbers (validate the bars file)")
