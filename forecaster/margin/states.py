"""Margin through the spec's model choice, today and from many base states (the drift engine's margin at t+h)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from forecaster.margin.config import MarginConfig
from forecaster.margin.risk_matrix import risk_matrix_rules
from forecaster.margin.scenarios import FloatArray, MarginResult, MarginRules, book_margin, initial_margin_for_states
from forecaster.margin.span import span_rules
from forecaster.portfolio.book import Book


def margin_rules(config: MarginConfig | None = None) -> MarginRules:
    """The rules of the model ``config.model`` picks (default: the risk matrix with default settings)."""
    c = config or MarginConfig()
    if c.model == "span":
        return span_rules(c.span)
    if c.model == "risk_matrix":
        return risk_matrix_rules(c.risk_matrix)
    raise ValueError(f"margin model must be 'risk_matrix' or 'span', got {c.model!r}; set margin.model in the spec")


def portfolio_margin(book: Book, config: MarginConfig | None = None, *, threads: int | None = None) -> MarginResult:
    """The margin of ``book`` today under the model ``config.model`` picks."""
    return book_margin(book, margin_rules(config), threads=threads)


def initial_margin_under_states(
    book: Book,
    log_return: npt.ArrayLike,
    iv: npt.ArrayLike | None = None,
    tau: npt.ArrayLike | None = None,
    config: MarginConfig | None = None,
    *,
    threads: int | None = None,
) -> FloatArray:
    """Initial margin of the same positions from each of M base states (e.g. forecast states at t + h).

    All M states × G scenarios are revalued together (one flattened revaluation per underlying and chunk of
    states). A single state equal to today's (``log_return`` 0, the book's vols and tau) gives exactly the
    ``initial`` of :func:`portfolio_margin` (the same computation); inside a batch of states it may differ in
    the last bit, as BLAS may sum a row's option values in another order depending on the row's position.

    Parameters
    ----------
    book
        The positions and today's spots and vols.
    log_return
        Shape (M,): each state's log move of the spot from ``book.spot`` (every underlying moves by it).
    iv
        None: the book's vols in every state. Shape (M,): an additive shift of every option's vol per state
        (e.g. the forecast change of ATM IV; shifted vols are floored at the model's ``min_vol``, never above
        the book's vol). Shape (M, N): the vol of every position in every state.
    tau
        Shape (N,): time to expiry in years at the states (e.g. ``book.aged(h).tau``). Options at 0 expired
        within the horizon: valued at intrinsic, no vol shock and no short-option charge. Default: the book's.
    config
        Margin model and settings; default :class:`~forecaster.margin.config.MarginConfig`.
    threads
        Worker threads of the revaluation; default: the machine's cores.

    Returns
    -------
    ndarray
        Shape (M,): initial margin in quote currency; maintenance follows from :func:`maintenance_from_initial`.
    """
    rules = margin_rules(config)
    return initial_margin_for_states(book, rules, log_return, iv=iv, tau=tau, threads=threads)


def maintenance_from_initial(initial: npt.ArrayLike, config: MarginConfig | None = None) -> FloatArray:
    """Maintenance margin from initial margin (any shape): ``ratio × initial`` (risk matrix), ``initial / 1.1``
    (SPAN: initial is 1.1 × maintenance by default)."""
    c = config or MarginConfig()
    value = np.asarray(initial, dtype=float)
    if c.model == "span":
        return value / c.span.initial_to_maintenance
    return c.risk_matrix.maintenance_ratio * value
