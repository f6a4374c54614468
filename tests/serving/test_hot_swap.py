"""Hot swap against the real registry: the alias moves while a client keeps asking (no request fails, the version
served switches once); a version that cannot load leaves the old one serving and /readyz says why; a server that
starts without a model becomes ready once one is registered."""

from __future__ import annotations

import threading
from dataclasses import replace

POLL = 0.1


def _forecasting(live, bars, auth, answers: list, stop: threading.Event) -> None:
    while not stop.is_set():
        sent = live.http.post("/v1/forecast", json={"bars": bars}, headers=auth)
        answers.append((sent.status_code, sent.json().get("model", {}).get("version")))


def test_alias_change_serves_the_new_version_without_a_failed_request(registry, serve, auth, wait):
    name = registry.new_model("drift-forecaster-swap", versions=2)
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with serve(registry.settings(name, poll_seconds=POLL)) as live:
        client = threading.Thread(target=_forecasting, args=(live, registry.bars(), auth, answers, stop))
        client.start()
        try:
            wait(lambda: len(answers) >= 5, timeout=60, what="requests before the move")
            registry.set_champion(name, "2")
            wait(lambda: any(v == "2" for _, v in answers), timeout=60, what="version 2 to be served")
            seen = len(answers)
            wait(lambda: len(answers) >= seen + 5, timeout=60, what="requests after the swap")
        finally:
            stop.set()
            client.join(60)
        ready = live.http.get("/readyz").json()
        metrics = live.http.get("/metrics").text
    assert all(status == 200 for status, _ in answers), answers
    versions = [v for _, v in answers]
    switch = versions.index("2")
    assert switch >= 5 and set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}
    assert ready["model_version"] == "2" and ready["last_reload_error"] is None and ready["watching"] is True
    assert 'forecaster_model_reloads_total{outcome="swapped"} 1.0' in metrics
    assert 'forecaster_model_version{model="drift-forecaster-swap"} 2.0' in metrics


def test_broken_version_keeps_the_old_one_serving(registry, serve, auth, admin, wait):
    name = registry.new_model("drift-forecaster-broken")
    with serve(registry.settings(name, poll_seconds=POLL)) as live:
        broken = registry.add_broken_version(name)
        registry.set_champion(name, broken)
        ready = wait(
            lambda: (r := live.http.get("/readyz").json())["last_reload_error"] and r,
            timeout=60,
            what="/readyz to report the failed load",
        )
        assert ready["ready"] is True and ready["model_version"] == "1"
        assert f"version {broken} of {name} failed to load: UnpicklingError" in ready["last_reload_error"]
        sent = live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=auth)
        assert sent.status_code == 200 and sent.json()["model"]["version"] == "1"

        again = live.http.post("/v1/admin/reload", headers=admin).json()  # the admin reload tries it again
        assert again["outcome"] == "failed" and again["target_version"] == broken
        assert again["model_version"] == again["previous_version"] == "1" and "UnpicklingError" in again["error"]
        assert 'forecaster_model_reloads_total{outcome="failed"}' in live.http.get("/metrics").text

        registry.set_champion(name, "1")  # rolled back: nothing is wrong any more
        wait(
            lambda: live.http.get("/readyz").json()["last_reload_error"] is None,
            timeout=60,
            what="the error to clear once the alias is back on the serving version",
        )


def test_no_model_at_startup_then_registered(registry, serve, auth, admin):
    name = "drift-forecaster-later"
    with serve(registry.settings(name)) as live:
        ready = live.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert f"cannot resolve models:/{name}@champion" in ready.json()["last_reload_error"]
        assert live.http.get("/healthz").status_code == 200
        sent = live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=auth)
        assert sent.status_code == 503 and sent.json()["code"] == "model_unavailable"
        assert "GET /readyz" in sent.json()["message"]

        registry.new_model(name)
        report = live.http.post("/v1/admin/reload", headers=admin).json()
        assert report["outcome"] == "loaded" and report["model_version"] == "1" and report["error"] is None
        assert live.http.get("/readyz").status_code == 200
        assert live.http.post("/v1/forecast", json={"bars": registry.bars()}, headers=auth).status_code == 200


def test_a_pinned_version_is_not_watched(registry, serve, auth):
    name = registry.new_model("drift-forecaster-pinned", versions=2)
    pinned = f"models:/{name}/1"
    with serve(replace(registry.settings(poll_seconds=POLL), model_uri=pinned)) as live:
        registry.set_champion(name, "2")
        ready = live.http.get("/readyz").json()
        assert ready["watching"] is False and ready["model_version"] == "1"
        info = live.http.get("/v1/model", headers=auth).json()
        assert info["uri"] == info["source_uri"] == pinned
