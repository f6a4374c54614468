"""Shared fixtures of the loader tests: fixture files, file writers, and a guard that inputs stay untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_BARS = """timestamp,open,high,low,close,volume
2024-01-02,100,105,99,104,1000
2024-01-03,104,106,101,102,1200
2024-01-04,102,103,98,99,900
2024-01-05,99,101,97,100,1100
2024-01-08,100,102,99.5,101,950
"""


@pytest.fixture
def good_bars() -> str:
    """Five valid daily bars as CSV text (dates, no time zone)."""
    return GOOD_BARS


@pytest.fixture
def fixture_path() -> Callable[[str], Path]:
    """Path of a committed fixture file, e.g. ``deribit_trades.csv``."""
    return lambda name: FIXTURES / name


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path / name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def untouched() -> Iterator[Callable[[Path], Path]]:
    """Register input files; at teardown each must have its original bytes and modification time."""
    seen: dict[Path, tuple[int, bytes]] = {}

    def register(path: Path) -> Path:
        seen[path] = (path.stat().st_mtime_ns, path.read_bytes())
        return path

    yield register
    for path, (mtime, data) in seen.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was modified"
        assert path.read_bytes() == data, f"{path} content changed"
