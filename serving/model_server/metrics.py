"""Prometheus metrics, named after TF Serving's where it has one (`:tensorflow:serving:...`).

prometheus-client appends `_total` to counters and `_bucket/_sum/_count` to histograms.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# The label value of a model or signature name that the server does not serve: requests naming
# one are still counted, but a client cannot add series by inventing names.
UNKNOWN = "__unknown__"
_US = (50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(":tensorflow:serving:request_count", "Requests by model, signature, API and "
                                "status.", ["model_name", "signature_name", "API", "status"], registry=r)
        self.latency = Histogram(":tensorflow:serving:request_latency", "Request latency in microseconds.",
                                 ["model_name", "signature_name", "API", "status"], buckets=_US, registry=r)
        self.batch_size = Histogram(":tensorflow:serving:batching_session:processed_batch_size",
                                    "Tasks merged per executed batch (before padding).",
                                    ["model_name", "signature_name"], buckets=_SIZES, registry=r)
        self.padding = Histogram(":tensorflow:serving:batching_session:padding_size",
                                 "Rows of padding added per batch.", ["model_name", "signature_name"],
                                 buckets=(0,) + _SIZES, registry=r)
        self.queueing = Histogram(":tensorflow:serving:batching_session:queuing_latency",
                                  "Time a task waited in the batch queue, microseconds.",
                                  ["model_name", "signature_name"], buckets=_US, registry=r)
        self.loads = Counter(":tensorflow:cc:saved_model:load_attempt_count", "SavedModel load attempts.",
                             ["model_name", "status"], registry=r)
        self.load_latency = Histogram(":tensorflow:cc:saved_model:load_latency", "Load time (with warm-up), "
                                      "microseconds.", ["model_name"],
                                      buckets=(1e5, 5e5, 1e6, 2e6, 5e6, 1e7, 3e7, 1e8), registry=r)
        self.warmups = Counter(":tensorflow:serving:model_warmup_records", "Warm-up records replayed.",
                               ["model_name"], registry=r)

        # Labelled children by label tuple: `.labels()` validates and locks on every call.
        self._request_children: dict[tuple, tuple] = {}
        self._batch_children: dict[tuple, tuple] = {}

    def request(self, model: str, signature: str, api: str, status: str, seconds: float) -> None:
        key = (model, signature, api, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        children[0].inc()
        children[1].observe(seconds * 1e6)

    def batch(self, model: str, signature: str, size: int, padding: int, waits: list[float]) -> None:
        key = (model, signature)
        children = self._batch_children.get(key)
        if children is None:
            children = self._batch_children[key] = (self.batch_size.labels(*key), self.padding.labels(*key),
                                                    self.queueing.labels(*key))
        children[0].observe(size)
        children[1].observe(padding)
        q = children[2]
        for w in waits:
            q.observe(w * 1e6)

    def load(self, model: str, status: str, seconds: float) -> None:
        self.loads.labels(model, status).inc()
        if status == "ok":
            self.load_latency.labels(model).observe(seconds * 1e6)

    def warmup(self, model: str, records: int) -> None:
        self.warmups.labels(model).inc(records)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
