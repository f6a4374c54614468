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

The option-chain branch (ATM IV at fixed tenors, term slope, 25Δ risk reversal and butterfly) is a separate
pair of column and compute functions joined in :class:`ImpliedGroup` when it lands; nothing here stands for it.

Shapes: every array is (n,), one value per bar, in time order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.windows import window_sum
from forecaster.errors import UsageError
from forecaster.market import align_iv_to_bars

FloatArray = npt.NDArray[np.float64]

DEFAULT_PERCENTILE_DAYS = 30
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
    needs: tuple[str, ...] = ("iv",)

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        return _index_columns(windows, params, data, iv_lead(aligned_iv(data)))

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        return _index_features(ctx, windows, params)


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
