"""Progress bars for long work: tqdm on stderr, off when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a progress bar that shows only on an interactive terminal."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=not sys.stderr.isatty(), leave=False))
