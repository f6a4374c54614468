"""Intraday seasonality of the variance: a causal, training-fitted profile per bar of the day.

Realized variance has a strong intraday pattern (on the simulated market a bump at the 08:00 UTC expiry and a
diurnal wave, on real markets the opens, closes and expiries), which HAR regressors over the last W bars cannot
see: at 07:00 the last hour was quiet and the next one holds the peak. The pattern is calendar only, so the
expected seasonal factor of any future window is known at the origin.

Conventions
-----------
- A **slot** is a bar's position in the day: the bar ending ``(j + 1)`` bar lengths after 00:00 UTC is slot j,
  ``j = 0 … B − 1`` with ``B = 1 day / bar length`` (1,440 slots for 1-minute bars). Bars of a day or longer, or
  a bar length that does not divide the day, have one slot (B = 1) and a flat profile of 1: no seasonality.
- The **profile** ``p`` (B,) is a variance multiplier with mean 1 over the day: ``E[r_i²] ≈ p[slot(i)] · level``.
  :meth:`SeasonalProfile.fit` estimates it from the returns of the bars in ``[rows[0], rows[-1]]`` (the span of
  the training origins; data at or before the last training origin only, never a target beyond it):

  1. the absolute returns ``|r_i|`` are divided by their centered one-day mean (a full day holds every slot
     once, so the ratio is free of the level and of slow regime changes; bars within half a day of the span's
     ends, or whose day holds fewer than half of its returns, are left out). Absolute rather than squared
     returns: one jump or Student-t outlier in r² can outweigh a month of a slot's returns (on a simulated month
     the r² version put the peak at 19:00 instead of 08:00), |r| is far more robust;
  2. the ratios are averaged per slot (each day weighs the same, so a stressed day does not dominate);
  3. the slot means are smoothed by a circular Gaussian kernel of standard deviation ``bandwidth`` bars
     (00:00 sits next to 23:59; default 20 bars: it widens a one-hour (60-bar) wide peak by 5 %, and averages
     ~50 bars × days of noisy returns per slot);
  4. the smoothed scale profile is squared (for returns ``r = sqrt(p · level) · z`` of one law,
     ``E|r| ∝ sqrt(p)``: the square is the variance multiplier) and normalized to mean 1.

- The **seasonal factors** at an origin t (bar t ends at the origin) are window means of the profile:
  ahead, ``s_h(t) = mean(p[slot(t) + 1 … slot(t) + h])`` (the next h bars: the target's bars; mod B); past,
  ``s_W^past(t) = mean(p[slot(t) − W + 1 … slot(t)])`` (the last W bars: an ``rv_W`` feature's bars). A window of
  a whole number of days has factor 1. Slots step by one per bar, i.e. bars are assumed to follow each other
  without calendar gaps (24/7 markets; on a market with session gaps the factors are approximate).

Shapes: ``n`` bars, ``m`` origins, ``B`` slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.base import FloatArray, IntArray, ModelData, ModelError

DAY = pd.Timedelta(days=1)
DEFAULT_BANDWIDTH = 20.0  # bars: the standard deviation of the circular Gaussian smoothing kernel
MIN_DAYS = 2  # the training span must hold at least this many days of returns to fit a profile


def slots_per_day(bar: pd.Timedelta) -> int:
    """B, the bars per day, for a bar length; 1 (a flat profile) for bars of a day or longer or that do not divide
    a day."""
    if bar <= pd.Timedelta(0):
        raise ModelError(f"the bar length must be positive; got {bar}")
    if bar >= DAY or DAY % bar != pd.Timedelta(0):
        return 1
    return int(DAY // bar)


def bar_slots(index: pd.DatetimeIndex, bar: pd.Timedelta) -> IntArray:
    """The slot of each bar (module docstring) from its end time: ``(time since 00:00 UTC) / bar − 1 mod B``. (n,)."""
    b = slots_per_day(bar)
    if b == 1:
        return np.zeros(len(index), dtype=np.int64)
    ns = index.as_unit("ns").asi8 if index.tz is None else index.tz_convert("UTC").as_unit("ns").asi8
    since_midnight = np.mod(ns, DAY.value)
    return (np.round(since_midnight / bar.value).astype(np.int64) - 1) % b


def smooth_circular(values: FloatArray, bandwidth: float) -> FloatArray:
    """Circular Gaussian kernel smoothing of a periodic series (B,), standard deviation ``bandwidth`` samples
    (the kernel wraps: the last sample neighbours the first). ``bandwidth`` 0 returns a copy."""
    b = values.size
    if bandwidth <= 0 or b == 1:
        return values.astype(float, copy=True)
    lag = np.minimum(np.arange(b), b - np.arange(b))  # circular distance to sample 0
    kernel = np.exp(-0.5 * (lag / bandwidth) ** 2)
    kernel /= kernel.sum()
    return np.real(np.fft.ifft(np.fft.fft(values) * np.fft.fft(kernel)))


def window_means(profile: FloatArray, start: IntArray, length: int) -> FloatArray:
    """Mean of the periodic ``profile`` (B,) over slots ``start … start + length − 1`` (mod B), per start. (m,)."""
    if length < 1:
        raise ModelError(f"a seasonal window needs at least 1 bar; got {length}")
    b = profile.size
    whole, rest = divmod(length, b)
    cum = np.concatenate([[0.0], np.cumsum(np.tile(profile, 2))])  # (2B + 1,)
    s = np.mod(start, b)
    partial = cum[s + rest] - cum[s]
    return (whole * profile.sum() + partial) / length


@dataclass(frozen=True)
class SeasonalProfile:
    """A fitted intraday variance profile (module docstring).

    Attributes
    ----------
    bar
        The bar length.
    profile
        (B,) multiplier per slot, mean 1 (a flat ``[1.0]`` for daily or longer bars).
    bandwidth
        The smoothing kernel's standard deviation, in bars.
    n_days
        Days of returns the fit averaged (0 for a flat profile).
    """

    bar: pd.Timedelta
    profile: FloatArray
    bandwidth: float
    n_days: float

    @classmethod
    def fit(cls, data: ModelData, rows: IntArray, bandwidth: float = DEFAULT_BANDWIDTH) -> SeasonalProfile:
        """Estimate the profile from the returns of bars ``rows[0] … rows[-1]`` (the training span).

        Raises
        ------
        ModelError
            The span holds fewer than :data:`MIN_DAYS` days of returns (with intraday bars), or a bad bandwidth.
        """
        from models.baselines import bar_length

        if isinstance(bandwidth, bool) or not (isinstance(bandwidth, int | float) and bandwidth >= 0):
            raise ModelError(f"the seasonal bandwidth must be a number of bars ≥ 0; got {bandwidth!r}")
        bar = bar_length(data.index)
        b = slots_per_day(bar)
        if b == 1:
            return cls(bar, np.ones(1), float(bandwidth), 0.0)
        rows = np.asarray(rows, dtype=np.int64)
        lo, hi = int(rows[0]), int(rows[-1])
        r = np.asarray(data.log_return[lo : hi + 1], dtype=float)
        if r.size < MIN_DAYS * b:
            raise ModelError(
                f"a seasonal profile needs at least {MIN_DAYS} days of bars in the training span; it has "
                f"{r.size} bars of {b} a day. Fix: train on a longer window, or set seasonal=False"
            )
        sq = np.abs(r)  # the absolute returns: robust to jumps and fat tails (the squares are not)
        ok = np.isfinite(sq)
        cum_sq = np.concatenate([[0.0], np.cumsum(np.where(ok, sq, 0.0))])
        cum_n = np.concatenate([[0], np.cumsum(ok)])
        half = b // 2
        centre = np.arange(half, r.size - (b - half) + 1)  # bars whose centered day [i − half, i + b − half) fits
        day_sum = cum_sq[centre + b - half] - cum_sq[centre - half]
        day_n = cum_n[centre + b - half] - cum_n[centre - half]
        use = ok[centre] & (day_n >= b // 2) & (day_sum > 0)
        i = centre[use]
        ratio = sq[i] / (day_sum[use] / day_n[use])  # |r_i| over its centered one-day mean
        slot = bar_slots(data.index[lo : hi + 1], bar)[i]
        total = np.bincount(slot, weights=ratio, minlength=b)
        count = np.bincount(slot, minlength=b)
        raw = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        if np.isnan(raw).any():  # a slot never seen (gaps): the mean of the seen ones, before smoothing
            raw = np.where(np.isnan(raw), np.nanmean(raw), raw)
        smooth = np.maximum(smooth_circular(raw, float(bandwidth)), 1e-6) ** 2  # scale → variance multiplier
        return cls(bar, smooth / smooth.mean(), float(bandwidth), float(use.sum() / b))

    @property
    def slots(self) -> int:
        return self.profile.size

    def ahead(self, data: ModelData, rows: IntArray, horizon: int) -> FloatArray:
        """``s_h(t)``: the mean multiplier of the next ``horizon`` bars after each origin (calendar only). (m,)."""
        return window_means(self.profile, self._slots(data, rows) + 1, horizon)

    def past(self, data: ModelData, rows: IntArray, window: int) -> FloatArray:
        """``s_W^past(t)``: the mean multiplier of the last ``window`` bars up to each origin (bar t included). (m,)."""
        return window_means(self.profile, self._slots(data, rows) - window + 1, window)

    def _slots(self, data: ModelData, rows: IntArray) -> IntArray:
        if self.slots == 1:
            return np.zeros(np.asarray(rows).size, dtype=np.int64)
        return bar_slots(data.index[np.asarray(rows, dtype=np.int64)], self.bar)
