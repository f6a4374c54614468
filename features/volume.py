"""Volume and liquidity features from the bars alone (no trades needed).

Per window of W bars (Σ over the W bars ending at t, through :func:`features.windows.window_sum`):

- ``volume_W`` = Σ volume; ``dollar_volume_W`` = Σ close × volume (quote currency);
- ``amihud_W`` = Σ |r| / Σ close × volume: Amihud's illiquidity as a ratio of sums, so a bar without volume
  weighs nothing instead of dividing by zero. A window with no volume at all (an index whose files carry
  volume 0, a feed outage) gives **0**, not NaN or inf: the column stays finite, and on a volume-less index it is
  a constant the models ignore;
- ``volume_chg_W`` = (V(t) − V(t−W)) / (V(t) + V(t−W)) with V = ``volume_W``: the change against the previous,
  non-overlapping window, equal to tanh(½ ln(V(t) / V(t−W))), so it ranks like the log ratio but stays in
  [−1, 1] and is 0 when both windows are empty, where the log ratio is undefined.

Warm-ups (leading NaN rows): ``volume_W`` and ``dollar_volume_W`` that of ``window_sum`` (:func:`sum_warmup`);
``amihud_W`` also skips the first bar, which has no return; ``volume_chg_W`` W rows more than ``volume_W``.
The helpers here (:func:`sum_warmup`, :func:`lagged`, :func:`safe_ratio`, :func:`symmetric_change`) are shared
with the order-flow group.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.windows import window_sum

FloatArray = npt.NDArray[np.float64]


class VolumeGroup:
    name = "volume"
    needs: tuple[str, ...] = ("bars",)

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        warm = {w: sum_warmup(w) for w in windows}
        return {
            **{f"volume_{w}": warm[w] for w in windows},
            **{f"dollar_volume_{w}": warm[w] for w in windows},
            **{f"amihud_{w}": max(warm[w], w) for w in windows},  # the window must also skip row 0 (no return)
            **{f"volume_chg_{w}": warm[w] + w for w in windows},
        }

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        bars = ctx.data.bars
        volume = bars["volume"].to_numpy(dtype=float)  # (n,)
        dollars = bars["close"].to_numpy(dtype=float) * volume  # (n,)
        abs_return = np.abs(ctx.log_return)  # (n,), NaN on row 0
        out: dict[str, FloatArray] = {}
        for w in windows:
            blocks = ctx.blocks(w)
            v = window_sum(volume, w, blocks)
            d = window_sum(dollars, w, blocks)
            out[f"volume_{w}"] = v
            out[f"dollar_volume_{w}"] = d
            out[f"amihud_{w}"] = safe_ratio(window_sum(abs_return, w, blocks), d, empty=0.0)
            out[f"volume_chg_{w}"] = symmetric_change(v, lagged(v, w))
        return pd.DataFrame(out, index=ctx.data.index)[list(self.columns(windows, params, ctx.data))]


@lru_cache(maxsize=64)
def sum_warmup(window: int) -> int:
    """Leading NaN rows of :func:`features.windows.window_sum` over ``window`` bars.

    Read from ``window_sum`` itself (on ``window + 1`` zeros in one block), so the warm-ups stated here cannot
    drift from what the sums actually do.
    """
    probe = window_sum(np.zeros(window + 1), window, np.zeros(window + 1, dtype=np.int64))
    return int(np.argmin(np.isnan(probe)))


def lagged(values: FloatArray, rows: int) -> FloatArray:
    """``values`` shifted ``rows`` ≥ 1 rows later (row t holds row t − rows), NaN first. Shape (n,)."""
    out = np.full(values.shape, np.nan)
    if rows < values.size:
        out[rows:] = values[: values.size - rows]
    return out


def safe_ratio(numerator: FloatArray, denominator: FloatArray, *, empty: float) -> FloatArray:
    """numerator / denominator where the denominator is > 0, ``empty`` where it is 0, NaN where either is NaN.

    Shapes (n,) -> (n,). Denominators are sums of non-negative quantities, so ≤ 0 means "nothing in the window".
    """
    out = np.full(numerator.shape, float(empty))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    out[np.isnan(numerator) | np.isnan(denominator)] = np.nan
    return out


def symmetric_change(now: FloatArray, before: FloatArray) -> FloatArray:
    """(now − before) / (now + before) of non-negative quantities: in [−1, 1], 0 when both are 0. Shape (n,)."""
    return safe_ratio(now - before, now + before, empty=0.0)


GROUP = VolumeGroup()
