"""Forecast targets (DESIGN section 5), kept apart from the features: they look into the future on purpose, so they
live in their own frame and never enter a feature table.

- ``rv_h{h}``: rv_h(t) = Σ_{i=1..h} r_{t+i}², the realized variance over (t, t+h]; NaN on the last h rows.
- ``div_h{h}``: div_h(t) = iv(t+h) − iv(t), the change of the as-of aligned IV index over (t, t+h]; NaN on the last
  h rows and where either IV is unknown. Only when an IV index exists.
- ``regime_h{h}``: the class of rv_h (0 calm, 1 normal, 2 stressed) by thresholds fitted on a training window
  only (:class:`RegimeThresholds`, :func:`fit_regime_thresholds`).
- ``regime_true_h{h}``: on simulated data, the latent regime h bars ahead (:func:`true_regime_targets`).

Shapes: every array is (n,), one value per bar (forecast origin t), in time order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.implied import aligned_iv, chain_atm_iv_on_bars
from features.windows import window_sum
from forecaster.market.simulator import REGIMES

FloatArray = npt.NDArray[np.float64]

DEFAULT_QUANTILES = (0.5, 0.9)


def realized_variance_ahead(log_return: FloatArray, horizon: int, blocks: npt.NDArray[np.int64]) -> FloatArray:
    """rv_h(t) = Σ_{i=1..h} r_{t+i}². Shape (n,); the last ``horizon`` rows are NaN.

    ``blocks``: the anchor ids of a ``horizon``-bar window (:meth:`features.base.Context.blocks`).
    """
    # the backward window sum ending at t+h, moved back h rows: equal, bit for bit, to the realized feature at t+h
    return shift_back(window_sum(log_return * log_return, horizon, blocks), horizon)


def shift_back(values: FloatArray, horizon: int) -> FloatArray:
    """values(t+h) at row t. Shape (n,); the last ``horizon`` rows are NaN."""
    out = np.full(values.size, np.nan)
    kept = max(values.size - horizon, 0)
    out[:kept] = values[values.size - kept :]
    return out


def change_ahead(values: FloatArray, horizon: int) -> FloatArray:
    """values(t+h) − values(t). Shape (n,); the last ``horizon`` rows are NaN."""
    return shift_back(values, horizon) - values


def make_targets(
    data: MarketData, horizons: Sequence[int], *, iv_aligned: pd.Series | npt.ArrayLike | None = None
) -> pd.DataFrame:
    """The targets of every horizon, indexed like ``data.bars``.

    Parameters
    ----------
    data
        The market; its IV index (if any) is aligned as-of to the bars unless ``iv_aligned`` is given. Without an
        IV index, the 30-day ATM IV of its option chain (if any, :func:`features.implied.chain_atm_iv_on_bars`).
    horizons
        Distinct bar counts ≥ 1.
    iv_aligned
        Optional IV already aligned to the bars (decimal): a Series indexed like the bars, or an array of shape (n,).

    Returns
    -------
    pd.DataFrame
        Columns ``rv_h{h}`` for each horizon, then ``div_h{h}`` for each horizon when an IV exists.
    """
    hs = _check_horizons(horizons)
    ctx = Context(data)
    out = {f"rv_h{h}": realized_variance_ahead(ctx.log_return, h, ctx.blocks(h)) for h in hs}
    iv = _iv_on_bars(data, iv_aligned)
    if iv is not None:
        out |= {f"div_h{h}": change_ahead(iv, h) for h in hs}
    return pd.DataFrame(out, index=data.index)


@dataclass(frozen=True)
class RegimeThresholds:
    """Thresholds on rv_h that split it into classes: 0 (calm) up to the first, 1 (normal), 2 (stressed) above the
    last. Fit on the training window only (:func:`fit_regime_thresholds` purges origins whose horizon reaches past
    the window's end).

    Attributes
    ----------
    quantiles
        Increasing levels in (0, 1) the thresholds were taken at (DESIGN default 0.5 and 0.9).
    thresholds
        The matching quantiles of the training rv_h, increasing.
    """

    quantiles: tuple[float, ...]
    thresholds: tuple[float, ...]

    @classmethod
    def fit(cls, rv_train: npt.ArrayLike, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> RegimeThresholds:
        """Quantiles of the finite values of ``rv_train`` (shape (m,); NaN targets are left out)."""
        levels = tuple(float(q) for q in quantiles)
        if not levels or any(not 0 < q < 1 for q in levels) or any(b <= a for a, b in pairwise(levels)):
            raise ValueError(f"quantiles must be increasing levels strictly between 0 and 1; got {list(quantiles)}")
        rv = np.asarray(rv_train, dtype=float)
        rv = rv[np.isfinite(rv)]
        if rv.size == 0:
            raise ValueError(
                "rv_train holds no finite rv_h value: the training window is shorter than the horizon. "
                "Fix: train on a longer window or a shorter horizon"
            )
        return cls(levels, tuple(float(v) for v in np.quantile(rv, levels)))

    def classify(self, rv: npt.ArrayLike) -> FloatArray:
        """The class of each rv: how many thresholds lie strictly below it (rv equal to a threshold takes the lower
        class). Float, so a missing rv stays NaN as in the targets frame. Shape of ``rv``."""
        values = np.asarray(rv, dtype=float)
        classes = np.searchsorted(np.asarray(self.thresholds), values, side="left").astype(float)
        return np.where(np.isnan(values), np.nan, classes)


def fit_regime_thresholds(
    targets: pd.DataFrame,
    horizons: Sequence[int],
    train_end: pd.Timestamp,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[int, RegimeThresholds]:
    """Thresholds per horizon from the rv_h of the origins t whose whole horizon ends at or before ``train_end``.

    Dropping the last h origins of the window (purging) means no return after ``train_end`` reaches the
    thresholds: changing the test data leaves them unchanged.
    """
    end = int(targets.index.searchsorted(train_end, side="right"))  # rows at or before train_end
    out = {}
    for h in _check_horizons(horizons):
        rv = targets[f"rv_h{h}"].to_numpy(dtype=float)[: max(end - h, 0)]
        out[h] = RegimeThresholds.fit(rv, quantiles)
    return out


def regime_targets(targets: pd.DataFrame, thresholds: Mapping[int, RegimeThresholds]) -> pd.DataFrame:
    """``regime_h{h}`` for each fitted horizon: the class of ``rv_h{h}`` (NaN where rv_h is)."""
    return pd.DataFrame(
        {f"regime_h{h}": t.classify(targets[f"rv_h{h}"].to_numpy(dtype=float)) for h, t in thresholds.items()},
        index=targets.index,
    )


def latent_regime_codes(regime: pd.Series) -> FloatArray:
    """Regime names (categorical or strings among calm, normal, stressed) as codes 0, 1, 2. Shape (n,)."""
    names = regime.astype(object)
    unknown = (names.notna() & ~names.isin(REGIMES)).to_numpy()
    if unknown.any():
        bad = names[unknown].iloc[0]
        raise ValueError(f"regime names must be one of {', '.join(REGIMES)}; got {bad!r} at {regime.index[unknown][0]}")
    codes = pd.Categorical(names, categories=list(REGIMES)).codes
    return np.where(codes < 0, np.nan, codes.astype(float))


def true_regime_targets(truth: pd.DataFrame, horizons: Sequence[int]) -> pd.DataFrame:
    """``regime_true_h{h}``: the simulator's latent regime h bars after each origin (code 0, 1, 2; NaN on the last
    h rows), indexed like ``truth``."""
    codes = latent_regime_codes(truth["regime"])
    out = {f"regime_true_h{h}": shift_back(codes, h) for h in _check_horizons(horizons)}
    return pd.DataFrame(out, index=truth.index)


def _check_horizons(horizons: Sequence[int]) -> tuple[int, ...]:
    hs = tuple(horizons)
    if (
        not hs
        or any(isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1 for h in hs)
        or len(set(hs)) != len(hs)
    ):
        raise ValueError(f"horizons must be distinct whole numbers of bars ≥ 1; got {list(horizons)}")
    return tuple(int(h) for h in hs)


def _iv_on_bars(data: MarketData, iv_aligned: pd.Series | npt.ArrayLike | None) -> FloatArray | None:
    """The IV per bar: ``iv_aligned`` as given (checked against the bars), else the index aligned, else the
    chain's 30-day ATM IV, else None."""
    if iv_aligned is None:
        if data.iv is not None:
            return aligned_iv(data)
        return chain_atm_iv_on_bars(data, 30.0) if data.chain is not None else None
    if isinstance(iv_aligned, pd.Series) and not iv_aligned.index.equals(data.index):
        raise ValueError(
            "iv_aligned must be indexed like the bars; align it first with "
            "forecaster.market.align_iv_to_bars(iv, data.index), or pass data.iv and no iv_aligned"
        )
    iv = np.asarray(iv_aligned, dtype=float)
    if iv.shape != (len(data.index),):
        raise ValueError(f"iv_aligned must hold one value per bar, shape ({len(data.index)},); got shape {iv.shape}")
    return iv
