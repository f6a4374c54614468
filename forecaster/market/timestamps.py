"""The one timestamp parser: ISO strings, dates or epoch numbers to UTC, with the choices it made logged.

Rules (DESIGN section 2):
- ISO 8601 strings with ``Z`` or an offset are converted to UTC; naive strings and plain dates are UTC.
- One time zone per file: every ISO string in a column carries the same UTC offset (or none).
- Epoch numbers: the unit (s, ms, µs, ns) is chosen from the magnitude of the median, and every value must
  have the magnitude of that unit, so a column that mixes ms and µs is an error rather than a silent shift.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pandas as pd

from forecaster.market.io import Source, note

log = logging.getLogger(__name__)

TIMESTAMP_UNIT = "us"  # pandas 3 default resolution; Tardis epochs are µs

EPOCH_UNITS = ("s", "ms", "us", "ns")
_EPOCH_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
# |value| below _EPOCH_UPPER[i] has the magnitude of EPOCH_UNITS[i]: each unit spans years 1973 to 5138.
_EPOCH_UPPER = np.array([1e11, 1e14, 1e17])
# A UTC offset is only read after a time of day, so the day of "1999-01-04" is never taken for "-04".
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)$")
_NAIVE = "no offset"
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/\d{4}(?:\s+(\d{1,2}:\d{2})(:\d{2})?)?$")
_SAMPLE = 100

_FIX_TZ = "write every timestamp in UTC (e.g. 2025-01-01T00:00:00Z), or all with the same offset"
_FIX_FORMAT = "use ISO 8601 (2025-01-01T00:00:00Z), a date (2025-01-01) or epoch seconds/ms/µs/ns"


def parse_timestamps(values: pd.Series, source: Source, column: str) -> tuple[pd.Series, list[str]]:
    """Parse one column of timestamps to UTC.

    Parameters
    ----------
    values
        The raw column as read (strings, numbers or datetimes), indexed by 1-based data row.
    source
        The file, for error messages and notes.
    column
        The column's name in messages.

    Returns
    -------
    (timestamps, notes)
        ``datetime64[us, UTC]`` Series with the index of ``values``, and what was decided (also logged).

    Raises
    ------
    DataValidationError
        An empty cell, an unparseable value, mixed UTC offsets, or epoch numbers of mixed units.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise source.first_error(
            "every row must have a timestamp (cell is empty)",
            missing,
            values,
            column=column,
            fix="fill in or remove the rows without a timestamp",
        )
    notes: list[str] = []
    try:
        return _parse(values, source, column, notes).dt.as_unit(TIMESTAMP_UNIT), notes
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:
        raise source.error(
            f"timestamps must lie in the range pandas supports ({exc})", column=column, fix=_FIX_FORMAT
        ) from exc


def _parse(values: pd.Series, source: Source, column: str, notes: list[str]) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        note(notes, log, source, f"column '{column}': date-times without time zone, assumed UTC")
        return values.dt.tz_localize("UTC")
    if pd.api.types.is_bool_dtype(values.dtype):
        raise source.error("timestamps must be date-times or epoch numbers", column=column, fix=_FIX_FORMAT)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _from_epoch(values, source, column, notes)
    if _looks_numeric(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            raise source.first_error("timestamps must be parseable", bad, values, column=column, fix=_FIX_FORMAT)
        return _from_epoch(numbers, source, column, notes)
    strings = values.astype(str).str.strip()
    if _SLASH_DATE.match(strings.iloc[0]) and strings.str.match(_SLASH_DATE).all():
        return _from_slash_dates(strings, values, source, column, notes)
    return _from_iso(strings, values, source, column, notes)


def epoch_unit_index(numbers: np.ndarray) -> np.ndarray:
    """Index into :data:`EPOCH_UNITS` of the unit each epoch number's magnitude suggests. Shape: as input."""
    return np.searchsorted(_EPOCH_UPPER, np.abs(numbers), side="right")


def _from_epoch(numbers: pd.Series, source: Source, column: str, notes: list[str]) -> pd.Series:
    values = numbers.to_numpy(dtype=np.float64)  # (n,)
    finite = np.isfinite(values)
    if not finite.all():
        raise source.first_error(
            "timestamps must be finite epoch numbers", ~finite, numbers, column=column, fix=_FIX_FORMAT
        )
    median = float(np.median(np.abs(values)))
    chosen = int(epoch_unit_index(np.array([median]))[0])
    unit = EPOCH_UNITS[chosen]
    mixed = epoch_unit_index(values) != chosen
    if mixed.any():
        raise source.first_error(
            f"all epoch timestamps of a column must use one unit; most look like {_EPOCH_WORDS[unit]} "
            f"(median {median:.6g}) but this one does not",
            mixed,
            numbers,
            column=column,
            fix="convert the column to a single unit (Tardis files use microseconds)",
        )
    note(
        notes,
        log,
        source,
        f"column '{column}': epoch numbers read as {_EPOCH_WORDS[unit]} (median {median:.6g})",
    )
    exact = numbers if pd.api.types.is_integer_dtype(numbers.dtype) else values
    return pd.Series(pd.to_datetime(exact, unit=unit, utc=True), index=numbers.index)


def _from_iso(strings: pd.Series, raw: pd.Series, source: Source, column: str, notes: list[str]) -> pd.Series:
    one_zone = _iso_one_zone(strings)
    if one_zone is not None:
        parsed, key = one_zone
    else:
        parsed, key = _iso_checked(strings, raw, source, column)
    if key == _NAIVE:
        note(notes, log, source, f"column '{column}': timestamps carry no time zone, assumed UTC")
    else:
        note(notes, log, source, f"column '{column}': timestamps at UTC offset {key}, converted to UTC")
    return parsed


def _iso_one_zone(strings: pd.Series) -> tuple[pd.Series, str] | None:
    """The fast path (a tenth of the time of :func:`_iso_checked` on 1,440 rows): pandas parses the column and
    itself refuses mixed offsets, and naive strings mixed with zoned ones. (UTC, offset key) when every string
    parses with one offset (or none); None otherwise, for :func:`_iso_checked` to find and name the bad row.
    """
    try:
        parsed = pd.to_datetime(strings, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        offset = parsed.iloc[0].utcoffset()
        minutes = round(offset.total_seconds() / 60.0)
        sign = "-" if minutes < 0 else "+"
        return parsed.dt.tz_convert("UTC"), f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if pd.api.types.is_datetime64_dtype(parsed.dtype):
        return parsed.dt.tz_localize("UTC"), _NAIVE
    return None


def _iso_checked(strings: pd.Series, raw: pd.Series, source: Source, column: str) -> tuple[pd.Series, str]:
    """Each string's offset read on its own: the first row whose offset differs from row 1's, or that does not
    parse, is named in the error. (UTC, offset key) when none does."""
    offsets = strings.str.extract(_OFFSET, expand=False)
    codes, uniques = pd.factorize(offsets)  # code -1: no offset
    keys = np.array([*(_offset_key(u) for u in uniques), _NAIVE])[codes]  # (n,)
    differs = keys != keys[0]
    if differs.any():
        other = keys[int(np.argmax(differs))]
        raise source.first_error(
            f"one time zone per file: row 1 has UTC offset {keys[0]} but this row has {other}",
            differs,
            raw,
            column=column,
            fix=_FIX_TZ,
        )
    parsed = pd.to_datetime(strings, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise source.first_error("timestamps must be parseable", bad, raw, column=column, fix=_FIX_FORMAT)
    return parsed, str(keys[0])


def _from_slash_dates(strings: pd.Series, raw: pd.Series, source: Source, column: str, notes: list[str]) -> pd.Series:
    """``MM/DD/YYYY`` (CBOE's VIX history) or ``DD/MM/YYYY``, told apart by a field above 12; naive, UTC.

    A file whose every date reads both ways (no day above 12) is ambiguous and refused rather than guessed.
    """
    parts = strings.str.extract(_SLASH_DATE)
    first, second = parts[0].astype(int), parts[1].astype(int)
    if first.max() > 12 and second.max() > 12:
        bad = ((first > 12) & (second > 12)).to_numpy() | (second > 12).to_numpy()
        raise source.first_error(
            "slash dates must be either MM/DD/YYYY or DD/MM/YYYY throughout", bad, raw, column=column, fix=_FIX_FORMAT
        )
    if first.max() <= 12 and second.max() <= 12:
        raise source.error(
            "slash dates are ambiguous: no day above 12 tells MM/DD/YYYY from DD/MM/YYYY",
            column=column,
            fix="write the dates as ISO 8601 (2025-01-31)",
        )
    order = "%d/%m/%Y" if first.max() > 12 else "%m/%d/%Y"
    has_time, has_seconds = parts[2].notna(), parts[3].notna()  # groups: month/day, day/month, HH:MM, :SS
    fmt = order + (" %H:%M:%S" if has_seconds.any() else " %H:%M" if has_time.any() else "")
    parsed = pd.to_datetime(strings, format=fmt, errors="coerce").dt.tz_localize("UTC")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise source.first_error("timestamps must be parseable", bad, raw, column=column, fix=_FIX_FORMAT)
    word = "DD/MM/YYYY" if order.startswith("%d") else "MM/DD/YYYY"
    note(notes, log, source, f"column '{column}': slash dates read as {word}, no time zone, assumed UTC")
    return parsed


def _offset_key(text: str) -> str:
    """``Z``, ``+02``, ``+0200`` and ``+02:00`` to one spelling, ``+HH:MM``."""
    if text in {"Z", "z"}:
        return "+00:00"
    digits = text[1:].replace(":", "")
    sign = "+" if digits.strip("0") == "" else text[0]
    return f"{sign}{digits[:2]}:{digits[2:4] or '00'}"


def _looks_numeric(values: pd.Series) -> bool:
    """Whether most of the first non-empty cells of a text column are numbers (epochs read as text)."""
    sample = values.iloc[:_SAMPLE].tolist()
    return sum(map(_is_number_text, sample)) > 0.5 * len(sample)


def _is_number_text(cell: object) -> bool:
    """Whether ``cell`` reads as a number, as ``pd.to_numeric`` would (a tenth of its time on a short sample)."""
    if isinstance(cell, str) and ("_" in cell or not cell.isascii()):  # float() reads 1_000 and ١٢; pandas not
        return False
    try:
        return not math.isnan(float(cell))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
