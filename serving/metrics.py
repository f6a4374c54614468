"""Prometheus metrics of one app, in its own registry (so several apps in one process, as in tests, never clash).

- ``forecaster_http_requests_total{method, route, status}`` and ``forecaster_http_request_duration_seconds``
  (histogram, same labels): ``route`` is the route template (``/v1/forecast``), never the raw path; requests that
  match no route count as ``<unmatched>``.
- ``forecaster_inference_duration_seconds{kind}``: the model's forecast (``forecast``) and the drift engine
  (``drift``), each timed apart.
- ``forecaster_model_version{model}``: the registered version serving (one series); ``forecaster_model_reloads_
  total{outcome}``: loaded, swapped, unchanged, failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from serving.models import LoadedModel, Reload

UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's collectors; :meth:`render` is the body of ``GET /metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "forecaster_http_requests", "HTTP requests by route template and status", labels, registry=self.registry
        )
        self.latency = Histogram(
            "forecaster_http_request_duration_seconds",
            "HTTP request latency (seconds) by route template and status",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "forecaster_inference_duration_seconds",
            "time spent in the model's forecast and in the drift engine (seconds)",
            ("kind",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "forecaster_model_version", "registered version of the model serving", ("model",), registry=self.registry
        )
        self.reloads = Counter(
            "forecaster_model_reloads", "model reloads by outcome", ("outcome",), registry=self.registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    @contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        """Time the block into ``forecaster_inference_duration_seconds{kind}`` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.inference.labels(kind).observe(time.perf_counter() - start)

    def on_reload(self, report: Reload, current: LoadedModel | None) -> None:
        """:class:`serving.models.ModelHolder`'s callback: count the reload, show the serving version."""
        self.reloads.labels(report.outcome).inc()
        if current is None:
            return
        self.model_version.clear()
        version = current.version
        self.model_version.labels(current.name or current.target.uri).set(
            float(version) if version is not None and version.isdigit() else 0.0
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
