"""The model server's data plane, shared by the gRPC and REST front ends: resolve the version, hold
it while the request runs, run through the batcher (or straight on the thread pool), count metrics."""

from __future__ import annotations

import asyncio
import time

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2

from .. import tensor_limits
from ..status import ServingError, invalid
from . import inference, tensors
from .manager import Manager
from .metrics import UNKNOWN

# The PredictionLog field each API's requests are logged in (request logging, issue 17).
LOG_KINDS = {"predict": "predict_log", "classify": "classify_log", "regress": "regress_log"}


class DataPlane:
    def __init__(self, manager: Manager, executor, batcher=None, metrics=None,
                 max_tensor_bytes: int = tensor_limits.MAX_MESSAGE_BYTES,
                 options: inference.InferenceOptions = inference.DEFAULTS):
        self.manager = manager
        self.executor = executor
        self.batcher = batcher
        self.metrics = metrics
        self.max_tensor_bytes = max_tensor_bytes  # --max_request_tensor_bytes (server.py)
        self.options = options

    async def _run(self, servable, sig, inputs, outputs=None):
        if self.batcher is not None:
            return await self.batcher.run(servable, sig, inputs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, servable.run, sig, inputs, outputs)

    async def _timed(self, api: str, spec, coro_fn, request=None):
        t0 = time.monotonic()
        status = "OK"
        response = None
        message = ""
        try:
            response = await coro_fn()
            return response
        except ServingError as e:
            status = e.code.name
            message = e.message
            raise
        except asyncio.CancelledError:
            status = grpc.StatusCode.CANCELLED.name
            raise
        finally:
            elapsed = time.monotonic() - t0
            if self.metrics is not None and spec.name:
                self.metrics.request(*self._labels(spec), api, status, elapsed)
            logger = self.manager.request_logs.models.get(spec.name) if request is not None else None
            if logger is not None:  # the model has a logging_config; never blocks (bounded queue)
                served = response.model_spec if response is not None else spec
                logger.log(LOG_KINDS[api], request, response, version=served.version.value,
                           signature=served.signature_name or spec.signature_name or "serving_default",
                           status=status, latency=elapsed, origin="model_server", message=message)

    def _labels(self, spec) -> tuple[str, str]:
        """Metric labels: names the server does not serve share one bucket, so clients cannot grow
        the number of series."""
        model = self.manager.models.get(spec.name)
        if model is None:
            return UNKNOWN, UNKNOWN
        sig = spec.signature_name or "serving_default"
        for v in model.versions.values():
            if v.servable is not None and sig in v.servable.signatures:
                return spec.name, sig
        return spec.name, UNKNOWN

    async def predict(self, req):
        async def go():
            tensors.check_request(req.inputs, self.max_tensor_bytes)  # before anything is decoded
            v = self.manager.resolve(req.model_spec, req.HasField("model_spec"))
            with self.manager.hold(v) as servable:
                sig, inputs, wanted = inference.predict_prepare(servable, req)
                out = await self._run(servable, sig, inputs, wanted)
                return inference.predict_build(servable, sig, out, wanted, self.options)
        return await self._timed("predict", req.model_spec, go, req)

    async def _on_examples(self, api: str, req, prepare, build):
        """Classify and Regress: tf.Examples in, one result per example out."""
        async def go():
            tensors.check_examples(req.input, self.max_tensor_bytes)
            v = self.manager.resolve(req.model_spec, req.HasField("model_spec"))
            with self.manager.hold(v) as servable:
                sig, inputs = prepare(servable, req.model_spec, req.input, self.options)
                n = len(next(iter(inputs.values())))
                out = await self._run(servable, sig, inputs)
                return build(servable, sig, out, n)
        return await self._timed(api, req.model_spec, go, req)

    async def classify(self, req):
        return await self._on_examples("classify", req, inference.classify_prepare, inference.classify_build)

    async def regress(self, req):
        return await self._on_examples("regress", req, inference.regress_prepare, inference.regress_build)

    async def multi_inference(self, req):
        inference.multi_inference_check(req)
        tensors.check_examples(req.input, self.max_tensor_bytes)  # each task decodes it in turn
        spec = req.tasks[0].model_spec
        v = self.manager.resolve(spec, True)
        with self.manager.hold(v) as servable:
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, inference.multi_inference_sync, servable, req, self.options)

    async def metadata(self, req):
        v = self.manager.resolve(req.model_spec, req.HasField("model_spec"))
        if not req.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for f in req.metadata_field:
            if f != "signature_def":
                raise invalid(f"Metadata field {f} is not supported")
        servable = v.servable
        resp = get_model_metadata_pb2.GetModelMetadataResponse()
        resp.model_spec.name = servable.name
        resp.model_spec.version.value = servable.version
        sdm = get_model_metadata_pb2.SignatureDefMap()
        for k, sd in servable.signature_def_map.items():
            sdm.signature_def[k].CopyFrom(sd)
        resp.metadata["signature_def"].Pack(sdm)
        return resp

    def status(self, req):
        return self.manager.status(req.model_spec, req.HasField("model_spec"))
