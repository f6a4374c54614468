"""Implied-vol features from an IV index (30-day ATM, like DVOL or VIX): level, change, percentile, and the
variance risk premium against realized variance (DESIGN sections 2 and 5).

Columns, for every window W (bars) of the spec and D = ``iv_percentile_days`` (spec ``features:`` key, default 30):

- ``iv``: the index as-of aligned to the bars (the last value at or before each bar's end), decimal, annualized.
- ``iv_chg_W``: iv(t) − iv(t − W bars).
- ``iv_pct_D``: where iv(t) ranks among the IV at the same time of day on each of the previous D days (rows
  t − k·s, k = 1..D, s = bars per day; for daily or longer bars s = 1: the previous D rows, so trading days for
  exchange data). Mid-rank: (#below + ½ #equal) / D, in [0, 1]; a flat IV gives 0.5. D is in days, not bars.
- ``vrp_W``: iv(t)² · W · (bar in years) − rv_W(t), rv_W = Σ of the last W squared log returns: implied variance
  over W bars minus the realized variance of the W bars just past. This is the backward-looking VRP proxy; the
  textbook VRP compares with the variance realized over the next W bars, which would leak the future.

Warm-up (leading NaN rows): W for ``iv_chg_W`` and ``vrp_W``, D·s for ``iv_pct_D``, 0 for ``iv``, each counted
from the first bar that has an IV value. An IV index that starts after the bars (VIX from 1990 against bars from
1950, a DVOL export that begins mid-file) leaves ``lead`` bars without any IV: :func:`iv_lead`. They belong to
the warm-up (``iv_chg_W``: lead + W, ``iv_pct_D``: lead + D·s, ``vrp_W``: max(lead, W)) because no value of the
inputs could fill them, and the pipeline's rule "no NaN after the warm-up" then holds on such data as well. Missing
prints (NaN) inside the IV index are not observations: the as-of value carries over them, so no NaN appears after
the lead. The lead depends on where the IV index starts, never on its values.

From an option chain (``chain`` input, snapshots as :func:`forecaster.market.load_options_chain` gives them), with
T in ``chain_tenors_days`` (spec ``features:`` key, default 7, 30, 90 days) and the light smile of every snapshot of
:mod:`features.chain` (ATM IV, 25-delta risk reversal and butterfly per expiry; linear in tau between expiries):

- ``chain_atm_iv_Td``: ATM IV at tenor T days (decimal), ``chain_rr25_Td`` and ``chain_bf25_Td``: the 25-delta risk
  reversal and butterfly at T (vol, decimal), each from the last snapshot at or before the bar's end.
- ``chain_term_slope_T1d_TNd``: ATM IV at the longest tenor minus at the shortest (> 0 in contango; it inverts in
  stress). Only with two or more tenors.
- ``<level>_chg_W``: each of those levels at t minus at t − W bars.
- ``chain_vrp_W``: ATM total implied variance at the tenor of W bars (``σ_ATM(T)² · T``, T = W · bar years) minus the
  realized variance of the W bars just past: the chain's own matched-window variance risk premium.

Snapshots without a usable quote are not observations: the last usable one carries over them. The lead is the
number of bars before the first usable snapshot; warm-ups: lead for the levels, lead + W for ``_chg_W``,
max(lead, W) for ``chain_vrp_W``. With both inputs, the index columns come first, then the chain columns.

Shapes: every array is (n,), one value per bar, in time order.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.chain import fit_smiles, usable_rows
from features.windows import window_sum
from forecaster.errors import UsageError
from forecaster.market import align_iv_to_bars

FloatArray = npt.NDArray[np.float64]

DEFAULT_PERCENTILE_DAYS = 30
DEFAULT_CHAIN_TENORS_DAYS = (7, 30, 90)
_DAY = pd.Timedelta(days=1)


def aligned_iv(data: MarketData) -> FloatArray:
    """The IV index known at each bar (as-of, never a later value), NaN before its first value. Shape (n,)."""
    if data.iv is None:
        return np.full(len(data.index), np.nan)
    iv = data.iv[np.isfinite(data.iv.to_numpy(dtype=float))]  # a missing print is no observation: carry the last
    return align_iv_to_bars(iv, data.index).to_numpy(dtype=float)


def iv_lead(iv: FloatArray) -> int:
    """Bars before the first one with an IV value (0 when the index starts at or before the bars)."""
    known = np.isfinite(iv)
    return int(np.argmax(known)) if known.any() else iv.size


def rows_per_day(freq: pd.Timedelta) -> int:
    """Rows between the same time of day on consecutive days: 1 day / freq intraday, 1 for daily or longer bars.

    Raises
    ------
    UsageError
        An intraday bar length that does not divide a day (no fixed row shift reaches the same time of day).
    """
    if freq >= _DAY:
        return 1
    if _DAY % freq != pd.Timedelta(0):
        raise UsageError(
            f"the implied feature iv_pct_D compares the IV with its values at the same time on previous days, which "
            f"needs a bar length that divides a day; got {freq}. Fix: resample the bars (e.g. 1min, 5min, 1h, 1D)"
        )
    return int(_DAY // freq)


def percentile_days(params: Mapping[str, object]) -> int:
    """``iv_percentile_days`` from the spec's ``features:`` section (default 30), checked."""
    days = params.get("iv_percentile_days", DEFAULT_PERCENTILE_DAYS)
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise UsageError(f"features.iv_percentile_days must be a whole number of days ≥ 1; got {days!r}")
    return int(days)


def iv_change(iv: FloatArray, window: int) -> FloatArray:
    """iv(t) − iv(t − window). Shape (n,); the first ``window`` rows are NaN."""
    out = np.full(iv.size, np.nan)
    out[window:] = iv[window:] - iv[:-window]
    return out


def iv_percentile(iv: FloatArray, days: int, step: int) -> FloatArray:
    """Mid-rank of iv(t) among iv(t − k·step), k = 1..days: (#below + ½ #equal) / days. Shape (n,).

    NaN where iv(t) or any of the compared values is NaN, and on the first days·step rows.
    """
    n, span = iv.size, days * step
    out = np.full(n, np.nan)
    if n <= span:
        return out
    current = iv[span:]  # (n − span,)
    below = np.zeros(current.size)
    equal = np.zeros(current.size)
    missing = np.isnan(current)
    for k in range(1, days + 1):  # days passes of (n,) each: memory stays O(n) for a year of minutes
        past = iv[span - k * step : n - k * step]  # (n − span,): the same time of day, k days back
        below += past < current
        equal += past == current
        missing |= np.isnan(past)
    out[span:] = np.where(missing, np.nan, (below + 0.5 * equal) / days)
    return out


def variance_risk_premium(
    iv: FloatArray, log_return: FloatArray, window: int, bar_years: float, blocks: npt.NDArray[np.int64]
) -> FloatArray:
    """iv(t)² · window · bar_years − Σ_{i=0..window−1} r_{t−i}²: implied minus past realized variance. Shape (n,).

    ``blocks``: the anchor ids of ``window`` (:meth:`features.base.Context.blocks`), so the realized sum is exact.
    """
    realized = window_sum(log_return * log_return, window, blocks)
    return iv * iv * (window * bar_years) - realized


class ImpliedGroup:
    name = "implied"
    needs: tuple[str, ...] = ("iv|chain",)

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        columns = {}
        if data.iv is not None:
            columns |= _index_columns(windows, params, data, iv_lead(aligned_iv(data)))
        if data.chain is not None:
            columns |= _chain_columns(windows, params, chain_lead(data))
        return columns

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        parts = []
        if ctx.data.iv is not None:
            parts.append(_index_features(ctx, windows, params))
        if ctx.data.chain is not None:
            parts.append(_chain_features(ctx, windows, params))
        return pd.concat(parts, axis=1)


def chain_tenors(params: Mapping[str, object]) -> tuple[float, ...]:
    """``chain_tenors_days`` from the spec's ``features:`` section (default 7, 30, 90), checked."""
    tenors = params.get("chain_tenors_days", DEFAULT_CHAIN_TENORS_DAYS)
    values = list(tenors) if isinstance(tenors, list | tuple) else None
    ok = values is not None and len(values) > 0
    ok = ok and all(not isinstance(t, bool) and isinstance(t, int | float) and 0 < t < 10_000 for t in values)
    ok = ok and all(a < b for a, b in pairwise(values))
    if not ok:
        raise UsageError(
            "features.chain_tenors_days must be a list of increasing tenors in days, each > 0 "
            f"(e.g. [7, 30, 90]); got {tenors!r}"
        )
    return tuple(float(t) for t in values)


def _tenor_label(days: float) -> str:
    return f"{days:g}d"


def chain_lead(data: MarketData) -> int:
    """Bars that end before the chain's first usable snapshot (all bars when it has none)."""
    chain = data.chain
    usable = usable_rows(chain) if chain is not None and len(chain) else np.zeros(0, dtype=bool)
    if not usable.any():
        return len(data.index)
    first = chain.index[usable].min()
    return int(np.searchsorted(data.index.as_unit("ns").asi8, first.as_unit("ns").value, side="left"))


def _chain_levels(tenors: tuple[float, ...]) -> list[str]:
    names = [f"chain_atm_iv_{_tenor_label(t)}" for t in tenors]
    if len(tenors) > 1:
        names.append(f"chain_term_slope_{_tenor_label(tenors[0])}_{_tenor_label(tenors[-1])}")
    names += [f"chain_rr25_{_tenor_label(t)}" for t in tenors]
    names += [f"chain_bf25_{_tenor_label(t)}" for t in tenors]
    return names


def _chain_columns(windows: tuple[int, ...], params: Mapping[str, object], lead: int) -> dict[str, int]:
    """The option-chain columns in order, each with its warm-up."""
    levels = _chain_levels(chain_tenors(params))
    columns = dict.fromkeys(levels, lead)
    columns |= {f"{name}_chg_{w}": lead + w for name in levels for w in windows}
    columns |= {f"chain_vrp_{w}": max(lead, w) for w in windows}
    return columns


def _chain_features(ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
    data = ctx.data
    tenors = chain_tenors(params)
    chain = _relevant_snapshots(data)
    smiles = fit_smiles(chain)
    years = [t / 365.0 for t in tenors]  # tenor days are calendar days, as the chain's tau
    labels = [_tenor_label(t) for t in tenors]
    per_snapshot = {f"chain_atm_iv_{lab}": smiles.atm_iv(y) for lab, y in zip(labels, years, strict=True)}
    if len(tenors) > 1:
        slope = per_snapshot[f"chain_atm_iv_{labels[-1]}"] - per_snapshot[f"chain_atm_iv_{labels[0]}"]
        per_snapshot[f"chain_term_slope_{labels[0]}_{labels[-1]}"] = slope
    for name, values in (("rr25", smiles.rr25), ("bf25", smiles.bf25)):
        per_snapshot |= {
            f"chain_{name}_{lab}": smiles.at_tenor(values, y) for lab, y in zip(labels, years, strict=True)
        }
    # the matched VRP: the ATM total variance at the tenor of W bars, W · bar_years (as the index's iv² · W · bar_years)
    per_snapshot |= {f"_w_{w}": smiles.atm_total_variance(w * data.bar_years) for w in windows}
    out = {name: _as_of(smiles.snapshots, values, data.index) for name, values in per_snapshot.items()}
    levels = _chain_levels(tenors)
    out |= {f"{name}_chg_{w}": iv_change(out[name], w) for name in levels for w in windows}
    for w in windows:
        realized = window_sum(ctx.log_return * ctx.log_return, w, ctx.blocks(w))
        out[f"chain_vrp_{w}"] = out.pop(f"_w_{w}") - realized
    return pd.DataFrame(out, index=data.index)[list(_chain_columns(windows, params, 0))]


def chain_atm_iv_on_bars(data: MarketData, tenor_days: float = 30.0) -> FloatArray:
    """The chain's ATM IV at ``tenor_days`` known at each bar (last usable snapshot at or before it), NaN before
    the first. Shape (n,). The ``div_h`` target uses it (30 days) when the market has a chain and no IV index."""
    smiles = fit_smiles(_relevant_snapshots(data))
    return _as_of(smiles.snapshots, smiles.atm_iv(tenor_days / 365.0), data.index)


def _as_of(stamps: pd.DatetimeIndex, values: FloatArray, index: pd.DatetimeIndex) -> FloatArray:
    """Per bar, the value of the last snapshot at or before the bar's time; NaN before the first. Shape (n,)."""
    at = np.searchsorted(stamps.as_unit("ns").asi8, index.as_unit("ns").asi8, side="right") - 1
    if not len(values):
        return np.full(len(index), np.nan)
    return np.where(at >= 0, values[np.maximum(at, 0)], np.nan)


def _relevant_snapshots(data: MarketData) -> pd.DataFrame:
    """The chain from the last usable snapshot at or before the first bar on (every snapshot a bar can see).

    Each snapshot's values depend on its own rows only, so leaving earlier ones out changes no value: serving
    from a recent window fits a few snapshots, not the whole history."""
    chain = data.chain
    usable = usable_rows(chain)
    stamps = chain.index[usable]
    before = stamps[stamps <= data.index[0]] if len(data.index) else stamps[:0]
    start = before.max() if len(before) else None
    return chain.loc[usable] if start is None else chain.loc[usable & (chain.index >= start)]


def _index_columns(
    windows: tuple[int, ...], params: Mapping[str, object], data: MarketData, lead: int
) -> dict[str, int]:
    """The IV-index columns in order, each with its warm-up (``lead`` bars without IV included)."""
    days, step = percentile_days(params), rows_per_day(data.freq)
    columns = {"iv": lead}
    columns |= {f"iv_chg_{w}": lead + w for w in windows}
    columns[f"iv_pct_{days}"] = lead + days * step
    columns |= {f"vrp_{w}": max(lead, w) for w in windows}
    return columns


def _index_features(ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
    data = ctx.data
    iv = aligned_iv(data)
    days = percentile_days(params)
    out = {"iv": iv}
    out |= {f"iv_chg_{w}": iv_change(iv, w) for w in windows}
    out[f"iv_pct_{days}"] = iv_percentile(iv, days, rows_per_day(data.freq))
    out |= {f"vrp_{w}": variance_risk_premium(iv, ctx.log_return, w, data.bar_years, ctx.blocks(w)) for w in windows}
    return pd.DataFrame(out, index=data.index)


GROUP = ImpliedGroup()
