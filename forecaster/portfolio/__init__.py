"""Portfolios as books: positions priced at a valuation time, their Greeks in quote currency by bucket."""

from forecaster.portfolio.book import YEAR, Book, VolSource, book_from_portfolio
from forecaster.portfolio.greeks import (
    DEFAULT_BUCKET_DAYS,
    GREEK_COLUMNS,
    aggregate_greeks,
    expiry_buckets,
    position_greeks,
    total_greeks,
)

__all__ = [
    "DEFAULT_BUCKET_DAYS",
    "GREEK_COLUMNS",
    "YEAR",
    "Book",
    "VolSource",
    "aggregate_greeks",
    "book_from_portfolio",
    "expiry_buckets",
    "position_greeks",
    "total_greeks",
]
