"""Where a call goes: the model's config and backend pool (and the caller's right to the model), the
model's size limit and deadline, which version runs it (explicit version or label, else the traffic
split, sticky by a metadata key), and the Predict sent to the backends with its shadow copy."""

from __future__ import annotations

import hashlib
import random
import time

import grpc

from ..status import ServingError, invalid
from . import metrics, wire
from .backends import Pool
from .calls import Call
from .config import GatewayConfig, ModelConfig
from .request_logging import GatewayLogs
from .shadow import PREDICT_PATH, Shadow


class Router:
    def __init__(self, cfg: GatewayConfig, pools: dict[str, Pool], shadow: Shadow):
        self.cfg = cfg
        self.pools = pools
        self.shadow = shadow
        self.request_logs = GatewayLogs(cfg)  # each model's `logging` (issue 17)

    def model(self, call: Call, name: str, field: str) -> tuple[ModelConfig, Pool]:
        """The model `name` (from request field `field`) if this gateway serves it to this caller."""
        if not name:
            raise invalid(f"{field}: model name is required")
        m = self.cfg.models.get(name)
        if m is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"{field}: model {name!r} is not served by this gateway")
        call.model = name
        if call.principal is not None and not call.principal.may_use(name):
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED, f"this token may not use model {name!r}")
        return m, self.pools[name]

    @staticmethod
    def deadline(call: Call, m: ModelConfig) -> float:
        return min(call.deadline, time.monotonic() + m.deadline_ms / 1000)

    @staticmethod
    def check_size(m: ModelConfig, size: int, field: str) -> None:
        if size > m.max_message_bytes:
            raise invalid(f"{field}: request is {size} bytes, over this model's max_message_bytes "
                          f"({m.max_message_bytes})")

    @staticmethod
    def route(call: Call, m: ModelConfig, version: int | None, label: str, split: bool = True) -> wire.ModelSpec:
        """Which version the backend runs: explicit version/label, else the traffic split (only
        when `split`: inference calls)."""
        if split and version is None and not label and m.split:
            sticky = None
            if m.sticky_key:
                sticky = next((v for k, v in call.context.invocation_metadata() or ()
                               if k == m.sticky_key), None)
            if sticky is not None:
                digest = hashlib.blake2b(str(sticky).encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest, "big") % 100
            else:
                bucket = random.randrange(100)
            for lab, pct in m.split.items():
                if bucket < pct:
                    label = lab
                    break
                bucket -= pct
            metrics.split_counter(call.model, label).inc()
        call.label = label
        if label and label in m.labels:
            return wire.ModelSpec(name=m.backend_model_name, version=m.labels[label])
        return wire.ModelSpec(name=m.backend_model_name, version=version, label=label)

    async def predict(self, call: Call, m: ModelConfig, pool: Pool, request: bytes) -> bytes:
        """A serialized PredictRequest to the model's backends; a copy to the shadow version if configured."""
        async def send() -> bytes:
            response, call.retries = await pool.call(PREDICT_PATH, request, call.backend_metadata(),
                                                     self.deadline(call, m))
            return response

        # logged as the backend saw it: a typed call as the Predict it became
        response = await self.request_logs.call(call.model, "predict_log", request, send)
        if m.shadow.label and random.random() * 100 < m.shadow.percent:
            self.shadow.send(call, m, pool, request, response)
        return response
