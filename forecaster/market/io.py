"""Reading market-data tables (CSV, CSV.gz, Parquet) and naming where a problem is.

Every loader reads through :func:`read_table` and raises through :meth:`Source.error`, so all data errors
share one shape: file, row (1-based data row, header excluded), CSV line, column, value, rule, fix.
Input files are only ever opened for reading.
"""

from __future__ import annotations

import gzip
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from forecaster.errors import DataValidationError

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "parquet", "yaml", "json"]

_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_WRONG_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_PARSER_LINE = re.compile(r"line (\d+)")


@dataclass(frozen=True)
class Source:
    """Where data came from: the path as the user gave it and its format (CSV rows have line numbers)."""

    path: Path
    format: FileFormat

    @property
    def name(self) -> str:
        return str(self.path)

    def line_of(self, row: int | None) -> int | None:
        """CSV line of a 1-based data row: the header is line 1 (one record per line, blank lines aside)."""
        return row + 1 if row is not None and self.format == "csv" else None

    def error(
        self,
        rule: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        fix: str | None = None,
        count: int | None = None,
        line: int | None = None,
    ) -> DataValidationError:
        """The one place a :class:`DataValidationError` is built (raise what it returns).

        ``line`` defaults to the CSV line of ``row``; YAML/JSON files pass the line their parser reports.
        """
        row = None if row is None else int(row)
        return DataValidationError(
            self.name,
            rule,
            row=row,
            column=column,
            value=_plain(value),
            fix=fix,
            line=line if line is not None else self.line_of(row),
            count=count,
        )

    def first_error(
        self, rule: str, bad: np.ndarray, values: pd.Series, *, column: str, fix: str | None = None
    ) -> DataValidationError:
        """The error for the first row where ``bad`` is true, showing that row's cell of ``values``.

        ``bad`` is a boolean mask aligned with ``values`` (indexed by 1-based data row); the count of true
        entries is reported, so the user learns how many rows break the same rule.
        """
        position = int(np.argmax(bad))
        return self.error(
            rule,
            row=int(values.index[position]),
            column=column,
            value=values.iloc[position],
            fix=fix,
            count=int(np.count_nonzero(bad)),
        )


@dataclass(frozen=True)
class Table:
    """A file as read: raw cells under normalized column names, index = 1-based data row.

    ``labels`` maps each normalized name to the name as written in the file, for messages.
    """

    frame: pd.DataFrame
    source: Source
    labels: dict[str, str]


def note(notes: list[str], logger: logging.Logger, source: Source, message: str) -> None:
    """Log a decision the loader took by itself and keep it for the :class:`LoadResult`."""
    logger.info("%s: %s", source.name, message)
    notes.append(message)


def normalize_name(name: object) -> str:
    """Column-name key: surrounding whitespace and BOM stripped, lower case, inner whitespace collapsed."""
    return " ".join(str(name).replace("\ufeff", "").strip().lower().split())


def existing_file(path: str | Path, fmt: FileFormat) -> Source:
    """The :class:`Source` of ``path``; a missing path or a folder is a :class:`DataValidationError`."""
    source = Source(Path(path), fmt)
    if not source.path.is_file():
        what = "is a folder" if source.path.is_dir() else "does not exist"
        raise source.error(f"the file must exist ({what})", fix="check the path and the working directory")
    return source


def read_table(path: str | Path) -> Table:
    """Read a CSV, gzip-compressed CSV or Parquet file (recognized by content, not by name).

    Column names are normalized (see :func:`normalize_name`); the index is the 1-based data row so every later
    error can name the row of the file. A Parquet index (e.g. a ``timestamp`` index) becomes a column.

    Raises
    ------
    DataValidationError
        Missing file, empty file, header without rows, a delimiter other than a comma, ragged lines, duplicate
        column names, unreadable Parquet.
    """
    source = existing_file(path, "csv")
    with open(source.path, "rb") as handle:
        magic = handle.read(4)
    if magic == _PARQUET_MAGIC:
        source = Source(source.path, "parquet")
        frame = _read_parquet(source)
    else:
        frame = _read_csv(source, gzipped=magic[:2] == _GZIP_MAGIC)
    written = [str(c).replace("\ufeff", "").strip() for c in frame.columns]
    frame.columns = [normalize_name(c) for c in written]
    _check_columns(frame, source)
    if frame.empty:
        raise source.error(
            "the file must hold at least one data row (it has a header only)",
            fix="export the data again; the header is there but no rows follow it",
        )
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return Table(frame, source, dict(zip(frame.columns, written, strict=True)))


def _read_csv(source: Source, *, gzipped: bool) -> pd.DataFrame:
    header = _first_line(source, gzipped=gzipped)
    if not header.strip():
        raise source.error("the file must not be empty", fix="export the data again with a header line and rows")
    if "," not in header:
        for delimiter, word in _WRONG_DELIMITERS.items():
            if delimiter in header:
                raise source.error(
                    f"columns must be comma-separated; the delimiter looks wrong (the header has no comma "
                    f"but {word}s: {header.strip()[:80]!r})",
                    fix="save the file as comma-separated CSV (e.g. pandas to_csv(sep=','))",
                )
    try:
        return pd.read_csv(
            source.path,
            sep=",",
            compression="gzip" if gzipped else None,
            skipinitialspace=True,
            low_memory=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise source.error("the file must not be empty", fix="export the data again") from exc
    except pd.errors.ParserError as exc:
        match = _PARSER_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        raise source.error(
            f"every line must have as many fields as the header ({exc})",
            row=None if line is None else line - 1,
            fix="look for an unquoted comma or a missing field on that line",
        ) from exc
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise source.error(f"the file must be UTF-8 text or gzip-compressed CSV ({exc})") from exc


def _first_line(source: Source, *, gzipped: bool) -> str:
    opener = gzip.open if gzipped else open
    try:
        with opener(source.path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
            return handle.readline()
    except (OSError, EOFError) as exc:
        raise source.error(f"the file must be readable CSV or gzip-compressed CSV ({exc})") from exc


def _read_parquet(source: Source) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pool = pa.default_memory_pool()
    try:
        table = pq.read_table(source.path)
        # hand the decompression buffers back before converting, and free each Arrow column as it is converted:
        # a year of trades (29M rows) then peaks near one copy of the data, not three
        pool.release_unused()
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
        del table
        pool.release_unused()
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise source.error(f"the file must be a readable Parquet file ({exc})") from exc
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    return frame


def _check_columns(frame: pd.DataFrame, source: Source) -> None:
    names = pd.Index(frame.columns)
    if names.has_duplicates:
        name = names[names.duplicated()][0]
        raise source.error(
            "column names must be unique (case and surrounding spaces are ignored)",
            column=name,
            fix="rename or remove the repeated column",
        )


def _plain(value: Any) -> Any:
    """Numpy scalars as Python scalars, so messages show ``1.5`` rather than ``np.float64(1.5)``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return str(value)
    return value
