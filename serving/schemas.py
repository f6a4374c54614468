"""Request and response schemas of the HTTP API (DESIGN section 9), separate for each direction.

Fields declare what the schema can check (types, signs, finiteness); the rules that span fields or rows (high ≥
low, sorted timestamps, an option needs a strike, expiries after the valuation time) are the data contracts'
(DESIGN section 3), checked by the same code that checks files, and answered 422 ``invalid_input``.
Numbers in responses are plain JSON numbers; a value that is not finite is null, with a ``warnings`` entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal, NotRequired

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from forecaster.market.portfolio_file import INSTRUMENTS, OPTION_TYPES
from serving.errors import ErrorCode

MAX_EPOCH = 2**63 - 1  # epoch timestamps are int64 (nanoseconds at most)
MAX_SCENARIOS = 16_384
MAX_IV = 5.0

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Stamp = Annotated[str, StringConstraints(min_length=1, max_length=64)] | Annotated[int, Field(ge=0, le=MAX_EPOCH)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------- requests


@with_config(ConfigDict(extra="forbid"))
class Bar(TypedDict):
    """One bar (DESIGN section 3), oldest first; ``iv`` the IV index known at the bar (empty: carried forward).

    A TypedDict, not a model: 1,440 bars validate from JSON in about 1.6 ms instead of 6 ms; the route reads them as
    a :class:`BarTable` of columns."""

    timestamp: Annotated[
        Stamp,
        Field(
            description="UTC ISO 8601 (naive: read as UTC) or epoch seconds / ms / µs / ns; labelled as the model's "
            "training bars (GET /v1/model: bar_label)"
        ),
    ]
    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: NonNegative
    iv: NotRequired[
        Annotated[Positive | None, Field(description="IV index in the model's iv_units (GET /v1/model): needs_iv")]
    ]


@dataclass(frozen=True, eq=False)
class BarTable:
    """A request's bars as columns (oldest first). ``iv``: NaN where a bar has none; None when no bar has one."""

    timestamp: list[str | int]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    iv: np.ndarray | None

    @classmethod
    def of_rows(cls, rows: list[Bar]) -> BarTable:
        """The columns of validated rows (every value already checked by :class:`Bar`)."""
        ivs = [row.get("iv") for row in rows]
        has_iv = any(v is not None for v in ivs)
        return cls(
            timestamp=[row["timestamp"] for row in rows],
            open=np.array([row["open"] for row in rows], dtype=float),
            high=np.array([row["high"] for row in rows], dtype=float),
            low=np.array([row["low"] for row in rows], dtype=float),
            close=np.array([row["close"] for row in rows], dtype=float),
            volume=np.array([row["volume"] for row in rows], dtype=float),
            iv=np.array([np.nan if v is None else v for v in ivs], dtype=float) if has_iv else None,
        )

    @classmethod
    def of_columns(cls, columns: BarColumns) -> BarTable:
        """The columns of validated :class:`BarColumns` (equal lengths checked there)."""
        iv = columns.iv
        has_iv = iv is not None and any(v is not None for v in iv)
        return cls(
            timestamp=columns.timestamp,
            open=np.array(columns.open, dtype=float),
            high=np.array(columns.high, dtype=float),
            low=np.array(columns.low, dtype=float),
            close=np.array(columns.close, dtype=float),
            volume=np.array(columns.volume, dtype=float),
            iv=np.array([np.nan if v is None else v for v in iv], dtype=float) if has_iv and iv is not None else None,
        )

    def __len__(self) -> int:
        return len(self.timestamp)

    def rows(self) -> list[dict[str, object]]:
        """Back to request rows (what a client sent, ``iv`` left out where it was empty)."""
        out: list[dict[str, object]] = []
        for i, stamp in enumerate(self.timestamp):
            row: dict[str, object] = {"timestamp": stamp}
            row.update({c: float(getattr(self, c)[i]) for c in ("open", "high", "low", "close", "volume")})
            if self.iv is not None and np.isfinite(self.iv[i]):
                row["iv"] = float(self.iv[i])
            out.append(row)
        return out


Bars = Annotated[
    list[Bar],
    Field(
        min_length=1, description="the most recent bars, oldest first: at least the model's min_rows (GET /v1/model)"
    ),
    AfterValidator(BarTable.of_rows),
    PlainSerializer(BarTable.rows, return_type=list[Bar]),
]


class BarColumns(_Request):
    """The bars as columns: one array per field of :class:`Bar`, oldest first, all of one length. The same data as
    rows in about 30% less JSON, read about three times faster (``bench/bench_serving.py --format columns``)."""

    timestamp: Annotated[list[Stamp], Field(min_length=1, description="as Bar.timestamp")]
    open: list[Positive]
    high: list[Positive]
    low: list[Positive]
    close: list[Positive]
    volume: list[NonNegative]
    iv: list[Positive | None] | None = Field(None, description="as Bar.iv; null entries: no IV at that bar")

    @model_validator(mode="after")
    def _one_length(self) -> BarColumns:
        n = len(self.timestamp)
        for name in ("open", "high", "low", "close", "volume", "iv"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(
                    f"every column must hold one value per bar: timestamp has {n:,}, {name} has {len(values):,}"
                )
        return self


class _BarsRequest(_Request):
    """A request that carries recent bars, as rows (``bars``) or as columns (``bar_columns``); after validation
    ``bars`` is a :class:`BarTable` either way."""

    bars: Bars | None = Field(None, description="the most recent bars as rows (or send bar_columns)")
    bar_columns: BarColumns | None = Field(None, description="the same bars as columns, instead of bars")

    @model_validator(mode="after")
    def _one_form(self) -> _BarsRequest:
        if (self.bars is None) == (self.bar_columns is None):
            raise PydanticCustomError(
                "bars_form",
                "send the recent bars either as rows in 'bars' or as columns in 'bar_columns': {sent}",
                {"sent": "both were sent" if self.bars is not None else "neither was sent"},
            )
        if self.bar_columns is not None:
            self.bars = BarTable.of_columns(self.bar_columns)
            self.bar_columns = None
        return self


class ForecastRequest(_BarsRequest):
    """The recent bars of one market; the forecast origin is the last bar."""


class PositionIn(_Request):
    """A position, as in a portfolio file (DESIGN section 3)."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    instrument: Literal[INSTRUMENTS]  # type: ignore[valid-type]
    underlying: Name
    option_type: Literal[OPTION_TYPES] | None = None  # type: ignore[valid-type]
    strike: Positive | None = None
    expiry: dt.datetime | None = Field(None, description="options and futures; ISO 8601, naive read as UTC")
    quantity: Finite = Field(description="signed, in contracts; not 0")
    multiplier: Positive | None = None


class LimitsIn(_Request):
    max_abs_delta: Positive | None = None
    max_order_size: Positive | None = None


class PortfolioIn(_Request):
    """Positions on one underlying, collateral (quote currency) and optional limits: the portfolio file's fields."""

    positions: Annotated[list[PositionIn], Field(min_length=1)]
    collateral: NonNegative
    limits: LimitsIn | None = None


class DriftRequest(_BarsRequest):
    """Recent bars and a portfolio: the book is valued at the last bar and its drift forecast over ``horizon``."""

    portfolio: PortfolioIn
    horizon: Annotated[int, Field(ge=1)] | None = Field(
        None, description="bars ahead: one of the model's horizons; default its first (as `forecaster drift`)"
    )
    spot: Positive | None = Field(None, description="default the last bar's close")
    atm_iv: Annotated[float, Field(gt=0, le=MAX_IV, allow_inf_nan=False)] | None = Field(
        None, description="decimal 30-day ATM IV for the options' flat surface; default the last iv of the bars"
    )
    n_scenarios: Annotated[int, Field(ge=2, le=MAX_SCENARIOS)] | None = Field(None, description="default the spec's")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = Field(None, description="default the spec's")


class BookIn(PortfolioIn):
    """The desk's book: its options, its hedge (the perp, spot and future positions: their summed ``quantity ·
    multiplier`` is the hedge position, in units of the underlying), collateral and optional limits. Empty
    ``positions``: a flat book."""

    positions: Annotated[list[PositionIn], Field(min_length=0)] = Field(
        default_factory=list, description="options and the hedge's linear positions, one underlying"
    )


class DeskIn(_Request):
    """What the desk knows and a stateless server cannot: its clocks, its vol estimate, its account at the venue."""

    bars_since_trade: Annotated[int, Field(ge=0, le=MAX_EPOCH)] = Field(
        0, description="bars since the desk's last hedge trade (since it started when none): the fixed policy's clock"
    )
    first_decision: bool = Field(False, description="the desk's first decision with this policy (fixed: hedge now)")
    bars_since_check: Annotated[int, Field(ge=0, le=MAX_EPOCH)] | None = Field(
        None, description="the threshold policy: bars since its last check (null: it checks now)"
    )
    sigma_bar: NonNegative | None = Field(
        None,
        description="the desk's trailing per-bar vol: EWMA of squared log returns, half-life "
        "backtest.vol_halflife_bars (the reactive policies' vol and the cost model's); null: that EWMA over the "
        "request's bars, started at the first bar's implied variance",
    )
    posted: Finite | None = Field(
        None, description="collateral posted at the venue (quote currency; < 0 after withdrawing P&L); default "
        "portfolio.collateral"
    )  # fmt: skip
    equity: Finite | None = Field(
        None, description="posted collateral plus the P&L since, before this decision's hedge trade; default posted"
    )
    breached_recently: bool = Field(
        False, description="equity fell below the maintenance margin since the desk last moved collateral"
    )


class AdjustmentRequest(_BarsRequest):
    """Recent bars, the desk's book and state: the hedge trade and the collateral move the spec's policies decide
    at the last bar."""

    portfolio: BookIn
    desk: DeskIn = Field(default_factory=DeskIn)
    policy: Name | None = Field(
        None, description="a name of the spec's backtest.hedge_policies; default its first predictive one"
    )
    margin_policy: Name | None = Field(
        None, description="static, reactive or predictive (backtest.margin_policies); default backtest.margin_policy"
    )
    decide: Annotated[list[Literal["hedge", "margin"]], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: ["hedge", "margin"],
        description="what to decide: the hedge trade, the collateral move, or both (the margin after the trade)",
    )
    n_scenarios: Annotated[int, Field(ge=2, le=MAX_SCENARIOS)] | None = Field(
        None, description="drift scenarios of the forecast views; default backtest.scenarios (the backtest's)"
    )


# ---------------------------------------------------------------------------------------------------- responses


class ModelRef(BaseModel):
    """The model version that answered."""

    name: str | None = Field(description="registered model name (null for a model loaded from a path or run)")
    version: str | None
    model_name: str = Field(description="the forecaster inside the bundle (the spec's model name)")


class HorizonRow(BaseModel):
    """The forecast of one horizon (DESIGN section 5); ``ann_vol`` = sqrt(var / horizon in years)."""

    horizon: int
    var: float | None
    ann_vol: float | None
    q05: float | None
    q25: float | None
    q50: float | None
    q75: float | None
    q95: float | None
    p_calm: float | None
    p_normal: float | None
    p_stressed: float | None


class ForecastResponse(BaseModel):
    request_id: str
    model: ModelRef
    as_of: dt.datetime = Field(description="the forecast origin: the last bar (UTC)")
    bar_length: str = Field(description="ISO 8601 duration of one bar")
    forecasts: list[HorizonRow]
    warnings: list[str]


class Change(BaseModel):
    """Mean and quantiles of the change from now to t+h."""

    mean: float | None
    q05: float | None
    q25: float | None
    q50: float | None
    q75: float | None
    q95: float | None


class MetricDrift(BaseModel):
    """A metric now, its distribution at t+h, and its drift (DESIGN section 11)."""

    now: float | None
    mean: float | None
    q05: float | None
    q25: float | None
    q50: float | None
    q75: float | None
    q95: float | None
    drift: Change


class DriftResponse(BaseModel):
    """The drift distribution at ``horizon`` (quote currency: delta per 100% move, gamma per 1%, vega per vol
    point)."""

    request_id: str
    model: ModelRef
    as_of: dt.datetime = Field(description="valuation time and forecast origin: the last bar (UTC)")
    spot: float
    atm_iv: float | None = Field(description="the flat surface's IV the options were valued with (null: none)")
    horizon: int
    years: float = Field(description="the horizon in years: options age by this much")
    quantiles: list[float]
    forecast: HorizonRow = Field(description="the model's forecast the scenarios were drawn from")
    delta: MetricDrift
    gamma: MetricDrift
    vega: MetricDrift
    pnl: MetricDrift
    margin_initial: MetricDrift
    margin_model: str
    n_scenarios: int
    notes: list[str]
    warnings: list[str]


class ModelInfo(BaseModel):
    """The model being served."""

    name: str | None
    version: str | None
    run_id: str | None
    uri: str = Field(description="the URI this version was loaded from")
    source_uri: str = Field(description="the configured URI (an alias is watched)")
    model_name: str
    family: str
    horizons: list[int]
    min_rows: int
    needs_iv: bool
    iv_units: str
    bar_length: str
    bar_label: str
    loaded_at: dt.datetime


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """Ready when a model is loaded; ``last_reload_error`` says why the latest version is not the one serving."""

    ready: bool
    model_version: str | None
    model_uri: str
    watching: bool = Field(description="whether the alias is polled for new versions")
    last_reload_error: str | None
    last_reload_at: dt.datetime | None


class ReloadReport(BaseModel):
    """What a reload did: ``loaded`` (first model), ``swapped``, ``unchanged`` or ``failed`` (the previous version
    keeps serving; ``error`` says why)."""

    outcome: Literal["loaded", "swapped", "unchanged", "failed"]
    previous_version: str | None
    model_version: str | None = Field(description="the version serving after the reload")
    target_version: str | None = Field(description="the version the URI pointed at")
    error: str | None
    seconds: float


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every error: a stable ``code``, a message naming the field and the fix, the request id to quote."""

    code: ErrorCode
    message: str
    request_id: str | None
    details: list[ErrorDetail] | None = None


class Quantiles(BaseModel):
    q05: float | None
    q25: float | None
    q50: float | None
    q75: float | None
    q95: float | None


class LevelValue(BaseModel):
    level: float
    value: float | None


class ForecastViewOut(BaseModel):
    """What a predictive policy read: the forecast over ``horizon`` mapped onto the book by the drift engine (book
    held fixed; units of the underlying for delta and gamma, quote currency per vol point for vega)."""

    horizon: int
    source: str
    var: float | None
    p_stressed: float | None
    target_net_delta_units: float | None = Field(description="the net delta of least P&L variance over the horizon")
    delta_drift: Quantiles
    gamma_drift: Quantiles
    vega_drift: Quantiles
    margin_need: list[LevelValue] = Field(
        description="the margin view: quantiles of the equity needed now to stay above maintenance at t+h"
    )


class PolicyRef(BaseModel):
    """A policy of the spec: its name there, its kind and its parameters as the spec gives them."""

    name: str
    kind: str
    params: dict[str, float | int | str | bool | None]
    source: str | None = Field(None, description="where a predictive policy's forecast comes from")


class Caps(BaseModel):
    """The safety caps in force: the spec's backtest.safety and the portfolio's limits, the tighter wins."""

    max_order_units: float | None = Field(description="null: none")
    max_notional_per_step: float | None = Field(description="null: none")
    fallback_band_units: float | None = Field(description="the reactive band the safety fallback hedges with")
    delta_limit_units: float | None = Field(description="the book's limit on |net delta|; null: none")


class HedgeOrder(BaseModel):
    """One order for the hedge instrument."""

    instrument: str
    underlying: str | None = Field(description="null: the book holds no position")
    side: Literal["buy", "sell"]
    units: float = Field(description="> 0, units of the underlying")
    target_units: float = Field(description="the hedge position once filled")
    estimated_cost: float | None = Field(description="fee plus impact by the spec's cost model (quote currency)")
    reason: str


class HedgeOut(BaseModel):
    """The hedge decision, with the book it was made on (units of the underlying)."""

    instrument: str
    underlying: str | None = Field(description="null: the book holds no position")
    trades: bool = Field(description="false: hold the position")
    hedge_units: float | None = Field(description="the hedge position before")
    target_units: float | None = Field(description="the hedge position to hold after (= hedge_units: no trade)")
    trade_units: float | None = Field(description="signed: > 0 buy")
    estimated_cost: float | None
    book_delta_units: float | None
    book_gamma_units: float | None
    book_vega: float | None = Field(description="quote currency per vol point")
    gamma_tau: float | None = Field(description="gamma-weighted years to expiry (null: no gamma)")
    net_delta_before: float | None
    net_delta_after: float | None
    sigma_bar: float | None = Field(description="the per-bar vol the decision used")
    cost_rate: float | None = Field(description="cost of one unit as a share of notional (fee + impact)")
    caps: Caps
    reason: str
    fallback: bool = Field(description="the safety fallback decided (no, failed or out-of-distribution forecast)")
    suggestions: list[str] = Field(description="advice, not orders: gamma or vega to reduce or roll")


class MarginOut(BaseModel):
    """The collateral decision (quote currency): post ``amount`` more (< 0: withdraw) to hold ``target_posted``."""

    initial_margin: float | None = Field(description="the book's requirement after the hedge trade")
    maintenance_margin: float | None
    equity: float | None = Field(description="as the policy saw it: after the hedge trade's estimated cost")
    posted: float | None
    target_posted: float | None
    amount: float | None
    action: Literal["top_up", "release", "hold"]
    below_maintenance_after: bool = Field(description="equity after the move is still below maintenance")
    reason: str
    fallback: bool


class DeskOut(BaseModel):
    """The desk's state after this decision: send it with the next request, the bars passed added to the clocks."""

    bars_since_trade: int
    first_decision: bool
    bars_since_check: int | None
    sigma_bar: float | None
    hedge_units: float | None
    posted: float | None


class AdjustmentResponse(BaseModel):
    """The decision at the last bar (DESIGN section 10): orders, a collateral move, and why. Every response is in
    the audit log under its request id before it is returned."""

    request_id: str
    model: ModelRef
    as_of: dt.datetime = Field(description="the decision time: the last bar (UTC)")
    spot: float
    atm_iv: float | None
    policy: PolicyRef
    margin_policy: PolicyRef
    fallback: bool = Field(description="a safety fallback decided the hedge or the collateral")
    orders: list[HedgeOrder]
    hedge: HedgeOut | None = Field(description="null: not asked (decide)")
    margin: MarginOut | None = Field(description="null: not asked (decide)")
    suggestions: list[str]
    view: ForecastViewOut | None = Field(description="the hedge policy's forecast view (predictive policies)")
    margin_view: ForecastViewOut | None = Field(description="the predictive margin policy's view")
    forecast: HorizonRow | None = Field(description="the model's forecast row the hedge view was drawn from")
    desk: DeskOut
    notes: list[str]
    warnings: list[str]
