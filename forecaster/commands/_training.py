"""What ``train``, ``evaluate`` and ``tune`` share: the data flags, the spec choice, the models of the spec.

Data: files (``--bars`` with optional ``--trades``, ``--iv-index``, ``--options``), or, with no data flag, the spec's
simulated market over ``training.days`` days (its truth gives the oracle). Without ``--config``, files whose bars
are a day or longer use ``daily_index`` and anything shorter ``sim_intraday`` (DESIGN section 7), and the
command says which.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from forecaster.commands._simulation import parse_horizons
from forecaster.config import Spec, load_spec
from forecaster.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

DAILY_SPEC = "daily_index"
INTRADAY_SPEC = "sim_intraday"
DEFAULT_TRAINING_DAYS = 120


@dataclass
class TrainingInputs:
    spec: Spec
    feature_spec: Any  # features.pipeline.FeatureSpec
    data: Any  # models.base.ModelData
    market: Any  # features.base.MarketData
    origin: str  # "simulated" or "files"
    description: str


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default by bar length")
    from forecaster.commands.features import add_market_file_arguments

    data = parser.add_argument_group("market data (none: the spec's simulated market over training.days)")
    add_market_file_arguments(data)
    data.add_argument("--horizons", type=parse_horizons, help="forecast horizons in bars, e.g. 1,5,22")
    data.add_argument("--days", type=float, help="simulated days (overrides training.days)")
    data.add_argument("--seed", type=int, help="simulator seed (overrides simulator.seed)")
    parser.add_argument("--models", help="comma-separated names from the spec's models: section (default: all)")


def load_training_inputs(args: argparse.Namespace) -> TrainingInputs:
    """The spec, its feature spec and the ModelData of the market the flags describe."""
    from features.pipeline import feature_spec_from_spec
    from training.data import model_data

    spec = load_spec(args.config or default_spec(args))
    if args.config is None and args.bars is not None:
        print(f"spec: {spec.name} (chosen by the bar length; pass --config to pick another)")
    horizons = list(args.horizons or spec.get("horizons") or [])
    if not horizons:
        raise ConfigError(spec.path, "horizons", "no forecast horizons: state them in the spec or pass --horizons")
    spec.override("horizons", horizons)
    fspec = feature_spec_from_spec(spec.values, where=spec.path)
    if args.bars is None:
        market, truth, description = _simulated(args, spec, horizons)
        origin = "simulated"
    else:
        from forecaster.commands.features import _market

        market, truth = _market(args, spec), None
        description = f"{args.bars} ({len(market.index):,} bars of {market.freq})"
        origin = "files"
    data = model_data(market, fspec, horizons, truth=truth, show_progress=True)
    return TrainingInputs(spec, fspec, data, market, origin, description)


def load_market(args: argparse.Namespace) -> tuple[Spec, Any]:
    """The spec and the market the data flags describe (no features: the caller cuts the market first)."""
    spec = load_spec(args.config or default_spec(args))
    horizons = list(args.horizons or spec.get("horizons") or [])
    if not horizons:
        raise ConfigError(spec.path, "horizons", "no forecast horizons: state them in the spec or pass --horizons")
    spec.override("horizons", horizons)
    if args.bars is None:
        market, _, _ = _simulated(args, spec, horizons)
    else:
        from forecaster.commands.features import _market

        market = _market(args, spec)
    return spec, market


def default_spec(args: argparse.Namespace) -> str:
    if args.bars is None:
        return INTRADAY_SPEC
    if args.freq:
        return DAILY_SPEC if pd.Timedelta(args.freq) >= pd.Timedelta(days=1) else INTRADAY_SPEC
    from features.market import infer_freq
    from forecaster import market as md

    bars = md.load_bars(args.bars).data
    return DAILY_SPEC if infer_freq(bars.index) >= pd.Timedelta(days=1) else INTRADAY_SPEC


def _simulated(args: argparse.Namespace, spec: Spec, horizons: list[int]):
    from forecaster.market.simulator import sim_config_from_spec
    from training.data import simulated_market

    days = args.days if args.days is not None else spec.get("training.days", DEFAULT_TRAINING_DAYS)
    spec.override("simulator.days", days)
    if args.seed is not None:
        spec.override("simulator.seed", args.seed)
    try:
        config = sim_config_from_spec(spec.values, where=spec.path)
    except ConfigError as error:
        raise UsageError(f"{error} (the simulated market of {spec.name})") from None
    print(f"simulating the spec's market: {config.days:g} days of {config.freq} bars, seed {config.seed}...")
    market, truth = simulated_market(config)
    return market, truth, f"simulated {config.days:g} days ({len(market.index):,} bars), seed {config.seed}"


def spec_models(spec: Spec, selected: str | None, *, simulated: bool) -> dict[str, Any]:
    """The spec's ``models:`` section as unfitted models, the ``--models`` subset, in the spec's order.

    The oracle needs the simulator's truth: on files it is left out, with a note."""
    from models.registry import make_model

    section = spec.section("models")
    if not section:
        raise ConfigError(spec.path, "models", "no models: list them as {name: {family: ..., params...}}")
    names = list(section)
    if selected:
        wanted = [s.strip() for s in selected.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in section]
        if unknown:
            raise UsageError(f"--models: {unknown} not in the spec's models ({', '.join(names)})")
        names = wanted
    models = {}
    for name in names:
        settings = dict(section[name] or {})
        if settings.get("family", name) == "oracle" and not simulated:
            print(f"note: model {name!r} (the simulator's oracle) is left out: the data are files, not simulated")
            continue
        models[name] = make_model(name, settings, where=spec.path)
    return models


def print_table(evaluation: dict[str, Any]) -> None:
    from training.metrics import metrics_table

    table = metrics_table(evaluation)
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format):
        print(table.to_string())
    for warning in evaluation.get("warnings", [])[:10]:
        print(f"warning: {warning}")
