"""Portfolio files (YAML or JSON): positions, collateral and limits (DESIGN section 3).

Example::

    positions:
      - instrument: option          # option | perp | spot | future
        underlying: BTC
        option_type: call           # options only: call | put
        strike: 100000              # options only, > 0
        expiry: 2025-03-28T08:00:00Z  # options and futures
        quantity: -10               # signed, contracts
        multiplier: 1               # default 1
      - {instrument: perp, underlying: BTC, quantity: 2.5}
    collateral: 250000              # quote currency, >= 0
    limits: {max_abs_delta: 5, max_order_size: 2}   # optional

Errors name the position by its 1-based number (``row``) and the field (``column``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from forecaster.market.io import Source, existing_file, note
from forecaster.market.validation import SAMPLE_ROWS, LoadResult, RepairAction

log = logging.getLogger(__name__)

INSTRUMENTS = ("option", "perp", "spot", "future")
OPTION_TYPES = ("call", "put")
TOP_KEYS = ("positions", "collateral", "limits")
POSITION_KEYS = (
    "id",
    "instrument",
    "underlying",
    "option_type",
    "strike",
    "expiry",
    "quantity",
    "multiplier",
)
LIMIT_KEYS = ("max_abs_delta", "max_order_size")
# Fields an instrument needs, and fields it must not have.
NEEDS: dict[str, tuple[str, ...]] = {
    "option": ("option_type", "strike", "expiry"),
    "future": ("expiry",),
    "perp": (),
    "spot": (),
}
FORBIDS: dict[str, tuple[str, ...]] = {
    "option": (),
    "future": ("option_type", "strike"),
    "perp": ("option_type", "strike", "expiry"),
    "spot": ("option_type", "strike", "expiry"),
}


@dataclass(frozen=True)
class Position:
    """One position: ``quantity`` signed (contracts), ``expiry`` UTC; option fields None for others."""

    id: str
    instrument: str
    underlying: str
    quantity: float
    multiplier: float = 1.0
    option_type: str | None = None
    strike: float | None = None
    expiry: pd.Timestamp | None = None


@dataclass(frozen=True)
class Limits:
    """Safety limits; None where the file sets none."""

    max_abs_delta: float | None = None
    max_order_size: float | None = None


@dataclass(frozen=True)
class Portfolio:
    """A book: its positions, collateral (quote currency) and limits."""

    positions: tuple[Position, ...]
    collateral: float
    limits: Limits = field(default_factory=Limits)


def load_portfolio(
    path: str | Path, as_of: pd.Timestamp | dt.datetime | None = None, *, repair: bool = False
) -> LoadResult[Portfolio]:
    """Load and check a portfolio file (YAML, or JSON by the ``.json`` suffix).

    Parameters
    ----------
    path
        The file; never modified.
    as_of
        Valuation time (tz-aware). When given, an option or future whose expiry is at or before it is an
        error ("expired option in a live portfolio"); without it expiries are not compared to a clock.
    repair
        Drop expired positions (the only repair), reported in :attr:`LoadResult.repairs`.

    Raises
    ------
    DataValidationError
        Unknown keys (the message lists the allowed ones), a missing or malformed field, a field that
        does not belong to the instrument (a perp with a strike), a zero quantity, negative collateral,
        non-positive limits, duplicate ids, an expired option or future.
    ValueError
        ``as_of`` without a time zone.
    """
    source = existing_file(path, "json" if Path(path).suffix.lower() == ".json" else "yaml")
    return _portfolio(_parse(source), source, as_of, repair)


def one_underlying(portfolio: Portfolio, holder: str, fix: str) -> tuple[str | None, bool]:
    """(the portfolio's one underlying, None when it holds nothing; whether it holds options). A portfolio on several
    underlyings is a :class:`~forecaster.errors.UsageError` naming ``holder`` (the file or field) and ``fix``."""
    from forecaster.errors import UsageError

    names = sorted({p.underlying for p in portfolio.positions})
    if len(names) > 1:
        raise UsageError(f"{holder} holds positions on {', '.join(names)}; {fix}")
    return (names[0] if names else None), any(p.instrument == "option" for p in portfolio.positions)


def portfolio_from_mapping(
    document: Any,
    *,
    name: str = "<request body>",
    as_of: pd.Timestamp | dt.datetime | None = None,
    repair: bool = False,
) -> LoadResult[Portfolio]:
    """Check an already parsed portfolio (a JSON body, a mapping built in code) by the rules of
    :func:`load_portfolio`; errors name ``name`` where a file's would name the file.

    Raises
    ------
    DataValidationError
        As :func:`load_portfolio`, and when ``document`` is not a mapping.
    ValueError
        ``as_of`` without a time zone.
    """
    source = Source(Path(name), "json")
    if not isinstance(document, Mapping):
        raise source.error(
            f"the top level must be a mapping with keys {', '.join(TOP_KEYS)}; got {type(document).__name__}"
        )
    return _portfolio(document, source, as_of, repair)


def _portfolio(
    document: Mapping[str, Any], source: Source, as_of: pd.Timestamp | dt.datetime | None, repair: bool
) -> LoadResult[Portfolio]:
    _check_keys(document, TOP_KEYS, source, where="the top level")
    notes: list[str] = []
    entries = _field(document, "positions", source, _as_list, "'positions' must be a list of positions")
    positions = [_position(entry, number, source, notes) for number, entry in enumerate(entries, start=1)]
    _check_unique_ids(positions, source)
    collateral = _field(document, "collateral", source, _non_negative, "'collateral' must be a number ≥ 0")
    limits = _limits(document.get("limits"), source)
    repairs: list[RepairAction] = []
    if as_of is not None:
        positions = _live(positions, _utc(as_of), source, repair, repairs)
    return LoadResult(Portfolio(tuple(positions), collateral, limits), source.path, tuple(repairs), tuple(notes))


def _parse(source: Source) -> dict[str, Any]:
    try:
        text = source.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise source.error(f"the file must be UTF-8 text ({exc})") from exc
    try:
        document = json.loads(text) if source.format == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise source.error(f"the file must be valid JSON ({exc.msg})", line=exc.lineno) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise source.error(f"the file must be valid YAML{where} ({exc})") from exc
    if document is None:
        raise source.error("the file must not be empty", fix="write 'positions:' and 'collateral:' (see README)")
    if not isinstance(document, dict):
        raise source.error(
            f"the top level must be a mapping with keys {', '.join(TOP_KEYS)}; got {type(document).__name__}"
        )
    return document


def _position(entry: Any, number: int, source: Source, notes: list[str]) -> Position:
    if not isinstance(entry, Mapping):
        raise source.error("each position must be a mapping of fields", row=number, value=entry)
    _check_keys(entry, POSITION_KEYS, source, where=f"position {number}", row=number)
    instrument = _field(
        entry, "instrument", source, _choice(INSTRUMENTS), _one_of("instrument", INSTRUMENTS), row=number
    )
    for key in NEEDS[instrument]:
        if entry.get(key) is None:
            raise source.error(
                f"{_a(instrument)} position needs '{key}'",
                row=number,
                column=key,
                fix=f"add '{key}' to position {number} ({instrument} needs {', '.join(NEEDS[instrument])})",
            )
    for key in FORBIDS[instrument]:
        if entry.get(key) is not None:
            raise source.error(
                f"{_a(instrument)} position must not have '{key}'",
                row=number,
                column=key,
                value=entry[key],
                fix=f"remove '{key}' from position {number}, or set instrument to option",
            )
    expiry = entry.get("expiry")
    return Position(
        id=str(entry.get("id", number)),
        instrument=instrument,
        underlying=_field(entry, "underlying", source, _text, "'underlying' must be a name", row=number),
        quantity=_field(entry, "quantity", source, _nonzero, "'quantity' must be a finite nonzero number", row=number),
        multiplier=_field(
            entry,
            "multiplier",
            source,
            _positive,
            "'multiplier' must be a number > 0",
            row=number,
            default=1.0,
        ),
        option_type=None
        if instrument != "option"
        else _field(
            entry,
            "option_type",
            source,
            _choice(OPTION_TYPES),
            _one_of("option_type", OPTION_TYPES),
            row=number,
        ),
        strike=None
        if instrument != "option"
        else _field(entry, "strike", source, _positive, "'strike' must be a number > 0", row=number),
        expiry=None if expiry is None else _expiry(entry, number, source, notes),
    )


def _expiry(entry: Mapping[str, Any], number: int, source: Source, notes: list[str]) -> pd.Timestamp:
    stamp = _field(
        entry,
        "expiry",
        source,
        _timestamp,
        "'expiry' must be an ISO date-time such as 2025-03-28T08:00:00Z",
        row=number,
    )
    if stamp.tzinfo is None:
        note(notes, log, source, f"position {number}: expiry {stamp} has no time zone, assumed UTC")
        return stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC")


def _limits(value: Any, source: Source) -> Limits:
    if value is None:
        return Limits()
    if not isinstance(value, Mapping):
        raise source.error("'limits' must be a mapping", column="limits", value=value)
    _check_keys(value, LIMIT_KEYS, source, where="limits")
    parsed = {
        key: _field(value, key, source, _positive, f"'limits.{key}' must be a number > 0", default=None)
        for key in LIMIT_KEYS
    }
    return Limits(**parsed)


def _live(
    positions: list[Position], as_of: pd.Timestamp, source: Source, repair: bool, repairs: list[RepairAction]
) -> list[Position]:
    expired = [n for n, p in enumerate(positions, start=1) if p.expiry is not None and p.expiry <= as_of]
    if not expired:
        return positions
    first = positions[expired[0] - 1]
    rule = f"expired {first.instrument} in a live portfolio (expiry must be after as-of {as_of})"
    if not repair:
        raise source.error(
            rule,
            row=expired[0],
            column="expiry",
            value=str(first.expiry),
            count=len(expired),
            fix="remove the expired position, check --as-of, or run with --repair to drop expired positions",
        )
    action = RepairAction(
        "expired option or future in a live portfolio",
        "dropped positions",
        len(expired),
        tuple(expired[:SAMPLE_ROWS]),
    )
    log.info("%s: repair: %s", source.name, action)
    repairs.append(action)
    dropped = set(expired)
    return [p for n, p in enumerate(positions, start=1) if n not in dropped]


def _check_keys(
    mapping: Mapping[str, Any],
    allowed: tuple[str, ...],
    source: Source,
    *,
    where: str,
    row: int | None = None,
) -> None:
    unknown = [key for key in mapping if key not in allowed]
    if unknown:
        raise source.error(
            f"unknown key '{unknown[0]}' in {where}; allowed keys: {', '.join(allowed)}",
            row=row,
            column=str(unknown[0]),
            fix="remove or correct the key (keys are case-sensitive)",
        )


def _check_unique_ids(positions: list[Position], source: Source) -> None:
    seen: dict[str, int] = {}
    for number, position in enumerate(positions, start=1):
        if position.id in seen:
            raise source.error(
                f"position ids must be unique (position {seen[position.id]} has the same id)",
                row=number,
                column="id",
                value=position.id,
            )
        seen[position.id] = number


_MISSING = object()


def _field(
    mapping: Mapping[str, Any],
    key: str,
    source: Source,
    parse: Callable[[Any], Any],
    rule: str,
    *,
    row: int | None = None,
    default: Any = _MISSING,
) -> Any:
    """``parse(mapping[key])``; a missing key (without default) or a value ``parse`` rejects raises."""
    value = mapping.get(key)
    if value is None:
        if default is not _MISSING:
            return default
        raise source.error(f"'{key}' is required", row=row, column=key, fix=f"add '{key}' ({rule})")
    try:
        return parse(value)
    except (TypeError, ValueError) as exc:
        raise source.error(rule, row=row, column=key, value=value, fix=f"correct '{key}'") from exc


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _non_negative(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError(value)
    return number


def _nonzero(value: Any) -> float:
    number = _number(value)
    if number == 0:
        raise ValueError(value)
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value.strip()


def _choice(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        word = _text(value).lower()
        if word not in allowed:
            raise ValueError(value)
        return word

    return parse


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _one_of(key: str, allowed: tuple[str, ...]) -> str:
    return f"'{key}' must be one of {', '.join(allowed)}"


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(value)
    return value


def _timestamp(value: Any) -> pd.Timestamp:
    if not isinstance(value, str | dt.date):
        raise TypeError(value)
    return pd.Timestamp(value)


def _utc(as_of: pd.Timestamp | dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is None:
        raise ValueError(f"as_of must be tz-aware (UTC); got {as_of!r}")
    return stamp.tz_convert("UTC")
