"""Model families by name, imported lazily (``forecaster --help`` imports no heavy library).

A spec's ``models:`` section names model instances: ``{name: {family: FAMILY, **hyper-parameters}}``;
:func:`make_model` builds one (unfitted). Families and their classes:
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from forecaster.errors import ConfigError
from models.base import Forecaster

FAMILIES: dict[str, tuple[str, str]] = {
    "persistence": ("models.baselines", "Persistence"),
    "ewma": ("models.baselines", "Ewma"),
    "har": ("models.baselines", "Har"),
    "garch": ("models.garch", "Garch"),
    "hmm": ("models.regime", "HmmRegime"),
    "lgbm": ("models.lgbm", "LgbmForecaster"),
    "net": ("models.net", "NetForecaster"),
    "oracle": ("models.oracle", "Oracle"),
}


def model_class(family: str) -> type[Forecaster]:
    if family not in FAMILIES:
        raise ConfigError("<models>", "family", f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    module, name = FAMILIES[family]
    return getattr(importlib.import_module(module), name)


def make_model(name: str, settings: Mapping[str, Any], *, where: str = "<spec>") -> Forecaster:
    """One model of a spec's ``models:`` section: ``settings`` = {family, **hyper-parameters}."""
    params = dict(settings)
    family = params.pop("family", name)
    if family not in FAMILIES:
        raise ConfigError(where, f"models.{name}.family", f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    cls = model_class(family)
    known = cls._param_names()
    unknown = [k for k in params if k not in known]
    if unknown:
        raise ConfigError(where, f"models.{name}.{unknown[0]}", f"not a parameter of {family}; it takes {known}")
    return cls(**params, name=name) if "name" in known else cls(**params)
