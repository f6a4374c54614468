"""Backtest metrics (DESIGN sections 6 and 10): tail risk, daily P&L, policy metrics, margin-model backtests and
cost-risk frontiers. Pure numpy/pandas/scipy functions; one definition each.

Conventions
-----------
- Money is in the quote currency (USD for BTC-USD). P&L is positive for a gain; risk measures such as
  :func:`expected_shortfall` are reported as a positive *loss*.
- Timestamps are tz-aware and are read in UTC. A bar's timestamp is its END: the bar covers ``(t − Δ, t]``, so a
  bar that ends exactly at 00:00 UTC belongs to the day before (:func:`day_of_bar_end`). Daily statistics use the
  days that have at least one bar; a day with no bar (a gap in the data) is not filled with zero.
- Nothing is ignored silently: an empty input, a non-finite value, a misaligned index or a missing column raises
  :class:`forecaster.errors.UsageError` naming the argument, what was received and the fix. NaN is never returned
  except in :func:`matched_cost_comparison`, where it marks a cost outside another policy's swept range.
- A statistic that the data cannot define (the standard deviation of one day, a 5-day increase over fewer than six
  days) is ``None`` (JSON has no NaN) and a note says why: appended to ``notes`` when the caller passes a list,
  otherwise emitted as a :class:`MetricNote` warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

from forecaster.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY = pd.Timedelta(days=1)
RECORD_COLUMNS = (
    "pnl",
    "hedge_cost",
    "net_delta_units",
    "delta_limit_units",
    "equity",
    "initial_margin",
    "maintenance_margin",
    "forced_liquidation",
)
POLICY_METRIC_KEYS = (
    "hedging_cost",
    "pnl_total",
    "daily_pnl_mean",
    "daily_pnl_std",
    "daily_pnl_cvar95",
    "max_abs_net_delta",
    "time_outside_limits",
    "margin_breaches",
    "breach_bars",
    "forced_liquidations",
    "mean_idle_collateral",
    "n_trades",
    "days",
)
GREEN_BELOW = 0.95  # Basel traffic light: P(X ≤ x) below this is green ...
YELLOW_BELOW = 0.9999  # ... below this yellow, else red
FRONTIER_PARAM = "param"


class MetricNote(UserWarning):
    """A metric was reported as ``None`` because the data do not define it; emitted when no ``notes`` list is given."""


# ---------------------------------------------------------------------------------------------- input checks


def _note(notes: list[str] | None, text: str) -> None:
    if notes is None:
        warnings.warn(text, MetricNote, stacklevel=3)
    else:
        notes.append(text)


def _vector(x: npt.ArrayLike, name: str, what: str) -> FloatArray:
    """``x`` as a finite 1-d float array of at least one value; ``what`` says what one value is."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{name} must be numbers ({what}); got values that are not: {err}") from None
    if a.ndim != 1:
        raise UsageError(f"{name} must be 1-d, one value per {what}; got shape {a.shape}: pass a flat array or Series")
    if a.size == 0:
        raise UsageError(f"{name} is empty: pass at least one value ({what})")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise UsageError(
            f"{name} has {bad.size} non-finite value(s), the first at position {i} ({float(a[i])!r}): "
            f"drop or fill them before computing the metric"
        )
    return a


def _probability(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not 0.0 < float(value) < 1.0:
        raise UsageError(f"{name} must be a number strictly between 0 and 1 (e.g. 0.99); got {value!r}")
    return float(value)


def _count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < low:
        raise UsageError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def _utc_index(index: pd.Index, name: str) -> pd.DatetimeIndex:
    """``index`` as an increasing, duplicate-free DatetimeIndex in UTC."""
    if not isinstance(index, pd.DatetimeIndex):
        raise UsageError(
            f"{name} must be indexed by bar-end timestamps (a tz-aware DatetimeIndex); got {type(index).__name__}: "
            f"set the index with pd.to_datetime(..., utc=True)"
        )
    if index.tz is None:
        raise UsageError(f"{name} has tz-naive timestamps: localize them to UTC (index.tz_localize('UTC'))")
    if index.has_duplicates:
        first = index[index.duplicated()][0]
        raise UsageError(f"{name} has duplicate timestamps (first {first}): keep one row per bar")
    if not index.is_monotonic_increasing:
        raise UsageError(f"{name} timestamps are not increasing: sort by time first (sort_index())")
    return index.tz_convert("UTC")


def _series(x: pd.Series, name: str, what: str) -> pd.Series:
    if not isinstance(x, pd.Series):
        raise UsageError(f"{name} must be a pandas Series ({what}); got {type(x).__name__}")
    return pd.Series(_vector(x.to_numpy(), name, what), index=x.index, name=x.name)


# ---------------------------------------------------------------------------------------------- tail risk


def expected_shortfall(pnl: npt.ArrayLike, level: float = 0.95) -> float:
    """Expected shortfall (CVaR) of a P&L sample, as a positive loss.

    The exact discrete estimator of Acerbi and Tasche (2002): with ``a = 1 − level``, ``x_(i)`` the P&L sorted
    ascending and ``k = ⌊n·a⌋``,

        ES = −(1 / (n·a)) · [ Σ_{i=1..k} x_(i) + (n·a − k) · x_(k+1) ],

    i.e. minus the mean of the worst ``n·a`` outcomes, the boundary outcome counted with its fractional weight.
    It equals ``−(1/a) ∫_0^a q(u) du`` for the empirical quantile function ``q``. ``k`` may be 0 (then
    ES = −x_(1), the worst outcome).

    Parameters
    ----------
    pnl
        P&L sample, shape (n,), quote currency (gains positive). Finite, n ≥ 1.
    level
        Confidence level in (0, 1); 0.95 averages the worst 5%.

    Returns
    -------
    float
        ES in the units of ``pnl``; positive when the tail loses money, negative when even the tail gains.
    """
    x = np.sort(_vector(pnl, "pnl", "P&L observation"))  # (n,)
    a = 1.0 - _probability(level, "level")
    n = x.size
    na = n * a
    k = min(math.floor(na + 1e-9), n)  # 1e-9: 20 × (1 − 0.95) = 1.0000000000000009 is 1 whole observation
    frac = max(na - k, 0.0)
    tail = float(x[:k].sum()) + (frac * float(x[k]) if frac > 0.0 and k < n else 0.0)
    return -tail / na


# ---------------------------------------------------------------------------------------------- daily P&L


def day_of_bar_end(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The UTC calendar day (as its 00:00 UTC timestamp) that each bar belongs to, from the bar END times.

    A bar covers ``(t − Δ, t]``, so it belongs to the day that holds the last instant of its interval: the day of
    ``t``, except that a bar ending exactly at 00:00 belongs to the previous day. Shape (n,) → (n,).
    """
    utc = index.tz_convert("UTC")
    return utc.ceil("D") - DAY


def _bar_length(index: pd.DatetimeIndex, bar_length: pd.Timedelta | str | None, name: str) -> pd.Timedelta | None:
    spacing = index[1:] - index[:-1]
    if bar_length is None:
        return pd.TimedeltaIndex(spacing).median() if len(spacing) else None
    try:
        delta = pd.Timedelta(bar_length)
    except (TypeError, ValueError):
        raise UsageError(
            f"bar_length must be a duration such as '1min' or pd.Timedelta(hours=1); got {bar_length!r}"
        ) from None
    if not delta > pd.Timedelta(0):
        raise UsageError(f"bar_length must be a positive duration; got {bar_length!r}")
    if len(spacing) and spacing.min() < delta:
        i = int(np.argmin(spacing.asi8)) + 1
        raise UsageError(
            f"{name} has bars closer than bar_length={delta} (at {index[i]}, {spacing[i - 1]} after the previous "
            f"bar), so the bars would overlap: pass the true bar length or leave bar_length=None to infer it"
        )
    return delta


def daily_pnl(pnl: pd.Series, bar_length: pd.Timedelta | str | None = None) -> pd.Series:
    """Sum a per-bar P&L series per UTC calendar day.

    Each bar is summed into the day that holds its interval's end (:func:`day_of_bar_end`): a bar ending exactly
    at 00:00 UTC belongs to the previous day, because its interval ``(t − Δ, t]`` lies in that day. A bar whose
    interval straddles midnight (a 4-hour bar ending at 02:00) belongs to the day of its end. Days without any bar
    are left out (not filled with 0), so a gap in the data does not add zero-P&L days. A partial first or last day
    is kept as it is.

    Parameters
    ----------
    pnl
        Per-bar P&L, shape (n,), quote currency, indexed by tz-aware bar-END timestamps (increasing, unique).
    bar_length
        Δ, the length of one bar. None infers it as the median spacing of the index (pass it when the series is
        sparse: two bars three days apart would infer Δ = 3 days). The day of a bar does not depend on Δ; Δ is
        checked to be at most one day (a longer bar cannot be put in one day) and, when given, no longer than the
        spacing of the bars (bars must not overlap).

    Returns
    -------
    pd.Series
        Shape (d,), one value per day with bars, indexed by the day's 00:00 UTC timestamp (index name ``day``).
    """
    values = _series(pnl, "pnl", "P&L per bar")
    index = _utc_index(values.index, "pnl")
    delta = _bar_length(index, bar_length, "pnl")
    if delta is not None and delta > DAY:
        raise UsageError(
            f"bar_length is {delta}, longer than one day: daily P&L needs bars of at most one day; "
            f"pass bar_length explicitly if the inferred one is wrong"
        )
    days = day_of_bar_end(index)  # (n,)
    out = pd.Series(values.to_numpy(), index=days).groupby(level=0, sort=True).sum()  # (d,)
    out.index.name = "day"
    out.name = "daily_pnl"
    return out


# ---------------------------------------------------------------------------------------------- policy metrics


def _record_times(record: pd.DataFrame) -> pd.DatetimeIndex:
    if "timestamp" in record.columns:
        times = record["timestamp"]
        if not (isinstance(times.dtype, pd.DatetimeTZDtype)):
            raise UsageError(
                f"record column 'timestamp' must hold tz-aware bar-end times; got dtype {times.dtype}: "
                f"convert with pd.to_datetime(record['timestamp'], utc=True)"
            )
        return _utc_index(pd.DatetimeIndex(times), "record['timestamp']")
    if isinstance(record.index, pd.DatetimeIndex):
        return _utc_index(record.index, "record.index")
    raise UsageError(
        "record has neither a 'timestamp' column nor a DatetimeIndex: pass the engine's per-bar record, which has "
        "a tz-aware 'timestamp' column of bar-end times"
    )


def _record_column(record: pd.DataFrame, column: str, *, allow_inf: bool = False) -> FloatArray:
    try:
        a = np.asarray(record[column], dtype=float)  # (n,)
    except (TypeError, ValueError):
        raise UsageError(f"record column {column!r} must be numeric; got dtype {record[column].dtype}") from None
    bad = np.isnan(a) if allow_inf else ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        allowed = "numbers (inf allowed: no limit)" if allow_inf else "finite numbers"
        raise UsageError(
            f"record column {column!r} has {int(bad.sum())} value(s) that are not {allowed}, the first at row {i} "
            f"({float(a[i])!r}): fill or drop them before computing the policy metrics"
        )
    return a


def _check_columns(frame: pd.DataFrame, needed: Sequence[str], name: str, fix: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(f"{name} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UsageError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}: {fix}")
    if len(frame) == 0:
        raise UsageError(f"{name} has no rows: {fix}")


def breach_events(in_breach: npt.ArrayLike) -> int:
    """Number of breach EVENTS in a per-bar breach flag, shape (n,): bars in breach whose previous bar was not
    (a breach on the first bar is an event)."""
    b = np.asarray(in_breach, dtype=bool)
    return int(np.count_nonzero(b & ~np.r_[False, b[:-1]]))


def policy_metrics(record: pd.DataFrame, *, notes: list[str] | None = None) -> dict[str, float | None]:
    """The policy metrics of DESIGN section 6 from the engine's per-bar record.

    Parameters
    ----------
    record
        One row per bar, shape (n, ·), with a tz-aware ``timestamp`` column of bar-END times (or a DatetimeIndex)
        and the columns ``pnl`` (total P&L of the bar after costs, quote currency), ``hedge_cost`` (fees + impact
        paid in the bar, ≥ 0), ``net_delta_units`` (units of the underlying), ``delta_limit_units`` (≥ 0, inf: no
        limit), ``equity``, ``initial_margin``, ``maintenance_margin`` (quote currency) and ``forced_liquidation``
        (bool). All finite except ``delta_limit_units``, which may be inf.
    notes
        A list that receives a note for each metric reported as None; None: emit :class:`MetricNote` instead.

    Returns
    -------
    dict
        ``hedging_cost`` Σ hedge_cost; ``pnl_total`` Σ pnl; ``daily_pnl_mean``, ``daily_pnl_std`` (ddof=1) and
        ``daily_pnl_cvar95`` (:func:`expected_shortfall` at 0.95, a positive loss) of the daily P&L
        (:func:`daily_pnl`); ``max_abs_net_delta``; ``time_outside_limits``, the share of bars with
        |net delta| > limit; ``margin_breaches``, breach events (a bar with equity < maintenance margin, or a
        forced liquidation, whose previous bar was not in breach), and ``breach_bars``, the bars in breach;
        ``forced_liquidations``, the count of True; ``mean_idle_collateral``, the mean over bars of
        max(equity − initial margin, 0) (collateral above the requirement: the cost of a buffer); ``days``, the number
        of UTC days with bars; ``n_trades``, the bars with a hedge trade (None, with a note, without a
        ``traded_units`` column).
        Every value is a float (counts too, so the dict can go to MLflow as it is); ``daily_pnl_std`` is None (with
        a note) when the record spans a single day.
    """
    _check_columns(record, RECORD_COLUMNS, "record", "pass the engine's per-bar record (BacktestResult.record)")
    times = _record_times(record)
    pnl = _record_column(record, "pnl")  # (n,)
    cost = _record_column(record, "hedge_cost")
    delta = _record_column(record, "net_delta_units")
    limit = _record_column(record, "delta_limit_units", allow_inf=True)
    equity = _record_column(record, "equity")
    im = _record_column(record, "initial_margin")
    mm = _record_column(record, "maintenance_margin")
    for name, values in (("hedge_cost", cost), ("delta_limit_units", limit)):
        if (values < 0).any():
            i = int(np.flatnonzero(values < 0)[0])
            raise UsageError(f"record column {name!r} must be >= 0; row {i} has {float(values[i])!r}")
    liquidated = record["forced_liquidation"]
    if not (pd.api.types.is_bool_dtype(liquidated) or liquidated.isin([0, 1]).all()):
        raise UsageError(
            f"record column 'forced_liquidation' must be bool (True on a bar the venue liquidated); "
            f"got dtype {liquidated.dtype} with values {sorted(set(liquidated.astype(str)))[:5]}"
        )

    daily = daily_pnl(pd.Series(pnl, index=times))  # (d,)
    std: float | None = None
    if len(daily) >= 2:
        std = float(daily.std(ddof=1))
    else:
        _note(notes, "daily_pnl_std is None: the record spans one UTC day; a standard deviation needs two days")
    in_breach = (equity < mm) | np.asarray(liquidated, dtype=bool)  # (n,): a liquidation follows a breach
    n_trades: float | None = None
    if "traded_units" in record.columns:
        n_trades = float(np.count_nonzero(_record_column(record, "traded_units")))
    else:
        _note(notes, "n_trades is None: the record has no traded_units column")
    return {
        "hedging_cost": float(cost.sum()),
        "pnl_total": float(pnl.sum()),
        "daily_pnl_mean": float(daily.mean()),
        "daily_pnl_std": std,
        "daily_pnl_cvar95": expected_shortfall(daily.to_numpy(), 0.95),
        "max_abs_net_delta": float(np.abs(delta).max()),
        "time_outside_limits": float(np.mean(np.abs(delta) > limit)),
        "margin_breaches": float(breach_events(in_breach)),
        "breach_bars": float(np.count_nonzero(in_breach)),
        "forced_liquidations": float(np.count_nonzero(np.asarray(liquidated, dtype=bool))),
        "mean_idle_collateral": float(np.maximum(equity - im, 0.0).mean()),
        "n_trades": n_trades,
        "days": float(len(daily)),
    }


# ---------------------------------------------------------------------------------------------- margin backtests


def kupiec_pof(exceedances: int, n: int, coverage: float = 0.99) -> tuple[float, float]:
    """Kupiec (1995) proportion-of-failures test of a margin (or VaR) model.

    With ``x`` exceedances in ``n`` periods and ``p = 1 − coverage`` the exceedance probability the model promises,

        LR = −2 ln[(1 − p)^(n−x) p^x] + 2 ln[(1 − x/n)^(n−x) (x/n)^x],

    with 0 · ln 0 = 0 (so x = 0 and x = n are exact). Under the null LR ~ χ²(1).

    Parameters
    ----------
    exceedances
        x, the number of periods whose loss exceeded the requirement, 0 ≤ x ≤ n.
    n
        Number of periods, ≥ 1.
    coverage
        The model's promised coverage in (0, 1), e.g. 0.99.

    Returns
    -------
    tuple of float
        (LR statistic ≥ 0, p-value = P(χ²(1) ≥ LR)). A small p-value rejects the model (too many or too few
        exceedances).
    """
    n = _count(n, "n", 1)
    x = _count(exceedances, "exceedances", 0)
    if x > n:
        raise UsageError(f"exceedances must be between 0 and n={n}; got {x}: count each period at most once")
    p = 1.0 - _probability(coverage, "coverage")
    phat = x / n
    log_null = special.xlogy(n - x, 1.0 - p) + special.xlogy(x, p)
    log_alt = special.xlogy(n - x, 1.0 - phat) + special.xlogy(x, phat)
    lr = max(-2.0 * (log_null - log_alt), 0.0)  # ≥ 0 in exact arithmetic; clip rounding below 0
    return float(lr), float(stats.chi2.sf(lr, 1))


def traffic_light(exceedances: int, n: int = 250, coverage: float = 0.99) -> str:
    """Basel traffic-light zone of a margin model's exceedance count.

    From the binomial cumulative probability ``P(X ≤ x)``, ``X ~ Binomial(n, 1 − coverage)``: "green" when it is
    below 0.95, "yellow" below 0.9999, else "red". For n = 250 at 99%: green 0–4, yellow 5–9, red ≥ 10.

    Parameters
    ----------
    exceedances
        x, 0 ≤ x ≤ n.
    n
        Number of periods (250: one year of daily backtests).
    coverage
        The model's promised coverage in (0, 1).

    Returns
    -------
    str
        "green", "yellow" or "red".
    """
    n = _count(n, "n", 1)
    x = _count(exceedances, "exceedances", 0)
    if x > n:
        raise UsageError(f"exceedances must be between 0 and n={n}; got {x}: count each period at most once")
    cdf = float(stats.binom.cdf(x, n, 1.0 - _probability(coverage, "coverage")))
    return "green" if cdf < GREEN_BELOW else "yellow" if cdf < YELLOW_BELOW else "red"


def margin_exceedances(requirement: pd.Series, loss: pd.Series) -> pd.Series:
    """Where the realized loss over the margin period exceeded the requirement set at its start.

    Parameters
    ----------
    requirement
        Margin requirement set at the start of each period, shape (n,), quote currency.
    loss
        Realized loss (positive = money lost) over the period that starts at the same index label, shape (n,),
        quote currency. The caller aligns each period's loss to its START (e.g. ``-pnl.rolling(h).sum().shift(-h)``
        with the incomplete last periods dropped).

    Returns
    -------
    pd.Series
        Bool, shape (n,), on the shared index: True where ``loss > requirement`` (strictly).
    """
    req = _series(requirement, "requirement", "margin requirement per period")
    lo = _series(loss, "loss", "realized loss per period")
    if not req.index.equals(lo.index):
        only_req = req.index.difference(lo.index)
        only_loss = lo.index.difference(req.index)
        raise UsageError(
            f"requirement and loss must share one index (one period each); got {len(req)} and {len(lo)} labels, "
            f"{len(only_req)} only in requirement (first {list(only_req[:2])}), {len(only_loss)} only in loss "
            f"(first {list(only_loss[:2])}): align them first, e.g. requirement.align(loss, join='inner')"
        )
    return pd.Series(lo.to_numpy() > req.to_numpy(), index=req.index, name="exceedance")


def daily_requirement(requirement: pd.Series) -> pd.Series:
    """The requirement as a daily series: the last value of each UTC day. Shape (n,) → (d,), indexed by the day's
    00:00 UTC timestamp.

    Timestamps are read as bar ends, as in :func:`daily_pnl`: a value stamped 00:00 closes the previous day. A
    series stamped at 00:00 every day therefore keeps its values and its labels move one day earlier. Days
    without a value are left out.
    """
    req = _series(requirement, "requirement", "margin requirement")
    index = _utc_index(req.index, "requirement")
    out = pd.Series(req.to_numpy(), index=day_of_bar_end(index)).groupby(level=0, sort=True).last()  # (d,)
    out.index.name = "day"
    out.name = req.name
    return out


def procyclicality(requirement: pd.Series, *, notes: list[str] | None = None) -> dict[str, float | None]:
    """Procyclicality of a margin requirement (how sharply it rises in stress).

    The series is first reduced to one value per UTC day, the last of the day (:func:`daily_requirement`; a
    value stamped 00:00 closes the previous day); a daily series keeps its values. Increases compare consecutive
    days that have a value (a day with no value is skipped, not filled).

    Parameters
    ----------
    requirement
        Margin requirement IM, shape (n,), quote currency, > 0, indexed by tz-aware timestamps.
    notes
        A list that receives a note for each key reported as None; None: emit :class:`MetricNote` instead.

    Returns
    -------
    dict
        ``peak_to_trough`` max(IM) / min(IM) over the period (≥ 1); ``max_increase_1d`` max_t IM_t / IM_{t−1} − 1;
        ``max_increase_5d`` max_t IM_t / IM_{t−5} − 1; ``days`` the number of days. An increase that needs more
        days than there are (2 for 1d, 6 for 5d) is None, with a note; a negative value means the requirement
        only fell.
    """
    days = daily_requirement(requirement)
    daily = days.to_numpy(dtype=float)  # (d,)
    if daily.min() <= 0:
        i = int(np.argmin(daily))
        raise UsageError(
            f"requirement must be > 0 on every day for ratios; day {i} ({days.index[i].date()}) has "
            f"{float(daily[i])!r}: drop the days before the first position or floor the requirement"
        )
    out: dict[str, float | None] = {"peak_to_trough": float(daily.max() / daily.min())}
    for key, lag in (("max_increase_1d", 1), ("max_increase_5d", 5)):
        if daily.size > lag:
            out[key] = float(np.max(daily[lag:] / daily[:-lag]) - 1.0)
        else:
            out[key] = None
            _note(notes, f"{key} is None: the requirement spans {daily.size} day(s); it needs {lag + 1}")
    out["days"] = float(daily.size)
    return out


def margin_model_report(
    requirement: pd.Series,
    loss: pd.Series,
    coverage: float = 0.99,
    window: int = 250,
    *,
    notes: list[str] | None = None,
) -> dict[str, float | int | str | None]:
    """Backtest of a margin model as clearing houses run it: exceedances, Kupiec test, traffic light and
    procyclicality.

    Parameters
    ----------
    requirement, loss
        As in :func:`margin_exceedances`: shape (n,), one period each, on one tz-aware DatetimeIndex.
    coverage
        The model's promised coverage in (0, 1).
    window
        The exceedance statistics use the last ``window`` periods, or all ``n`` when there are fewer.
    notes
        Passed to :func:`procyclicality`.

    Returns
    -------
    dict
        ``exceedances`` and ``n`` (the periods actually used: min(window, number of periods)), ``coverage``,
        ``kupiec_lr``, ``kupiec_pvalue``, ``traffic_light`` over those periods, and the :func:`procyclicality`
        keys over the whole ``requirement`` series (``peak_to_trough``, ``max_increase_1d``, ``max_increase_5d``,
        ``days``).
    """
    window = _count(window, "window", 1)
    hits = margin_exceedances(requirement, loss).iloc[-window:]  # (min(n, window),)
    x, n = int(hits.sum()), len(hits)
    lr, pvalue = kupiec_pof(x, n, coverage)
    report: dict[str, float | int | str | None] = {
        "exceedances": x,
        "n": n,
        "coverage": float(coverage),
        "kupiec_lr": lr,
        "kupiec_pvalue": pvalue,
        "traffic_light": traffic_light(x, n, coverage),
    }
    report.update(procyclicality(requirement, notes=notes))
    return report


# ---------------------------------------------------------------------------------------------- frontiers


def pareto_front(cost: npt.ArrayLike, risk: npt.ArrayLike) -> IntArray:
    """Indices of the non-dominated points of a cost-risk sweep (lower is better on both axes).

    Point i is dominated when some j has cost_j ≤ cost_i and risk_j ≤ risk_i with at least one strict; identical
    points do not dominate each other, so both are kept.

    Parameters
    ----------
    cost, risk
        Shape (n,), finite.

    Returns
    -------
    np.ndarray
        Int indices into the inputs, shape (m,), sorted by cost (then risk, then index).
    """
    c = _vector(cost, "cost", "swept point")
    r = _vector(risk, "risk", "swept point")
    if c.size != r.size:
        raise UsageError(f"cost and risk must have one value per swept point; got {c.size} and {r.size} values")
    order = np.lexsort((np.arange(c.size), r, c))  # by cost, then risk, then index
    keep: list[int] = []
    best_cheaper = math.inf  # lowest risk among points strictly cheaper than the current cost
    start = 0
    while start < order.size:
        stop = start
        while stop < order.size and c[order[stop]] == c[order[start]]:
            stop += 1
        group = order[start:stop]  # same cost, ascending risk
        lowest = r[group[0]]
        if lowest < best_cheaper:
            keep.extend(int(i) for i in group if r[i] == lowest)
        best_cheaper = min(best_cheaper, lowest)
        start = stop
    return np.asarray(keep, dtype=np.int64)


def _cost_curve(cost: npt.ArrayLike, value: npt.ArrayLike, cost_name: str, value_name: str) -> tuple[FloatArray, ...]:
    """Unique costs ascending and the value at each (mean over tied costs), shapes (u,)."""
    c = _vector(cost, cost_name, "swept point")
    v = _vector(value, value_name, "swept point")
    if c.size != v.size:
        raise UsageError(
            f"{cost_name} and {value_name} must have one value per swept point; got {c.size} and {v.size} values"
        )
    xs, inverse = np.unique(c, return_inverse=True)  # (u,), (n,)
    ys = np.bincount(inverse, weights=v) / np.bincount(inverse)
    return xs, ys


def value_at_cost(cost: npt.ArrayLike, value: npt.ArrayLike, target_cost: float) -> float:
    """A swept metric read at a given cost: piecewise-linear interpolation of ``value`` against ``cost``.

    The points are sorted by cost; points with the same cost are averaged. There is no extrapolation.

    Parameters
    ----------
    cost
        Cost of each swept point, shape (n,), e.g. hedging cost in quote currency.
    value
        The metric at each point, shape (n,), e.g. daily P&L CVaR95.
    target_cost
        The cost to read at, within [min(cost), max(cost)].

    Returns
    -------
    float
        The interpolated value, in the units of ``value``.
    """
    xs, ys = _cost_curve(cost, value, "cost", "value")
    t = _target(target_cost)
    if not xs[0] <= t <= xs[-1]:
        raise UsageError(
            f"target_cost={t!r} is outside the swept cost range [{float(xs[0])!r}, {float(xs[-1])!r}]: the "
            f"frontier is not extrapolated; widen the parameter sweep or pick a cost inside the range"
        )
    return float(np.interp(t, xs, ys))


def _target(target_cost: float) -> float:
    if isinstance(target_cost, bool) or not isinstance(target_cost, int | float | np.number):
        raise UsageError(f"target_cost must be a number; got {target_cost!r}")
    t = float(target_cost)
    if not math.isfinite(t):
        raise UsageError(f"target_cost must be finite; got {target_cost!r}")
    return t


def _frontier(frame: pd.DataFrame, name: str, cost: str, risk: str) -> pd.DataFrame:
    _check_columns(
        frame,
        (FRONTIER_PARAM, cost, risk),
        name,
        f"pass one row per swept parameter with columns '{FRONTIER_PARAM}', '{cost}' and '{risk}'",
    )
    for column in (cost, risk):
        _vector(frame[column].to_numpy(), f"{name}[{column!r}]", "swept point")
    return frame


def matched_point(
    frontier: pd.DataFrame, target_cost: float, *, cost: str = "hedging_cost", tolerance: float = 0.05
) -> pd.Series | None:
    """The swept point of one policy whose cost is closest to ``target_cost``, if within a relative tolerance.

    Parameters
    ----------
    frontier
        One row per swept parameter with columns ``param`` and ``cost``.
    target_cost
        The cost to match.
    tolerance
        Relative: a point matches when ``|cost − target| ≤ tolerance · |target|`` (a target of 0 only matches a
        cost of exactly 0). ≥ 0.

    Returns
    -------
    pd.Series or None
        The matching row (the first of equally close ones), or None when no point is within the tolerance.
    """
    _check_columns(frontier, (FRONTIER_PARAM, cost), "frontier", f"pass columns '{FRONTIER_PARAM}' and '{cost}'")
    t = _target(target_cost)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < math.inf:
        raise UsageError(f"tolerance must be a finite number >= 0 (relative, e.g. 0.05); got {tolerance!r}")
    gap = np.abs(_vector(frontier[cost].to_numpy(), f"frontier[{cost!r}]", "swept point") - t)  # (n,)
    best = int(np.argmin(gap))
    return frontier.iloc[best] if gap[best] <= tolerance * abs(t) else None


def matched_cost_comparison(
    frontiers: Mapping[str, pd.DataFrame],
    reference: str,
    risk: str = "daily_pnl_cvar95",
    cost: str = "hedging_cost",
    tolerance: float = 0.05,
) -> pd.DataFrame:
    """Compare policies at matched hedging cost: for every swept point of the reference policy, each other
    policy's risk at the same cost.

    The other policy's risk is interpolated along its swept points (:func:`value_at_cost`: sorted by cost, ties
    averaged, no extrapolation). Pass Pareto-filtered frames (:func:`pareto_front`) to compare frontiers only.

    Parameters
    ----------
    frontiers
        Policy name → one row per swept parameter with columns ``param``, ``cost`` and ``risk``.
    reference
        The policy whose swept costs are the comparison points.
    risk, cost
        Column names of the risk (lower is better, > 0 for the reference) and the cost.
    tolerance
        Relative tolerance of :func:`matched_point`.

    Returns
    -------
    pd.DataFrame
        One row per (reference point, other policy), reference points in cost order, with columns
        ``reference_param``, ``cost``, ``reference_risk``, ``policy``, ``risk`` (the other policy's interpolated
        risk), ``ratio`` (risk / reference_risk: below 1, the other policy has less risk at that cost) and
        ``matched_param`` (the other policy's swept parameter within ``tolerance`` of the cost, None when none).
        ``risk`` and ``ratio`` are NaN where the cost lies outside the other policy's swept cost range: the only
        NaN this module returns.
    """
    if not isinstance(frontiers, Mapping) or reference not in frontiers:
        choices = list(frontiers) if isinstance(frontiers, Mapping) else type(frontiers).__name__
        raise UsageError(f"reference must be one of the frontiers' policies {choices}; got {reference!r}")
    if len(frontiers) < 2:
        raise UsageError(f"frontiers has only {list(frontiers)}: add at least one other policy to compare against")
    checked = {name: _frontier(frame, f"frontiers[{name!r}]", cost, risk) for name, frame in frontiers.items()}
    ref = checked[reference].sort_values(cost, kind="stable")
    ref_risk = ref[risk].to_numpy(dtype=float)
    if (ref_risk <= 0).any():
        i = int(np.flatnonzero(ref_risk <= 0)[0])
        raise UsageError(
            f"frontiers[{reference!r}] has {risk}={float(ref_risk[i])!r} at "
            f"param={ref[FRONTIER_PARAM].tolist()[i]!r}: a ratio needs a reference risk > 0; choose another "
            f"reference or a risk measure that is positive"
        )
    rows: list[dict[str, Any]] = []
    curves = {name: _cost_curve(f[cost], f[risk], cost, risk) for name, f in checked.items() if name != reference}
    for (_, point), r0 in zip(ref.iterrows(), ref_risk, strict=True):
        c0 = float(point[cost])
        for name, (xs, ys) in curves.items():
            other = float(np.interp(c0, xs, ys)) if xs[0] <= c0 <= xs[-1] else math.nan
            match = matched_point(checked[name], c0, cost=cost, tolerance=tolerance)
            rows.append(
                {
                    "reference_param": point[FRONTIER_PARAM],
                    "cost": c0,
                    "reference_risk": float(r0),
                    "policy": name,
                    "risk": other,
                    "ratio": other / float(r0),
                    "matched_param": None if match is None else match[FRONTIER_PARAM],
                }
            )
    out = pd.DataFrame(rows, columns=list(rows[0]))
    # object dtype keeps None (no match) and the params' own types; string inference would turn None into NaN
    out["reference_param"] = pd.Series([row["reference_param"] for row in rows], dtype=object)
    out["matched_param"] = pd.Series([row["matched_param"] for row in rows], dtype=object)
    return out
