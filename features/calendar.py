"""Calendar features: hour of day and day of week as points on a circle (sin, cos), so 23:00 sits next to 00:00.

Hour of day exists for bars shorter than a day (it is the UTC hour of the bar's end, with minutes as a
fraction); day of week for bars of a day or shorter. Both are row-local: no warm-up.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.base import Context, MarketData


class CalendarGroup:
    name = "calendar"
    needs: tuple[str, ...] = ()

    def columns(self, windows: tuple[int, ...], params: Mapping[str, object], data: MarketData) -> dict[str, int]:
        names: list[str] = []
        if data.freq < pd.Timedelta(days=1):
            names += ["hour_sin", "hour_cos"]
        if data.freq <= pd.Timedelta(days=1):
            names += ["dow_sin", "dow_cos"]
        return dict.fromkeys(names, 0)

    def compute(self, ctx: Context, windows: tuple[int, ...], params: Mapping[str, object]) -> pd.DataFrame:
        index = ctx.data.index
        hours = index.hour + index.minute / 60.0 + index.second / 3600.0  # the bar's end, UTC
        days = index.day_of_week + hours / 24.0  # Monday 00:00 = 0
        angle_h = 2 * np.pi * np.asarray(hours) / 24.0
        angle_d = 2 * np.pi * np.asarray(days) / 7.0
        return pd.DataFrame(
            {
                "hour_sin": np.sin(angle_h),
                "hour_cos": np.cos(angle_h),
                "dow_sin": np.sin(angle_d),
                "dow_cos": np.cos(angle_d),
            },
            index=index,
        )


GROUP = CalendarGroup()
