"""From a market to :class:`models.base.ModelData`: features, targets, IV and (simulated) truth on one index.

``model_data`` is the one place that builds what models read, for training, evaluation and tuning alike, and
:func:`simulated_market` gives the spec's simulated market read back through the loaders (as a user's files are).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.base import Context, MarketData
from features.implied import aligned_iv, chain_atm_iv_on_bars
from features.pipeline import FeatureSpec, build_features
from features.targets import make_targets
from models.base import ModelData


def model_data(
    market: MarketData,
    spec: FeatureSpec,
    horizons: Sequence[int],
    *,
    truth: pd.DataFrame | None = None,
    show_progress: bool = False,
) -> ModelData:
    """Features (the spec's groups and windows), targets ``rv_h``/``div_h``, the IV and the truth of ``market``."""
    table = build_features(market, spec, show_progress=show_progress)
    iv = market_iv(market)
    targets = make_targets(market, list(horizons), iv_aligned=iv)
    if truth is not None:
        truth = truth.reindex(market.index)
    return ModelData(
        features=table.frame,
        log_return=Context(market).log_return,
        bar_years=market.bar_years,
        horizons=tuple(int(h) for h in horizons),
        targets=targets,
        iv=iv,
        truth=truth,
        info={"fingerprint": table.fingerprint, "warmup": table.warmup, "skipped": table.skipped},
    )


def market_iv(market: MarketData) -> np.ndarray | None:
    """The IV known at each bar: the IV index, else the chain's 30-day ATM IV, else None. Shape (n,)."""
    if market.iv is not None:
        return aligned_iv(market)
    if market.chain is not None:
        return chain_atm_iv_on_bars(market, 30.0)
    return None


def simulated_market(config, *, with_chain: bool = True, with_trades: bool = True) -> tuple[MarketData, pd.DataFrame]:
    """Simulate ``config`` (a ``SimConfig``), read every file back through the loaders; (market, truth)."""
    from features.market import market_data
    from forecaster import market as md
    from forecaster.commands._simulation import quiet_logs
    from forecaster.market.simulator import simulate

    with quiet_logs("forecaster.market"), tempfile.TemporaryDirectory(prefix="forecaster-sim-") as tmp:
        sim = simulate(config, out_dir=tmp, with_chain=with_chain, with_trades=with_trades)
        trades = md.load_trades(sim.files["trades"]).data if with_trades else None
        iv = md.load_iv_index(sim.files["iv_index"]).data
        chain = md.load_options_chain(sim.files["options_chain"]).data if with_chain else None
        truth = sim.truth
    market = market_data(sim.bars, freq=config.freq, trades=trades, iv=iv, chain=chain)
    return market, truth
