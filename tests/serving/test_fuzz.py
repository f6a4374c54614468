"""Property-based tests against the OpenAPI spec of the running server: no 5xx on any generated input.

1. Schemathesis generates requests for every operation from ``/openapi.json`` (valid and invalid bodies, headers,
   methods) and checks each answer: never a server error, a documented status, the documented content type and
   schema.
2. The generated bars are almost never long enough to reach the model (it needs 122), so Hypothesis also mutates
   cells of a full-length valid request with values the schema allows (any timestamp text, any positive price,
   huge and tiny numbers, missing IVs) and positions of a valid book: the answer is 200 or 422, never 5xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
QUIET = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck), "derandomize": True}


@pytest.fixture(scope="module")
def live(registry, serve):
    with serve(registry.settings(max_rows=2000)) as running:
        yield running


def _spec() -> dict:
    """The app's OpenAPI document (what ``/openapi.json`` serves; building it loads no model)."""
    from serving.app import create_app
    from serving.settings import Settings

    return create_app(Settings(model_uri="models:/any@champion", api_keys=("any",))).openapi()


schema = schemathesis.openapi.from_dict(_spec())


def test_the_served_spec_is_the_one_fuzzed(live):
    assert live.http.get("/openapi.json").json() == _spec()


@schema.parametrize()
@settings(max_examples=60, **QUIET)
def test_no_server_error_on_generated_requests(case, live, admin):
    case.call_and_validate(base_url=live.url, headers=admin, checks=CHECKS)


TEXT = st.text(min_size=1, max_size=40)
PRICE = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False).filter(lambda x: x > 0)
STAMP = st.one_of(TEXT, st.integers(min_value=0, max_value=2**63 - 1))
CELLS = {
    "timestamp": STAMP,
    "open": PRICE,
    "high": PRICE,
    "low": PRICE,
    "close": PRICE,
    "volume": st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False),
    "iv": st.one_of(st.none(), PRICE),
}


@st.composite
def mutated_bars(draw, bars):
    rows = [dict(bar) for bar in bars]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        column = draw(st.sampled_from(sorted(CELLS)))
        row = draw(st.integers(min_value=0, max_value=len(rows) - 1))
        rows[row][column] = draw(CELLS[column])
    return rows


POSITION = st.fixed_dictionaries(
    {
        "instrument": st.sampled_from(["option", "perp", "spot", "future"]),
        "underlying": st.sampled_from(["BTC", "BTC", "ETH"]),
        "quantity": st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    },
    optional={
        "option_type": st.sampled_from(["call", "put"]),
        "strike": PRICE,
        "expiry": st.datetimes(timezones=st.none()).map(lambda t: t.isoformat()),
        "multiplier": PRICE,
    },
)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_mutated_full_requests_never_fail_on_the_server(live, registry, auth):  # huge books overflow: null + warning
    @given(
        rows=st.one_of(st.just(registry.bars()), mutated_bars(registry.bars())),
        positions=st.lists(POSITION, min_size=1, max_size=3),
        horizon=st.sampled_from([None, 30, 60]),
    )
    @settings(max_examples=40, **QUIET)
    def check(rows, positions, horizon):
        forecast = live.http.post("/v1/forecast", json={"bars": rows}, headers=auth)
        assert forecast.status_code in (200, 422), forecast.text
        request = {"bars": rows, "portfolio": {"positions": positions, "collateral": 0}, "horizon": horizon}
        drift = live.http.post("/v1/portfolio/drift", json=request, headers=auth)
        assert drift.status_code in (200, 422), drift.text
        for sent in (forecast, drift):
            assert sent.json().get("code") in (None, "invalid_input", "validation_error"), sent.text

    check()
