"""The decision audit log: an append-only JSON Lines file, one line per decision the service returned.

Every line is one JSON object::

    {"ts": "2026-01-02T00:00:00.123456+00:00", "kind": "adjustment", "request_id": "…", "model_version": "3",
     "record": {...the decision as returned...}}

Lines are written whole with one ``write`` on a descriptor opened ``O_APPEND`` (the kernel puts each at the end,
so writers never overwrite one another; the file is never truncated or rewritten) and ``fsync``-ed before the
call returns: a route writes its decision here first and answers only if that succeeded, so no decision leaves
the service without its line. The file is opened per write, so rotating it (move it away) is safe.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from forecaster.errors import UsageError

FILE_MODE = 0o640


class AuditLog:
    """Append-only JSON Lines writer (module docstring).

    Parameters
    ----------
    path
        The file; created (with its folder) at the first write.
    fsync
        Flush every line to disk before returning (default). False only for tests of throughput.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()

    def append(
        self, *, kind: str, request_id: str, record: Mapping[str, Any], model_version: str | None = None
    ) -> dict[str, Any]:
        """Append one decision; returns the entry written.

        Raises
        ------
        UsageError
            ``kind`` or ``request_id`` is empty, or ``record`` holds a value JSON cannot carry (NaN, infinity, an
            object that is not a number, string, list or mapping): nothing is written.
        OSError
            The file cannot be written; nothing (or, on a full disk, a partial last line) is written.
        """
        if not kind or not request_id:
            raise UsageError(
                f"an audit entry needs a kind and a request id; got kind={kind!r}, request_id={request_id!r}"
            )
        entry = {
            "ts": dt.datetime.now(dt.UTC).isoformat(),
            "kind": kind,
            "request_id": request_id,
            "model_version": model_version,
            "record": dict(record),
        }
        try:
            line = json.dumps(entry, allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=_plain)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"audit record of request {request_id} is not plain finite JSON: {exc}") from exc
        data = (line + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                written = os.write(fd, data)
                while written < len(data):  # a regular file takes it whole; a short write continues the line
                    written += os.write(fd, data[written:])
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return entry


def read_audit(path: str | Path) -> Iterator[dict[str, Any]]:
    """The entries of an audit log, oldest first (a missing file has none)."""
    target = Path(path)
    if not target.exists():
        return
    with target.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{target}: line {number} is not JSON ({exc.msg}); the log was edited") from exc


def _plain(value: Any) -> Any:
    """Timestamps as ISO text, numpy scalars as numbers (finite only); anything else is refused."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        number = item()
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"non-finite number {number}")
        return number
    raise TypeError(f"{type(value).__name__} is not JSON")
