"""Experiment specs: YAML files in ``experiments/``, resolved, overridden by flags, flattened for MLflow."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from forecaster.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

DEFAULT_SPEC = "sim_intraday"
# The repository's experiments/ folder, found next to the installed (editable) package.
_REPO_EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@dataclass
class Spec:
    """A resolved experiment spec: its name, where it came from and its (nested) values."""

    name: str
    path: str
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.values
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, key: str) -> dict[str, Any]:
        node = self.get(key, {})
        if not isinstance(node, Mapping):
            raise ConfigError(self.path, key, f"must be a mapping, got {type(node).__name__}")
        return dict(node)

    def override(self, dotted: str, value: Any) -> None:
        """Set ``dotted`` (e.g. ``simulator.days``) to ``value``; flags override the spec this way."""
        node = self.values
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value


def resolve_spec_path(name_or_path: str | Path | None) -> Path:
    """Find a spec by path, or by name in ``./experiments`` and then the repository's ``experiments/``."""
    target = str(name_or_path) if name_or_path is not None else DEFAULT_SPEC
    direct = Path(target)
    if direct.suffix in {".yaml", ".yml"} and direct.is_file():
        return direct
    stem = direct.stem if direct.suffix in {".yaml", ".yml"} else target
    for folder in (Path.cwd() / "experiments", _REPO_EXPERIMENTS):
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    raise UsageError(
        f"experiment spec {target!r} not found (looked at {direct}, ./experiments/{stem}.yaml and "
        f"{_REPO_EXPERIMENTS}/{stem}.yaml). Pass --config with the path of an existing YAML spec."
    )


def load_spec(name_or_path: str | Path | None = None) -> Spec:
    """Read a YAML spec; a missing file or a non-mapping top level is a :class:`ConfigError`."""
    path = resolve_spec_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "<file>", f"is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(str(path), "<top level>", "must be a mapping of sections (name, data, simulator...)")
    log.info("experiment spec: %s", path)
    return Spec(name=str(values.get("name", path.stem)), path=str(path), values=copy.deepcopy(values))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys (``simulator.regimes.ann_vol``), lists kept as values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def check_keys(values: Mapping[str, Any], allowed: Sequence[str], where: str, prefix: str) -> None:
    """Raise :class:`ConfigError` naming ``prefix.key`` (first in sorted order) for a key not in ``allowed``."""
    unknown = sorted(str(k) for k in values if k not in allowed)
    if unknown:
        raise ConfigError(where, f"{prefix}.{unknown[0]}", f"unknown key; allowed keys: {', '.join(allowed)}")


def checked_section(spec_values: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> dict[str, Any]:
    """A top-level spec section (absent or null: empty) that must be a mapping of ``allowed`` keys only."""
    section = spec_values.get(key) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(where, key, f"must be a mapping of keys ({', '.join(allowed)})")
    check_keys(section, allowed, where, key)
    return dict(section)


def dataclass_from_mapping(cls: type, values: Mapping[str, Any], where: str, prefix: str) -> Any:
    """Build the (nested) dataclass ``cls`` from a spec section, checking keys and value types.

    Unknown keys, a number where a list is wanted, text where a number is wanted... raise :class:`ConfigError`
    naming the spec file (``where``), the dotted key (``prefix.key``), what is allowed and what was received.
    Missing keys keep the dataclass defaults; lists become tuples; ints are accepted for floats.
    """
    hints = get_type_hints(cls)
    check_keys(values, [f.name for f in dataclasses.fields(cls)], where, prefix)
    return cls(**{k: _coerce(v, hints[k], where, f"{prefix}.{k}") for k, v in values.items()})


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(where, key, f"must be a mapping, got {value!r}")
        return dataclass_from_mapping(hint, value, where, key)
    if getattr(hint, "__origin__", None) is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(where, key, f"must be a list, got {value!r}")
        return tuple(_coerce(v, hint.__args__[0], where, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, key, f"must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, key, f"must be an integer, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2026-01-01 as a date: keep its text
            return value.isoformat()
        if not isinstance(value, str):
            raise ConfigError(where, key, f"must be a string, got {value!r}")
    return value
