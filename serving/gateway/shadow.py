"""Shadow traffic: a copy of a Predict sent to another version (`models.<name>.shadow`), its answer
compared with the caller's and counted (match, mismatch, error, dropped). A shadow never affects the
caller: it runs after the answer, in the background, bounded in number."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from tensorflow_serving.apis import predict_pb2

from ..tfs_protos import PREDICTION_SERVICE, method_path
from . import metrics, tensors, wire
from .backends import Pool
from .calls import Call
from .config import ModelConfig

PREDICT_PATH = method_path(PREDICTION_SERVICE, "Predict")
MAX_SHADOW_IN_FLIGHT = 64


class Shadow:
    def __init__(self):
        self.in_flight = 0
        self._tasks: set[asyncio.Task] = set()

    def send(self, call: Call, m: ModelConfig, pool: Pool, request: bytes, primary: bytes) -> None:
        """Copies `request` (answered with `primary`) to the shadow version in the background."""
        label = m.shadow.label
        if self.in_flight >= MAX_SHADOW_IN_FLIGHT:
            metrics.SHADOW.labels(call.model, label, "dropped").inc()
            return
        if label in m.labels:
            spec = wire.ModelSpec(name=m.backend_model_name, version=m.labels[label])
        elif label.isdigit():
            spec = wire.ModelSpec(name=m.backend_model_name, version=int(label))
        else:
            spec = wire.ModelSpec(name=m.backend_model_name, label=label)
        old = wire.request_model_spec(request)
        spec.signature_name = old.signature_name
        shadow_request = wire.replace_model_spec(request, spec)
        model, rid = call.model, call.request_id

        async def run():
            self.in_flight += 1
            try:
                raw, _ = await pool.call(PREDICT_PATH, shadow_request,
                                         (("x-request-id", rid), ("x-tfgate-shadow", "1")),
                                         time.monotonic() + m.deadline_ms / 1000)
                same = same_outputs(predict_pb2.PredictResponse.FromString(primary),
                                    predict_pb2.PredictResponse.FromString(raw))
                result = "match" if same else "mismatch"
            except Exception:  # a shadow never affects the caller
                result = "error"
            finally:
                self.in_flight -= 1
            metrics.SHADOW.labels(model, label, result).inc()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()


def same_outputs(a: predict_pb2.PredictResponse, b: predict_pb2.PredictResponse) -> bool:
    if set(a.outputs) != set(b.outputs):
        return False
    for key in a.outputs:
        x, y = tensors.to_numpy(a.outputs[key]), tensors.to_numpy(b.outputs[key])
        if x.shape != y.shape:
            return False
        if x.dtype.kind == "f":
            if not np.allclose(x, y, rtol=1e-4, atol=1e-6, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True
