"""Order-flow features from trades, aggregated per bar (:func:`features.flowagg.aggregate_trades`).

Per window of W bars, with B, S, U the window's buy, sell and unknown-side volume and N its trade count (each a
:func:`features.windows.window_sum` of per-bar totals):

- ``imbalance_W`` = (B − S) / (B + S), in [−1, 1];
- ``trades_W`` = N; ``intensity_W`` = N / (W × bar minutes), trades per minute;
- ``avg_size_W`` = (B + S + U) / N, base units per trade;
- ``vpin_W`` = Σ_bars |buy − sell| / (B + S), in [0, 1]: the **bar-clock** VPIN, over the window's time bars.
  The original VPIN fills equal-volume buckets, whose edges depend on where the data starts; per-bar imbalances
  summed over a fixed window of bars keep the feature window-local, so serving reproduces batch;
- ``imbalance_chg_W`` = imbalance_W(t) − imbalance_W(t − W), the change against the previous, non-overlapping window;
- ``intensity_chg_W`` = (N(t) − N(t−W)) / (N(t) + N(t−W)) = tanh(½ ln of the intensity ratio), in [−1, 1].

Unknown-side trades count in N, ``avg_size`` and ``intensity`` but in neither B nor S (:mod:`features.flowagg`).
A window without any trade (or without a signed one) is quiet, not missing: imbalance, VPIN, average size and
intensity are 0 there, and so are the changes between two empty windows. The only NaN are the warm-up rows:
that of ``window_sum`` (:func:`features.volume.sum_warmup`), W rows more for the two changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.base import Context, MarketData
from features.flowagg import aggregate_trades
from features.volume import lagged, safe_ratio, sum_warmup, symmetric_change
from features.windows import window_sum

FloatArray = npt.NDArray[np.float64]
FEATURES = ("imbalance", "trades", "intensity", "avg_size", "vpin", "imbalance_chg", "intensity_chg")
_CHANGES = ("imbalance_chg", "intensity_chg")  # compare with the previous window: W more warm-up rows


class FlowGroup:
    name = "flow"
    needs: tuple[str, ...] = ("trades",)

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        return {
            f"{feature}_{w}": sum_warmup(w) + (w if feature in _CHANGES else 0) for feature in FEATURES for w in windows
        }

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        data = ctx.data
        bars = aggregate_trades(data.trades, data.index, data.freq)
        minutes = data.freq / pd.Timedelta(minutes=1)
        out: dict[str, FloatArray] = {}
        for w in windows:
            out.update(window_flow(bars, w, ctx.blocks(w), minutes))
        return pd.DataFrame(out, index=data.index)[list(self.columns(windows, params, data))]


def window_flow(
    bars: pd.DataFrame, window: int, blocks: npt.NDArray[np.int64], bar_minutes: float
) -> dict[str, FloatArray]:
    """The flow features over ``window`` bars from per-bar totals (:data:`features.flowagg.AGGREGATE_COLUMNS`).

    Parameters
    ----------
    bars
        Per-bar totals, ``n`` rows.
    window
        Bars per window, W.
    blocks
        Shape (n,): the anchor blocks of ``window`` (:meth:`Context.blocks`).
    bar_minutes
        Length of one bar in minutes.

    Returns
    -------
    dict
        Column name (``{feature}_{W}``) -> array of shape (n,).
    """
    buy, sell = bars["buy_volume"].to_numpy(dtype=float), bars["sell_volume"].to_numpy(dtype=float)  # (n,)
    b = window_sum(buy, window, blocks)
    s = window_sum(sell, window, blocks)
    u = window_sum(bars["unknown_volume"].to_numpy(dtype=float), window, blocks)
    n = window_sum(bars["n_trades"].to_numpy(dtype=float), window, blocks)  # integer counts: exact in float
    churn = window_sum(np.abs(buy - sell), window, blocks)  # Σ per-bar |buy − sell|
    imbalance = safe_ratio(b - s, b + s, empty=0.0)
    return {
        f"imbalance_{window}": imbalance,
        f"trades_{window}": n,
        f"intensity_{window}": n / (window * bar_minutes),
        f"avg_size_{window}": safe_ratio(b + s + u, n, empty=0.0),
        f"vpin_{window}": safe_ratio(churn, b + s, empty=0.0),
        f"imbalance_chg_{window}": imbalance - lagged(imbalance, window),
        f"intensity_chg_{window}": symmetric_change(n, lagged(n, window)),
    }


GROUP = FlowGroup()
