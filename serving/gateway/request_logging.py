"""Request logging in the gateway: each model's `logging` (YAML) writes TF Serving's PredictionLog
records (serving/request_log.py), so traffic to backends that cannot log (real TF Serving) is captured.

A record holds what the backend was sent and answered: typed calls (PredictHousing, ClassifyFashion,
Predict) are logged as the backend Predict they became, pass-through Predict, Classify and Regress as
they were forwarded. Its `log_metadata.model_spec` names the gateway's model (the request inside names
the backend's) and the version that answered. Each worker process writes its own files (the process
id is in their names). Counters: `tfgate_gateway_request_log_records_total{model,outcome}`.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Counter

from .. import request_log
from ..status import ServingError
from .config import GatewayConfig

RECORDS = Counter("tfgate_gateway_request_log_records_total", "Requests picked for the request log, by "
                  "outcome: written; dropped (queue full or shutting down); failed (write error).",
                  ["model", "outcome"])


def _count(model: str, outcome: str, n: int) -> None:
    RECORDS.labels(model, outcome).inc(n)


class GatewayLogs:
    def __init__(self, cfg: GatewayConfig):
        rl = cfg.request_log
        self.logs = request_log.RequestLogs(max_file_bytes=rl.max_file_bytes, max_file_seconds=rl.max_file_seconds,
                                            queue_records=rl.queue_records, listener=_count)
        self.logs.configure({name: request_log.LoggingSpec(m.logging.filename_prefix, m.logging.sampling_rate)
                             for name, m in cfg.models.items() if m.logging.filename_prefix})
        self.models = self.logs.models  # name -> ModelLogger, only the models that log

    async def call(self, model: str, kind: str, request: bytes, send):
        """`await send()` (the backend call, returning the response bytes), logged for `model` when it logs."""
        logger = self.models.get(model)
        if logger is None:
            return await send()
        t0 = time.monotonic()
        try:
            response = await send()
        except ServingError as exc:
            logger.log(kind, request, None, version=None, status=exc.code.name, message=exc.message,
                       latency=time.monotonic() - t0, origin="gateway")
            raise
        logger.log(kind, request, response, version=None, latency=time.monotonic() - t0, origin="gateway")
        return response

    async def close(self) -> None:
        """Write every accepted record and finish the files (SIGTERM)."""
        await asyncio.to_thread(self.logs.close)
