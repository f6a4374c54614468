"""The reference rebalancer (``forecaster rebalance``): a desk that trades a simulated market through
``POST /v1/portfolio/adjustments`` (DESIGN section 9).

The world is the backtest engine's (:func:`forecaster.backtest.engine.run_backtest`): the market stepped from
decision to decision, the book's marks (``book_path``), the hedge's P&L and funding, trading costs (the spec's
``CostModel`` at the engine's EWMA vol), the venue's margin checks and liquidations. The decisions are the
service's: the engine's hedge and margin policies are :class:`RemoteHedge` and :class:`RemoteMargin`, which send
the state the engine hands them (the last ``min_rows`` bars and IV, the open option legs and the hedge as a
portfolio, the desk's clocks, its EWMA vol and its account) and return what the service answered. The P&L is thus
accounted exactly as the backtest accounts it, and a run equals ``run_backtest`` of the same policies in process
whenever the service decides as they do in process (``tests/serving/test_rebalance.py`` checks it to 1e-9).

At a collateral move that is also a hedge decision the desk sends two requests, as the engine decides in two
steps: the hedge (``decide: ["hedge"]``), then the collateral with the equity after the trade (``["margin"]``).
Each request carries an ``X-Request-ID`` naming the run, the bar and the step, so a retried request (a dropped
connection, a 503 while the model loads) is audited under the same id.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from forecaster.backtest.books import OptionLegs
from forecaster.backtest.engine import BacktestMarket, BacktestResult, book_path, ewma_sigma_bar, run_backtest
from forecaster.backtest.policy import HedgeDecision, HedgeState, MarginDecision, MarginState
from forecaster.backtest.run import BacktestSpec
from forecaster.errors import ForecasterError, UsageError

ROUTE = "/v1/portfolio/adjustments"
RETRIES = 3  # attempts after the first, for a dropped connection or a 503
RETRY_SECONDS = 0.5


class ServiceError(ForecasterError):
    """The service refused or failed a request; the message has the status, code, message and request id."""


@dataclass(frozen=True)
class Call:
    """One request: its bar, step (``hedge`` or ``margin``), wall time, request id and whether a fallback decided."""

    bar: int
    step: str
    seconds: float
    request_id: str
    fallback: bool


class AdjustmentsClient:
    """``POST /v1/portfolio/adjustments`` with retries of transport failures and 503s; every call is timed."""

    def __init__(self, http: httpx.Client, *, retries: int = RETRIES) -> None:
        self.http, self.retries = http, retries
        self.calls: list[Call] = []
        self.run_id = uuid.uuid4().hex[:12]

    def model(self) -> dict[str, Any]:
        """``GET /v1/model``: the served model's version, horizons, ``min_rows``, bar length and IV units."""
        return self._json(self.http.get("/v1/model"), "GET /v1/model", None)

    def adjust(self, body: dict[str, Any], bar: int, step: str) -> dict[str, Any]:
        request_id = f"rebalance-{self.run_id}-{bar}-{step}"
        for attempt in range(self.retries + 1):
            started = time.perf_counter()
            try:
                sent = self.http.post(ROUTE, json=body, headers={"X-Request-ID": request_id})
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ServiceError(f"POST {ROUTE} at bar {bar} ({step}) failed: {exc!r}") from exc
            else:
                if sent.status_code != 503 or attempt == self.retries:
                    answer = self._json(sent, f"POST {ROUTE} at bar {bar} ({step})", request_id)
                    seconds = time.perf_counter() - started
                    self.calls.append(Call(bar, step, seconds, request_id, bool(answer["fallback"])))
                    return answer
            time.sleep(RETRY_SECONDS * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _json(sent: httpx.Response, what: str, request_id: str | None) -> dict[str, Any]:
        if sent.status_code == 200:
            return sent.json()
        try:
            error = sent.json()
            detail = f"{error.get('code')}: {error.get('message')}"
        except ValueError:
            detail = sent.text[:500]
        raise ServiceError(
            f"{what} answered {sent.status_code} {detail} (request id {sent.headers.get('x-request-id', request_id)})"
        )


def request_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A request frame (``models.pyfunc.request_frame``) as JSON rows: a missing IV as null, not NaN."""
    rows = frame.to_dict("records")
    for row in rows:
        if "iv" in row and not (isinstance(row["iv"], float) and math.isfinite(row["iv"])):
            row["iv"] = None
    return rows


@dataclass
class RemoteDesk:
    """The desk's side of the service, shared by its two remote policies.

    ``rows``: every bar of the market as a request row (:func:`request_rows`); ``legs`` the book's option legs;
    ``sigma_bar`` the engine's EWMA per-bar vol at every bar (the desk's own estimate, sent with each request).
    """

    client: AdjustmentsClient
    rows: list[dict[str, Any]]
    legs: OptionLegs
    sigma_bar: np.ndarray
    min_rows: int
    policy: str
    margin_policy: str
    hedge_instrument: str = "perp"
    underlying: str = "BTC"
    hedge_units: float = 0.0
    posted: float = 0.0
    margin_gap: float = 0.0  # largest |service IM − venue IM| / venue IM seen
    _first: bool = field(default=True, repr=False)
    _last_check: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.hedge = RemoteHedge(self)
        self.margin = RemoteMargin(self)

    def reset(self, hedge_units: float) -> None:
        self.hedge_units, self._first, self._last_check = float(hedge_units), True, None

    def body(self, bar: int, decide: list[str], desk: dict[str, Any]) -> dict[str, Any]:
        if bar + 1 < self.min_rows:
            raise UsageError(
                f"bar {bar} has {bar + 1} bars up to it; the served model needs min_rows = {self.min_rows}: start the "
                "desk later (a longer warm-up)"
            )
        return {
            "bars": self.rows[bar + 1 - self.min_rows : bar + 1],
            "portfolio": {"positions": self.positions(bar), "collateral": max(self.posted, 0.0)},
            "desk": {"sigma_bar": float(self.sigma_bar[bar]), "posted": self.posted, **desk},
            "policy": self.policy,
            "margin_policy": self.margin_policy,
            "decide": decide,
        }

    def positions(self, bar: int) -> list[dict[str, Any]]:
        """The legs open after the close of ``bar`` (the engine's book at a decision), in leg order, and the hedge."""
        legs = self.legs
        open_ = np.flatnonzero((legs.start_bar <= bar) & (legs.expiry_bar > bar))
        out = [
            {
                "id": f"leg{k}",
                "instrument": "option",
                "underlying": self.underlying,
                "option_type": "call" if legs.is_call[k] else "put",
                "strike": float(legs.strike[k]),
                "expiry": legs.expiry[k].isoformat(),
                "quantity": float(legs.weight[k]),
            }
            for k in open_.tolist()
        ]
        if self.hedge_units != 0.0:
            out.append(
                {"id": "hedge", "instrument": self.hedge_instrument, "underlying": self.underlying,
                 "quantity": self.hedge_units}
            )  # fmt: skip
        return out


class RemoteHedge:
    """The engine's hedge policy: asks the service (``decide: ["hedge"]``) and applies its answer."""

    needs_forecast = False  # the service forecasts from the bars it is sent

    def __init__(self, desk: RemoteDesk) -> None:
        self.desk = desk
        self.name = f"remote:{desk.policy}"

    @property
    def param(self) -> float | None:
        return None

    def reset(self) -> None:
        self.desk._first, self.desk._last_check = True, None

    def decide(self, state: HedgeState) -> HedgeDecision:
        desk = self.desk
        desk.hedge_units = state.hedge_units
        clocks = {
            "bars_since_trade": int(state.bars_since_trade),
            "first_decision": desk._first,
            "bars_since_check": None if desk._last_check is None else state.bar - desk._last_check,
            "sigma_bar": float(state.sigma_bar),
        }
        answer = desk.client.adjust(desk.body(state.bar, ["hedge"], clocks), state.bar, "hedge")
        hedge, after = answer["hedge"], answer["desk"]
        desk._first = bool(after["first_decision"])
        since = after["bars_since_check"]
        desk._last_check = None if since is None else state.bar - int(since)
        target = hedge["target_units"] if hedge["trades"] else None
        if target is not None:
            desk.hedge_units = float(target)
        return HedgeDecision(target, hedge["reason"], tuple(hedge["suggestions"]), bool(hedge["fallback"]))


class RemoteMargin:
    """The engine's margin policy: asks the service (``decide: ["margin"]``) with the venue's account."""

    needs_forecast = False

    def __init__(self, desk: RemoteDesk) -> None:
        self.desk = desk
        self.name = f"remote:{desk.margin_policy}"

    @property
    def param(self) -> float | None:
        return None

    def reset(self) -> None:
        pass

    def decide(self, state: MarginState) -> MarginDecision:
        desk = self.desk
        desk.posted = float(state.posted)
        account = {"equity": float(state.equity), "posted": float(state.posted)}
        account["breached_recently"] = bool(state.breached_recently)
        answer = desk.client.adjust(desk.body(state.bar, ["margin"], account), state.bar, "margin")
        margin = answer["margin"]
        served = margin["initial_margin"]
        if served is not None and state.initial_margin > 0:
            desk.margin_gap = max(desk.margin_gap, abs(served - state.initial_margin) / state.initial_margin)
        target = margin["target_posted"]
        if target is not None:
            desk.posted = float(target)
        return MarginDecision(target, margin["reason"], bool(margin["fallback"]))


@dataclass
class Rebalance:
    """A run: the engine's result (per-bar record, decisions) and the service calls."""

    result: BacktestResult
    calls: list[Call]
    model: dict[str, Any]
    policy: str
    margin_policy: str
    start_bar: int
    margin_gap: float

    def summary(self) -> dict[str, Any]:
        """P&L, cost, trades, fallbacks, requests and their latency (ms), and the policy metrics."""
        seconds = np.array([c.seconds for c in self.calls], dtype=float)
        decisions = self.result.decisions
        margin = self.result.margin_decisions
        metrics = self.result.metrics
        latency = {}
        for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
            latency[name] = float(np.percentile(seconds, q) * 1000.0) if seconds.size else None
        latency["max"] = float(seconds.max() * 1000.0) if seconds.size else None
        return {
            "policy": self.policy,
            "margin_policy": self.margin_policy,
            "model": self.model,
            "start": str(self.result.record["timestamp"].iloc[0]),
            "end": str(self.result.record["timestamp"].iloc[-1]),
            "bars": len(self.result.record),
            "pnl_total": float(self.result.record["pnl"].sum()),
            "cost": float(self.result.record["hedge_cost"].sum()),
            "n_trades": int((self.result.record["traded_units"] != 0).sum()),
            "decisions": len(decisions),
            "fallbacks": int(decisions["fallback"].sum()) if len(decisions) else 0,
            "margin_moves": int(margin["collateral_move"].sum()) if len(margin) else 0,
            "margin_fallbacks": int(margin["fallback"].sum()) if len(margin) else 0,
            "forced_liquidations": int(margin["forced_liquidation"].sum()) if len(margin) else 0,
            "requests": len(self.calls),
            "latency_ms": latency,
            "margin_gap": self.margin_gap,
            "metrics": {k: _plain(v) for k, v in metrics.items()},
        }


def rebalance(
    client: AdjustmentsClient,
    rows: list[dict[str, Any]],
    market: BacktestMarket,
    legs: OptionLegs,
    bt: BacktestSpec,
    *,
    policy: str,
    margin_policy: str,
    start_bar: int,
    margin_config: Any = None,
    model: dict[str, Any] | None = None,
    initial_hedge_units: float = 0.0,
) -> Rebalance:
    """Step ``market`` from ``start_bar`` with the engine, every decision asked of the service (module docstring).

    ``rows``: the market's bars as request rows (one per bar of ``market``, in the model's IV units); ``model``:
    ``GET /v1/model`` (fetched when None); ``margin_config``: the venue's margin model (the spec's ``margin``).
    """
    info = model if model is not None else client.model()
    if len(rows) != len(market.index):
        raise UsageError(f"rows ({len(rows)}) must hold one request row per bar of the market ({len(market.index)})")
    sigma_bar = ewma_sigma_bar(market.close, market.iv, market.bar_years, bt.engine.vol_halflife_bars)
    desk = RemoteDesk(
        client, rows, legs, sigma_bar, int(info["min_rows"]), policy, margin_policy,
        hedge_instrument=bt.engine.hedge_instrument, underlying=market.underlying,
    )  # fmt: skip
    desk.reset(initial_hedge_units)
    first_call = len(client.calls)
    result = run_backtest(
        market, legs, desk.hedge, desk.margin, bt.engine, margin_config=margin_config,
        path=book_path(legs, market), start_bar=start_bar, initial_hedge_units=initial_hedge_units,
    )  # fmt: skip
    return Rebalance(result, client.calls[first_call:], info, policy, margin_policy, start_bar, desk.margin_gap)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
