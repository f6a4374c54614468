"""API keys: 401 without a known key, 403 for a client key on an admin route, admin keys everywhere, open health
endpoints; the key comparison itself."""

from __future__ import annotations

import pytest

from serving.auth import Role, matches, role_of

CLIENT_ROUTES = [("GET", "/v1/model"), ("POST", "/v1/forecast"), ("POST", "/v1/portfolio/drift")]
ALL_ROUTES = [*CLIENT_ROUTES, ("POST", "/v1/admin/reload")]


@pytest.fixture(scope="module")
def live(registry, serve):
    with serve(registry.settings()) as running:
        yield running


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key-0123456789", "Basic Y2xpZW50OmtleQ==", "Bearer", "client-key-0123456789abcdef"],
    ids=["missing", "wrong", "basic", "empty", "no-scheme"],
)
def test_missing_or_wrong_key_is_401(live, method, path, header):
    headers = {} if header is None else {"Authorization": header}
    sent = live.http.request(method, path, headers=headers, json={})
    assert sent.status_code == 401, sent.text
    assert sent.json()["code"] == "unauthorized" and sent.headers["www-authenticate"] == "Bearer"


def test_a_key_outside_ascii_is_refused_not_crashed(live):
    sent = live.http.get("/v1/model", headers=[(b"Authorization", b"Bearer cl\xe9-\xff")])
    assert sent.status_code == 401 and sent.json()["code"] == "unauthorized"


def test_client_key_on_admin_route_is_403(live, auth):
    sent = live.http.post("/v1/admin/reload", headers=auth)
    assert sent.status_code == 403 and sent.json()["code"] == "forbidden"


def test_admin_key_reloads_and_calls_client_routes(live, registry, admin):
    report = live.http.post("/v1/admin/reload", headers=admin)
    assert report.status_code == 200 and report.json()["outcome"] == "unchanged"
    assert live.http.get("/v1/model", headers=admin).status_code == 200
    assert live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=admin).status_code == 200


def test_auth_comes_before_the_body_is_judged(live):
    sent = live.http.post("/v1/forecast", json={"bars": "not a list"})  # no key and a bad body: 401, not 422
    assert sent.status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_health_metrics_and_docs_are_open(live, path):
    assert live.http.get(path).status_code == 200


def test_openapi_documents_the_bearer_scheme_and_errors(live):
    spec = live.http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    forecast = spec["paths"]["/v1/forecast"]["post"]
    assert forecast["security"] == [{"ApiKey": []}]
    assert forecast["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ForecastRequest")
    assert forecast["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ForecastResponse")
    assert {"400", "401", "413", "422", "500", "503"} <= set(forecast["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]
    codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
    assert {"unauthorized", "forbidden", "too_many_rows", "invalid_input", "internal_error"} <= set(codes)


def test_key_comparison():
    keys = ("alpha-key", "beta-key")
    assert matches("beta-key", keys) and not matches("beta-ke", keys) and not matches("", keys)
    assert not matches("é", keys)  # non-ASCII text compares as bytes, never raises
    assert role_of("root", ("user",), ("root",)) is Role.ADMIN
    assert role_of("user", ("user",), ("root",)) is Role.CLIENT
    assert role_of("both", ("both",), ("both",)) is Role.ADMIN
    assert role_of("nobody", ("user",), ("root",)) is None
