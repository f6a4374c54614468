"""Data contracts declared as data, and the one checker that enforces them (DESIGN section 3).

A :class:`Schema` lists the columns of a file kind (name, aliases, type, allowed range); :func:`column_rules`
turns it into :class:`Rule` objects, loaders add the rules that span columns (OHLC order, expiry after
snapshot, timestamp order), and :meth:`Loading.check` runs them all the same way: it finds the first violating
row with numpy and raises, or, with ``repair=True``, applies the rule's repair and records a
:class:`RepairAction`. Rules without a repair raise in both modes.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
import pandas as pd

from forecaster.errors import DataValidationError
from forecaster.market.io import Source, Table, normalize_name, note, read_table
from forecaster.market.timestamps import parse_timestamps

log = logging.getLogger(__name__)

T = TypeVar("T")
BoolArray = np.ndarray  # shape (n_rows,), dtype bool
ColumnKind = Literal["timestamp", "number", "category", "text"]

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class RepairAction:
    """One change made by ``repair=True``: which rule, what was done, to how many rows, and the first few.

    ``rows_sample`` holds up to five 1-based data rows of the file (header excluded).
    """

    rule: str
    action: str
    count: int
    rows_sample: tuple[int, ...]

    def __str__(self) -> str:
        rows = ", ".join(map(str, self.rows_sample)) + (", ..." if self.count > len(self.rows_sample) else "")
        return f"{self.action}: {self.count} row(s) broke '{self.rule}' (rows {rows})"


@dataclass(frozen=True)
class LoadResult(Generic[T]):
    """What every loader returns.

    Attributes
    ----------
    data
        The validated data: a DataFrame indexed by a UTC ``timestamp`` (bars, trades, option chain), a Series
        (IV index) or a :class:`~forecaster.market.portfolio_file.Portfolio`.
    path
        The file that was read.
    repairs
        Every change ``repair=True`` made, with counts; empty when nothing needed repair.
    notes
        What the loader decided by itself (epoch unit, percent or decimal IV, assumed time zone, scaling);
        each note was also logged at INFO level.
    """

    data: T
    path: Path
    repairs: tuple[RepairAction, ...] = ()
    notes: tuple[str, ...] = ()


class Repair(enum.Enum):
    """What ``repair=True`` does to the rows that break a rule."""

    DROP = "dropped rows"
    SORT = "sorted rows by timestamp (stable)"
    DEDUP_KEEP_LAST = "dropped rows with a repeated timestamp, kept the last of each"


@dataclass(frozen=True)
class Bounds:
    """An interval of allowed numbers; open or closed at each end."""

    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = True
    high_closed: bool = True
    label: str | None = None  # shown instead of the interval, e.g. to name units

    def contains(self, values: np.ndarray) -> BoolArray:
        """Finite values inside the interval (NaN and inf are outside). Shape: as ``values``."""
        inside = np.isfinite(values)
        inside &= values >= self.low if self.low_closed else values > self.low
        inside &= values <= self.high if self.high_closed else values < self.high
        return inside

    def __str__(self) -> str:
        if self.label is not None:
            return self.label
        left = "[" if self.low_closed and math.isfinite(self.low) else "("
        right = "]" if self.high_closed and math.isfinite(self.high) else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Bounds(low=0.0, low_closed=False)
NON_NEGATIVE = Bounds(low=0.0)
FINITE = Bounds()


@dataclass(frozen=True)
class Column:
    """One column of a data contract.

    Attributes
    ----------
    name
        Canonical (lower-case) name used in the loaded data.
    kind
        ``timestamp`` (parsed to UTC), ``number`` (float64), ``category`` (pandas categorical) or ``text``.
    required
        Whether the file must have the column; an absent optional column is left out of the data.
    aliases
        Other accepted names (compared after :func:`~forecaster.market.io.normalize_name`).
    bounds
        For numbers: the allowed interval of every non-empty cell.
    empty_ok
        Whether a cell may be empty (NaN); e.g. a missing bid quote.
    choices
        For categories: accepted spelling (lower case) -> canonical value; ``None`` accepts any value.
    """

    name: str
    kind: ColumnKind
    required: bool = True
    aliases: tuple[str, ...] = ()
    bounds: Bounds | None = None
    empty_ok: bool = False
    choices: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Schema:
    """The columns of one file kind, e.g. ``bars``; the first timestamp column indexes the loaded data."""

    kind: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Rule:
    """A data rule: the text users see, the column it is reported under, how to find bad rows, the fix.

    ``bad(data, raw)`` returns a boolean mask over the rows of ``data`` (typed, indexed by data row);
    ``raw`` is the file as read, for rules about the text itself.
    """

    text: str
    column: str
    bad: Callable[[pd.DataFrame, pd.DataFrame], BoolArray]
    fix: str
    repair: Repair | None = Repair.DROP


TIMESTAMP = Column("timestamp", "timestamp", aliases=("date", "datetime", "time"))


@dataclass
class Loading:
    """A file on its way through a loader.

    Attributes
    ----------
    source
        The file.
    raw
        Its cells as read, under canonical column names; error messages show these values.
    data
        The typed columns (timestamps UTC, numbers float64, categories); rules run on it, repairs change it.
    labels
        Canonical column name -> the name as written in the file, for messages.
    notes, repairs
        What the loader decided by itself, and what ``repair=True`` changed.

    ``raw`` and ``data`` are indexed by the 1-based data row, so every message names the row of the file even
    after a repair dropped or sorted rows.
    """

    source: Source
    raw: pd.DataFrame
    data: pd.DataFrame
    labels: Mapping[str, str]
    notes: list[str] = field(default_factory=list)
    repairs: list[RepairAction] = field(default_factory=list)

    def label(self, column: str) -> str:
        return self.labels.get(column, column)

    def note(self, logger: logging.Logger, message: str) -> None:
        note(self.notes, logger, self.source, message)

    def check(self, rules: Sequence[Rule], *, repair: bool) -> None:
        """Run ``rules`` in order; repair and record each violation, or collect it.

        Every rule runs, so the error raised at the end names the first violating row of each broken rule
        (the first rule's in the main message, the others as ``also:`` lines). Rules whose column is absent
        (optional columns) are skipped; a rule without a repair is never repaired.
        """
        violations: list[DataValidationError] = []
        reported: dict[str, BoolArray] = {}  # column -> rows already named by an earlier rule
        for rule in rules:
            if rule.column not in self.data.columns:
                continue
            bad = np.asarray(rule.bad(self.data, self.raw), dtype=bool)  # (n_rows,)
            if not bad.any():
                continue
            if not repair or rule.repair is None:
                # a cell already named under its column (say, not a number) is not named again (out of bounds);
                # a repair by an earlier rule changes the row count, and then nothing is carried over
                seen = reported.get(rule.column)
                if seen is None or len(seen) != len(bad):
                    seen = np.zeros_like(bad)
                if (bad & ~seen).any():
                    violations.append(self._violation(rule, bad & ~seen))
                    reported[rule.column] = seen | bad
                continue
            self.data, action = _apply(rule, self.data, bad)
            log.info("%s: repair: %s", self.source.name, action)
            self.repairs.append(action)
        if violations:
            raise violations[0].with_others(violations[1:])
        if self.data.empty:
            raise self.source.error(
                "at least one row must remain after repair",
                fix="every row broke a rule; check that this is the right kind of file",
            )

    def result(self, data: T) -> LoadResult[T]:
        return LoadResult(data, self.source.path, tuple(self.repairs), tuple(self.notes))

    def _violation(self, rule: Rule, bad: BoolArray) -> DataValidationError:
        shown = self.raw if rule.column in self.raw.columns else self.data
        values = _aligned(shown, self.data, rule.column)
        return self.source.first_error(rule.text, bad, values, column=self.label(rule.column), fix=rule.fix)


def start_loading(path: str | Path | Table, schema: Schema) -> Loading:
    """Read a file (or take a table already read), select and type the schema's columns."""
    table = path if isinstance(path, Table) else read_table(path)
    raw, labels = select_columns(table, schema)
    loading = Loading(table.source, raw, raw, labels)
    loading.data = coerce(loading, schema)
    return loading


def select_columns(table: Table, schema: Schema) -> tuple[pd.DataFrame, dict[str, str]]:
    """The schema's columns of ``table`` renamed to canonical names, and canonical -> written names.

    A missing required column, or two columns that mean the same field, raise.
    """
    found = list(table.frame.columns)
    renames: dict[str, str] = {}
    for column in schema.columns:
        names = [n for n in (column.name, *column.aliases) if n in found]
        if len(names) > 1:
            written = [table.labels[n] for n in names]
            raise table.source.error(
                f"one column per field: {' and '.join(map(repr, written))} both mean '{column.name}'",
                column=written[1],
                fix=f"keep one of {written} and remove or rename the other",
            )
        if names:
            renames[names[0]] = column.name
        elif column.required:
            aliases = f" (or {', '.join(map(repr, column.aliases))})" if column.aliases else ""
            raise table.source.error(
                f"required column '{column.name}'{aliases} is missing from the {schema.kind} file",
                column=column.name,
                fix=f"add the column; the file has {[table.labels[n] for n in found]}",
            )
    labels = {canonical: table.labels[name] for name, canonical in renames.items()}
    if list(renames) == found and all(name == canonical for name, canonical in renames.items()):
        return table.frame, labels  # already the schema's columns under their names (no copy: raw is only read)
    return table.frame[list(renames)].rename(columns=renames), labels


def coerce(loading: Loading, schema: Schema) -> pd.DataFrame:
    """Typed copy of ``loading.raw``: timestamps to UTC, numbers to float64 (text that is not a number
    becomes NaN, caught by the rules of :func:`column_rules`), categories normalized."""
    typed: dict[str, pd.Series] = {}
    for column in schema.columns:
        if column.name not in loading.raw.columns:
            continue
        values = loading.raw[column.name]
        if column.kind == "timestamp":
            typed[column.name], notes = parse_timestamps(values, loading.source, loading.label(column.name))
            loading.notes.extend(notes)
        elif column.kind == "number":
            typed[column.name] = to_float(values)
        elif column.kind == "category":
            typed[column.name] = to_category(values, column.choices)
        else:
            typed[column.name] = values
    return pd.DataFrame(typed, index=loading.raw.index)


def to_float(values: pd.Series) -> pd.Series:
    """float64 column; text that is not a number becomes NaN."""
    if _is_number_dtype(values.dtype):
        return values.astype(np.float64)
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def _is_number_dtype(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def to_category(values: pd.Series, choices: Mapping[str, str] | None) -> pd.Series:
    """Categorical column; with ``choices``, spellings are mapped (case-insensitive) and unknown ones are NaN.

    Works on the distinct values only (``pd.factorize``), so millions of rows cost one pass.
    """
    if choices is None:
        return values.astype("category")
    categories = list(dict.fromkeys(choices.values()))
    position = {c: i for i, c in enumerate(categories)}
    codes, uniques = pd.factorize(values)  # codes: (n,), -1 for empty cells
    # One more entry, -1, so that empty cells (code -1) stay empty.
    lookup = np.array([position.get(choices.get(normalize_name(u)), -1) for u in uniques] + [-1])
    return pd.Series(pd.Categorical.from_codes(lookup[codes], categories=categories), index=values.index)


def column_rules(loading: Loading, schema: Schema, *, bounds: Mapping[str, Bounds] | None = None) -> list[Rule]:
    """The per-column rules of ``schema`` for the columns ``loading`` has: parseable numbers first, then
    allowed values. ``bounds`` overrides a column's interval (e.g. IV bounds in the file's units). Rule texts
    use the column names as written in the file."""
    bounds = dict(bounds or {})
    present = [c for c in schema.columns if c.name in loading.data.columns and c.kind != "timestamp"]
    parse = [_number_rule(c, loading.label(c.name)) for c in present if c.kind == "number"]
    values = [_value_rule(c, bounds.get(c.name, c.bounds), loading.label(c.name)) for c in present]
    return [*parse, *(r for r in values if r is not None)]


def _number_rule(column: Column, label: str) -> Rule:
    def bad(data: pd.DataFrame, raw: pd.DataFrame) -> BoolArray:
        cells = _aligned(raw, data, column.name)
        if _is_number_dtype(cells.dtype):
            return np.zeros(len(cells), dtype=bool)
        # Parsed again from the text: loaders may empty cells on purpose (a zero quote means no quote).
        return to_float(cells).isna().to_numpy() & cells.notna().to_numpy()

    return Rule(
        f"'{label}' must be a number",
        column.name,
        bad,
        fix="correct or remove the text in that cell (decimal point '.', no thousands separator)",
    )


def _value_rule(column: Column, bounds: Bounds | None, label: str) -> Rule | None:
    name, empty = column.name, " or empty" if column.empty_ok else ""
    if column.kind == "number" and bounds is not None:
        where = "" if bounds == FINITE else f" in {bounds}"
        text = f"'{label}' must be a finite number{where}{empty}"
        fix = f"correct the value, or run with --repair to drop the rows whose '{label}' breaks this rule"

        def bad(data: pd.DataFrame, raw: pd.DataFrame) -> BoolArray:
            values = data[name].to_numpy()
            outside = ~bounds.contains(values)
            return outside & ~np.isnan(values) if column.empty_ok else outside

    elif column.kind == "category" and column.choices is not None:
        allowed = ", ".join(dict.fromkeys(column.choices.values()))
        text = f"'{label}' must be one of {allowed}{empty} (case-insensitive)"
        fix = f"use one of {allowed}, or run with --repair to drop those rows"

        def bad(data: pd.DataFrame, raw: pd.DataFrame) -> BoolArray:
            unknown = data[name].isna().to_numpy()
            return unknown & _aligned(raw, data, name).notna().to_numpy() if column.empty_ok else unknown

    elif not column.empty_ok:
        text = f"'{label}' must not be empty"
        fix = "fill in the cell, or run with --repair to drop those rows"

        def bad(data: pd.DataFrame, raw: pd.DataFrame) -> BoolArray:
            return data[name].isna().to_numpy()

    else:
        return None
    return Rule(text, name, bad, fix)


def timestamp_order_rules(*, unique: bool, column: str = "timestamp") -> list[Rule]:
    """Rows in time order; ``unique``: no timestamp twice (bars, IV), else ties are allowed (trades)."""
    sorted_rule = Rule(
        f"timestamps must be in {'increasing' if unique else 'non-decreasing'} order",
        column,
        lambda data, raw: _steps(data[column]) < 0,
        fix="sort the file by timestamp, or run with --repair to sort it" + (" and drop duplicates" if unique else ""),
        repair=Repair.SORT,
    )
    if not unique:
        return [sorted_rule]
    unique_rule = Rule(
        "timestamps must be unique",
        column,
        lambda data, raw: _steps(data[column]) == 0,
        fix="remove the repeated rows, or run with --repair to keep the last row of each timestamp",
        repair=Repair.DEDUP_KEEP_LAST,
    )
    return [sorted_rule, unique_rule]


def _apply(rule: Rule, data: pd.DataFrame, bad: BoolArray) -> tuple[pd.DataFrame, RepairAction]:
    count = int(np.count_nonzero(bad))
    if rule.repair is Repair.SORT:
        rows = data.index[bad]
        data = data.iloc[np.argsort(_i8(data[rule.column]), kind="stable")]
    elif rule.repair is Repair.DEDUP_KEEP_LAST:
        drop = np.append(_steps(data[rule.column]) == 0, False)[1:]  # row equal to the next one
        rows = data.index[drop]
        data = data.loc[~drop]
    else:
        rows = data.index[bad]
        data = data.loc[~bad]
    sample = tuple(int(r) for r in rows[:SAMPLE_ROWS])
    return data, RepairAction(rule=rule.text, action=rule.repair.value, count=count, rows_sample=sample)


def indexed_by_time(data: pd.DataFrame, column: str = "timestamp") -> pd.DataFrame:
    """The loaded data indexed by its UTC timestamp column (the data-row index is dropped)."""
    return data.set_index(column)


def _steps(timestamps: pd.Series) -> np.ndarray:
    """Difference of each timestamp to the previous one (first row: +1, never a violation). Shape (n,)."""
    i8 = _i8(timestamps)
    return np.concatenate(([1], np.diff(i8)))


def _i8(timestamps: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(timestamps).asi8


def _aligned(frame: pd.DataFrame, data: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` on the rows of ``data`` (they differ once a repair dropped or sorted rows)."""
    values = frame[column]
    return values if values.index.equals(data.index) else values.reindex(data.index)
