"""Named errors whose text tells the user what was wrong, where, and how to fix it."""

from __future__ import annotations

from typing import Any


class ForecasterError(Exception):
    """Base class of the errors the CLI turns into exit code 2 (bad input or usage)."""


class UsageError(ForecasterError):
    """A command-line or configuration value is not allowed."""


class ConfigError(UsageError):
    """An experiment spec (YAML) has a missing, unknown or out-of-range value.

    Parameters
    ----------
    path
        The spec file, or ``"<defaults>"``.
    key
        Dotted key inside the spec, e.g. ``simulator.regimes.ann_vol``.
    message
        What is allowed and what was received.
    """

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}: {message}")


class DataValidationError(ForecasterError):
    """A market-data or portfolio file breaks a rule of the data contract (DESIGN section 3).

    The message names the file, the row (1-based data row, header excluded; for CSV also the line number),
    the column, the offending value, the rule, and a fix.
    """

    def __init__(
        self,
        file: str,
        rule: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        fix: str | None = None,
        line: int | None = None,
        count: int | None = None,
    ) -> None:
        self.file, self.rule, self.row, self.column = file, rule, row, column
        self.value, self.fix, self.line, self.count = value, fix, line, count
        where = [f"{file}"]
        if row is not None:
            where.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
        if column is not None:
            where.append(f"column '{column}'")
        text = ", ".join(where)
        if isinstance(value, float) and value != value:  # NaN: an empty cell in CSV, NaN in Parquet
            text += ": empty or NaN"
        elif value is not None:
            text += f": value {value!r}"
        text += f" breaks rule: {rule}"
        if count is not None and count > 1:
            text += f" ({count} rows in all break it; this is the first)"
        if fix:
            text += f". Fix: {fix}"
        self.others: tuple[DataValidationError, ...] = ()
        super().__init__(text)

    def with_others(self, others: list[DataValidationError]) -> DataValidationError:
        """Attach the other rules the same file breaks, so one run shows every problem; returns self."""
        self.others = tuple(others)
        if others:
            listed = "\n".join(f"  also: {other.args[0]}" for other in others)
            self.args = (f"{self.args[0]}\n{listed}",)
        return self


class ValidationFailed(ForecasterError):
    """Several files break the data contracts; each error is in ``errors`` and in the message."""

    def __init__(self, errors: list[DataValidationError]) -> None:
        self.errors = tuple(errors)
        body = "\n".join(str(error) for error in errors)
        super().__init__(f"{len(errors)} files break the data contracts:\n{body}")
