"""A book: the positions of a portfolio as arrays at one valuation time, priced from a spot and a vol source.

Every position becomes one entry of shape (N,) arrays. Options are priced with Black-76 on the forward of their
underlying; with the crypto default carry of 0 the forward equals the spot (Deribit options settle on the index,
and its per-expiry forwards sit within a few basis points of it over days). Perpetuals, spot and futures are
linear: ``weight`` units of the underlying.

Weights: ``weight = quantity × multiplier``, signed, in units of the underlying (coins for BTC options).
Time: ``tau`` in years of 365 calendar days (24/7 markets; DESIGN section 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecaster.errors import UsageError
from forecaster.market.portfolio_file import Limits, Portfolio

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

YEAR = pd.Timedelta(days=365)
INSTRUMENTS = ("option", "perp", "spot", "future")


class VolSource(Protocol):
    """Anything that gives an implied vol per option: an SVI surface from a chain, or a flat IV-index level."""

    def iv_strike(self, strike: FloatArray, tau: FloatArray, forward: FloatArray) -> FloatArray:
        """Implied vol (decimal) of each option. Shape: the broadcast of the inputs."""
        ...


@dataclass(frozen=True)
class Book:
    """Positions as arrays at ``as_of``. Every array has shape (N,).

    ``strike``, ``iv`` are NaN for linear instruments; ``tau`` is NaN for perps and spot. ``spot`` is the spot
    of each position's underlying.
    """

    as_of: pd.Timestamp
    ids: tuple[str, ...]
    instrument: npt.NDArray[np.str_]
    underlying: npt.NDArray[np.str_]
    weight: FloatArray
    is_call: BoolArray
    strike: FloatArray
    tau: FloatArray
    iv: FloatArray
    spot: FloatArray
    collateral: float = 0.0
    limits: Limits = field(default_factory=Limits)
    expiry: tuple[pd.Timestamp | None, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_option(self) -> BoolArray:
        return self.instrument == "option"

    @property
    def underlyings(self) -> list[str]:
        """The distinct underlyings, in order of first appearance."""
        return list(dict.fromkeys(self.underlying.tolist()))

    def select(self, mask: BoolArray) -> Book:
        """The sub-book of the positions where ``mask`` is true."""
        keep = np.flatnonzero(mask)
        arrays = {
            name: getattr(self, name)[keep]
            for name in ("instrument", "underlying", "weight", "is_call", "strike", "tau", "iv", "spot")
        }
        return replace(
            self,
            ids=tuple(self.ids[i] for i in keep),
            expiry=tuple(self.expiry[i] for i in keep) if self.expiry else (),
            **arrays,
        )

    def aged(self, years: float) -> Book:
        """The same positions ``years`` later (spot and vols unchanged): tau shrinks, floored at 0 (expired)."""
        later = self.as_of + pd.Timedelta(days=365 * years)
        return replace(self, as_of=later, tau=np.where(np.isnan(self.tau), np.nan, np.maximum(self.tau - years, 0.0)))


def book_from_portfolio(
    portfolio: Portfolio,
    *,
    as_of: pd.Timestamp,
    spot: float | Mapping[str, float],
    vols: VolSource | Mapping[str, VolSource] | None,
) -> Book:
    """Price the portfolio's positions at ``as_of``.

    Parameters
    ----------
    portfolio
        Loaded with :func:`forecaster.market.load_portfolio` (expired positions are refused there).
    as_of
        Valuation time, tz-aware.
    spot
        The spot of the single underlying, or a mapping underlying -> spot for several.
    vols
        The vol source (surface or flat IV level) of the single underlying, or a mapping underlying -> source.
        None is allowed only when the book holds no options.

    Raises
    ------
    UsageError
        A position's underlying has no spot or no vol source, a single spot or vol source is given for
        several underlyings, or an option is at or past its expiry.
    """
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is None:
        raise UsageError(f"as_of must carry a time zone (got {as_of}); pass e.g. 2026-01-01T00:00:00Z")
    positions = portfolio.positions
    underlying = np.array([p.underlying for p in positions], dtype=str)
    _one_per_underlying(spot, underlying, "spot", "--spot")
    spots = np.array([_for(spot, u, "spot", "--spot") for u in underlying], dtype=float)
    if np.any(~np.isfinite(spots) | (spots <= 0)):
        bad = int(np.flatnonzero(~np.isfinite(spots) | (spots <= 0))[0])
        raise UsageError(f"the spot of {underlying[bad]} must be a finite number > 0; got {spots[bad]}")
    expiry = tuple(p.expiry for p in positions)
    tau = np.array([np.nan if e is None else (e - as_of) / YEAR for e in expiry], dtype=float)
    instrument = np.array([p.instrument for p in positions], dtype=str)
    is_option = instrument == "option"
    dated = np.array([e is not None for e in expiry], dtype=bool)  # options and futures
    if np.any(dated & ~(tau > 0)):
        bad = int(np.flatnonzero(dated & ~(tau > 0))[0])
        raise UsageError(
            f"position {positions[bad].id}: the {instrument[bad]} expired at {expiry[bad]}, at or before the "
            f"valuation time {as_of}; remove it from the portfolio or value the book at an earlier --as-of"
        )
    strike = np.array([np.nan if p.strike is None else p.strike for p in positions], dtype=float)
    iv = np.full(len(positions), np.nan)
    _one_per_underlying(vols, underlying[is_option], "vol source", "--options or --iv-index")
    for name in dict.fromkeys(underlying[is_option].tolist()):
        rows = is_option & (underlying == name)
        source = _for(vols, name, "vol source", "--options or --iv-index")
        iv[rows] = np.asarray(source.iv_strike(strike[rows], tau[rows], spots[rows]), dtype=float)
    if np.any(is_option & ~(iv > 0)):
        bad = int(np.flatnonzero(is_option & ~(iv > 0))[0])
        raise UsageError(
            f"position {positions[bad].id}: the vol source gave implied vol {iv[bad]} for strike {strike[bad]}, "
            f"expiry {expiry[bad]}; check the option chain or IV index covers this underlying"
        )
    return Book(
        as_of=as_of,
        ids=tuple(p.id for p in positions),
        instrument=instrument,
        underlying=underlying,
        weight=np.array([p.quantity * p.multiplier for p in positions], dtype=float),
        is_call=np.array([p.option_type == "call" for p in positions], dtype=bool),
        strike=strike,
        tau=tau,
        iv=iv,
        spot=spots,
        collateral=float(portfolio.collateral),
        limits=portfolio.limits,
        expiry=expiry,
    )


def _one_per_underlying(value, underlying: npt.NDArray[np.str_], what: str, flag: str) -> None:
    """A single spot or vol source is ambiguous (and silently wrong) for a book on several underlyings."""
    names = list(dict.fromkeys(underlying.tolist()))
    if len(names) > 1 and value is not None and not isinstance(value, Mapping):
        raise UsageError(
            f"the book holds positions on {len(names)} underlyings ({', '.join(names)}) but one {what} was given; "
            f"give a mapping underlying -> {what} (one per underlying with {flag})"
        )


def _for(value, underlying: str, what: str, flag: str):
    if isinstance(value, Mapping):
        if underlying not in value:
            raise UsageError(
                f"no {what} for underlying {underlying!r} (have: {', '.join(map(str, value)) or 'none'}); "
                f"give one with {flag}"
            )
        return value[underlying]
    if value is None:
        raise UsageError(f"the book holds options on {underlying!r} but no {what} was given; pass {flag}")
    return value
