"""Prometheus metrics of the gateway (multi-process aware for --workers N)."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("tfgate_gateway_requests_total", "Requests by model, method and gRPC status.",
                   ["model", "method", "code"])
LATENCY = Histogram("tfgate_gateway_request_seconds", "Whole-call latency at the gateway.",
                    ["model", "method"], buckets=_BUCKETS)
BACKEND_LATENCY = Histogram("tfgate_gateway_backend_seconds", "Latency of one backend attempt.",
                            ["model", "target", "code"], buckets=_BUCKETS)
RETRIES = Counter("tfgate_gateway_retries_total", "Backend attempts retried on UNAVAILABLE.", ["model"])
IN_FLIGHT = Gauge("tfgate_gateway_in_flight", "Requests being handled.", multiprocess_mode="livesum")
REJECTED = Counter("tfgate_gateway_rejected_total", "Requests refused at the concurrency limit.")
EJECTIONS = Counter("tfgate_gateway_backend_ejections_total", "Backends taken out of rotation.",
                    ["model", "target"])
HEALTHY_TARGETS = Gauge("tfgate_gateway_backend_healthy", "1 if a backend target is in rotation.",
                        ["model", "target"], multiprocess_mode="livemin")
SPLIT = Counter("tfgate_gateway_split_total", "Requests routed by the traffic split, by label.",
                ["model", "label"])
SHADOW = Counter("tfgate_gateway_shadow_total",
                 "Shadow copies by result: match, mismatch, error, dropped.", ["model", "label", "result"])


# Label children looked up once: `.labels()` builds a key and takes a lock on every call. Every
# label value here comes from the config or a fixed set (models are checked before they are
# used as a label), so the caches stay small.
@functools.cache
def request_children(model: str, method: str, code: str):
    return REQUESTS.labels(model, method, code), LATENCY.labels(model, method)


@functools.cache
def backend_latency(model: str, target: str, code: str):
    return BACKEND_LATENCY.labels(model, target, code)


@functools.cache
def split_counter(model: str, label: str):
    return SPLIT.labels(model, label)
