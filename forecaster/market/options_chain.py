"""Option-chain snapshots in the Tardis ``options_chain`` format (DESIGN section 3).

Premiums come out in quote currency: Deribit (and the simulator) quote them in the underlying coin, and the
loader converts them with each row's ``underlying_price``, after telling coin from quote currency by pricing the
marks (``premium_units="auto"``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.errors import UsageError
from forecaster.market.units import iv_bounds, iv_scale
from forecaster.market.validation import (
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    TIMESTAMP,
    Bounds,
    Column,
    Loading,
    LoadResult,
    Rule,
    Schema,
    column_rules,
    indexed_by_time,
    start_loading,
    timestamp_order_rules,
)
from forecaster.pricing.black import black76_price

log = logging.getLogger(__name__)

OPTION_TYPES = {"call": "call", "c": "call", "put": "put", "p": "put"}
IV_COLUMNS = ("bid_iv", "ask_iv", "mark_iv")
# Deribit writes 0 for a missing quote; a price or IV of 0 on the bid or ask side means "no quote".
NO_QUOTE_IF_ZERO = ("bid_price", "bid_iv", "ask_price", "ask_iv")
PREMIUM_COLUMNS = ("mark_price", "bid_price", "ask_price", "last_price")
PREMIUM_UNITS = ("coin", "quote", "auto")
# auto: the chosen units must price the marks within a factor of 2 (median), and the other units must miss them
# by a further factor of 2, else the file cannot tell (underlying prices near 1) and the caller must say
AUTO_FIT = math.log(2.0)
AUTO_MARGIN = math.log(2.0)
# rows compared by auto: a model price of at least 1e-4 of the underlying (one Deribit tick), so that deep
# out-of-the-money marks held at the minimum tick do not count
AUTO_MIN_MODEL = 1e-4
AUTO_SAMPLE = 100_000
YEAR = pd.Timedelta(days=365)  # crypto options: time to expiry in calendar time, 365-day years


def _optional(name: str, bounds: Bounds | None = NON_NEGATIVE) -> Column:
    return Column(name, "number", required=False, bounds=bounds, empty_ok=True)


OPTIONS_CHAIN = Schema(
    "option chain",
    (
        Column("exchange", "category"),
        Column("symbol", "category"),
        TIMESTAMP,
        Column("local_timestamp", "timestamp"),
        Column("type", "category", choices=OPTION_TYPES),
        Column("strike_price", "number", bounds=POSITIVE),
        Column("expiration", "timestamp"),
        _optional("open_interest"),
        _optional("last_price"),
        _optional("bid_price"),
        _optional("bid_amount"),
        _optional("bid_iv", bounds=None),  # bounds in the file's IV units, set by the loader
        _optional("ask_price"),
        _optional("ask_amount"),
        _optional("ask_iv", bounds=None),
        Column("mark_price", "number", bounds=NON_NEGATIVE),
        Column("mark_iv", "number"),
        Column("underlying_index", "category", required=False, empty_ok=True),
        Column("underlying_price", "number", bounds=POSITIVE),
        *(_optional(greek, bounds=FINITE) for greek in ("delta", "gamma", "vega", "theta", "rho")),
    ),
)
CHAIN_COLUMNS = tuple(c.name for c in OPTIONS_CHAIN.columns if c.name != "timestamp")

EXPIRY_RULE = Rule(
    "an option must not have expired at snapshot time (expiration must be after timestamp)",
    "expiration",
    lambda data, raw: pd.DatetimeIndex(data["expiration"]).asi8 <= pd.DatetimeIndex(data["timestamp"]).asi8,
    fix="remove the expired options, or run with --repair to drop them",
)


def load_options_chain(
    path: str | Path, iv_units: str = "pct", *, premium_units: str = "auto", repair: bool = False
) -> LoadResult[pd.DataFrame]:
    """Load option-chain snapshots (Tardis ``options_chain`` columns; many rows share a snapshot timestamp).

    Implied vols (``bid_iv``, ``ask_iv``, ``mark_iv``) are converted to decimal, and premiums (``mark_price``,
    ``bid_price``, ``ask_price``, ``last_price``) to quote currency (USD for Deribit BTC options): a file in coin
    (Deribit quotes 0.0123 BTC) has every premium multiplied by its row's ``underlying_price``. Which units the
    file uses, and what was converted, is in :attr:`LoadResult.notes`. A bid or ask price or IV of 0, or an
    empty cell, means "no quote" and becomes NaN. Optional columns absent from the file (open interest, quotes,
    Greeks, ``underlying_index``) are added empty.

    Parameters
    ----------
    path
        CSV, CSV.gz or Parquet file; never modified. ``timestamp``, ``local_timestamp`` and ``expiration`` as
        epoch numbers (Tardis: µs) or ISO strings.
    iv_units
        ``pct`` (Tardis, the default), ``dec`` or ``auto`` (percent when the median ``mark_iv`` exceeds 3).
    premium_units
        ``coin`` (premium = coin amount, as Deribit), ``quote`` (already in quote currency) or ``auto`` (the
        default): each row's mark is priced with Black-76 in quote currency (forward ``underlying_price``,
        ``strike_price``, time to expiry in 365-day years, ``mark_iv``, no discounting), and the units whose marks
        are closer to it (median absolute log ratio over rows with a model price of at least 1e-4 of the
        underlying) are chosen; they must match within a factor of 2 and beat the other units by a further factor
        of 2.
    repair
        Drop rows that break a value rule or have expired, sort by timestamp (stable); every change is
        reported in :attr:`LoadResult.repairs`.

    Returns
    -------
    LoadResult
        ``data``: indexed by the UTC snapshot ``timestamp``; ``type`` categorical call/put, ``expiration``
        UTC, IVs decimal, premiums in quote currency, other numbers float64 (Greeks as in the file).

    Raises
    ------
    DataValidationError
        The first row breaking a rule: type call/put (or c/p), strike finite > 0, mark IV in (0, 5] and
        bid/ask IV in (0, 5] or empty (after conversion), mark price ≥ 0, underlying price > 0, expiration
        after the snapshot, timestamps non-decreasing; with ``premium_units="auto"``, marks that fit neither
        units, or fit both alike.
    UsageError
        ``premium_units`` not one of coin, quote, auto.
    """
    if premium_units not in PREMIUM_UNITS:
        raise UsageError(f"premium_units must be one of {', '.join(PREMIUM_UNITS)}; got {premium_units!r}")
    loading = start_loading(path, OPTIONS_CHAIN)
    _no_quote_zeros(loading)
    label = loading.label("mark_iv")
    scale = iv_scale(loading.data["mark_iv"].to_numpy(), iv_units, loading.source, label, loading.notes)
    bounds = {name: iv_bounds(scale) for name in IV_COLUMNS}
    rules = column_rules(loading, OPTIONS_CHAIN, bounds=bounds)
    loading.check([*rules, EXPIRY_RULE, *timestamp_order_rules(unique=False)], repair=repair)
    data = loading.data.assign(**{name: loading.data[name] / scale for name in IV_COLUMNS if name in loading.data})
    data = _in_quote_currency(data, premium_units, loading)
    return loading.result(indexed_by_time(_with_absent_columns(data, loading))[list(CHAIN_COLUMNS)])


def _in_quote_currency(data: pd.DataFrame, premium_units: str, loading: Loading) -> pd.DataFrame:
    """The premium columns in quote currency (coin amounts times ``underlying_price``); notes what was done."""
    present = [name for name in PREMIUM_COLUMNS if name in data.columns]
    listed = ", ".join(loading.label(name) for name in present)
    how = f"premium_units={premium_units}"
    if premium_units == "auto":
        premium_units, how = _detect_premium_units(data, loading)
    if premium_units == "quote":
        loading.note(log, f"premiums ({listed}) in quote currency, kept as they are ({how})")
        return data
    loading.note(log, f"premiums ({listed}) in coin, multiplied by underlying_price into quote currency ({how})")
    underlying = data["underlying_price"]
    return data.assign(**{name: data[name] * underlying for name in present})


def _detect_premium_units(data: pd.DataFrame, loading: Loading) -> tuple[str, str]:
    """``coin`` or ``quote``, whichever prices the marks at ``mark_iv``; and how it was decided, for the note."""
    label = loading.label("mark_price")
    fix = "pass the units: premium_units='coin' or 'quote' (forecaster validate: --premium-units coin|quote)"
    miss, count = _mark_misses(data)
    if count == 0:
        raise loading.source.error(
            f"premium_units=auto needs a row with a positive '{label}' and a Black-76 price of at least "
            f"{AUTO_MIN_MODEL:g} x underlying_price at mark_iv, to tell coin from quote-currency premiums",
            column=label,
            fix=fix,
        )
    best, other = sorted(miss, key=miss.get)
    measured = (
        f"median |ln(mark / Black-76 at mark_iv)| over {count} rows: {miss['coin']:.3g} as coin, "
        f"{miss['quote']:.3g} as quote currency"
    )
    if miss[best] > AUTO_FIT:
        rule = f"'{label}' must match Black-76 at mark_iv within a factor of 2, in coin or in quote currency"
    elif miss[other] - miss[best] < AUTO_MARGIN:
        rule = "coin and quote-currency premiums must be told apart (underlying prices near 1 make them alike)"
    else:
        return best, f"auto: {measured}"
    raise loading.source.error(
        f"{rule}; {measured}",
        column=label,
        fix=f"check that mark_iv and underlying_price (the forward) belong to the marks, or {fix}",
    )


def _mark_misses(data: pd.DataFrame) -> tuple[dict[str, float], int]:
    """Median |ln(mark / Black-76 price at mark_iv)| with the marks read as coin and as quote currency, and the
    number of rows compared. A long file is judged on ``AUTO_SAMPLE`` evenly spaced rows: a median needs no more.
    """
    rows = np.unique(np.linspace(0, len(data) - 1, min(len(data), AUTO_SAMPLE)).astype(np.int64))
    sample = data.iloc[rows]
    underlying = sample["underlying_price"].to_numpy()  # (m,)
    tau = ((sample["expiration"] - sample["timestamp"]) / YEAR).to_numpy(dtype=float)  # whatever the datetime unit
    is_call = (sample["type"] == "call").to_numpy()
    model = black76_price(underlying, sample["strike_price"].to_numpy(), tau, sample["mark_iv"].to_numpy(), is_call)
    mark = sample["mark_price"].to_numpy()
    usable = (mark > 0) & (model >= AUTO_MIN_MODEL * underlying)  # (m,)
    if not usable.any():
        return {}, 0
    log_quote = np.log(mark[usable] / model[usable])
    misses = {"coin": np.abs(log_quote + np.log(underlying[usable])), "quote": np.abs(log_quote)}
    return {units: float(np.median(miss)) for units, miss in misses.items()}, int(usable.sum())


def _no_quote_zeros(loading: Loading) -> None:
    present = [name for name in NO_QUOTE_IF_ZERO if name in loading.data.columns]
    zeros = {name: loading.data[name].to_numpy() == 0 for name in present}
    counts = {name: int(mask.sum()) for name, mask in zeros.items() if mask.any()}
    if counts:
        loading.data = loading.data.assign(**{n: loading.data[n].mask(zeros[n]) for n in counts})
        listed = ", ".join(f"{loading.label(n)} {c}" for n, c in counts.items())
        loading.note(log, f"zero bid/ask quotes read as 'no quote' (empty): {listed}")


def _with_absent_columns(data: pd.DataFrame, loading: Loading) -> pd.DataFrame:
    absent = [name for name in CHAIN_COLUMNS if name not in data.columns]
    if not absent:
        return data
    loading.note(log, f"optional columns absent from the file, left empty: {', '.join(absent)}")
    return data.assign(**{name: np.nan for name in absent})
