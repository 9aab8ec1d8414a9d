"""The gateway server: tfgate.v1.InferenceGateway, TF Serving pass-through, health, reflection."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import os
import random
import signal
import time

import grpc
import numpy as np
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2, predict_pb2

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from . import logs, metrics, signatures, tensors, wire
from .auth import Principal, TokenStore
from .backends import BackendError, Pool
from .config import GatewayConfig, ModelConfig
from .tfs_protos import register_service_descriptors

log = logging.getLogger("tfgate.gateway")
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
PREDICT_PATH = f"/{PREDICTION_SERVICE}/Predict"
# Pass-through methods: name -> is the model spec nested (MultiInference's tasks[0])?
PASSTHROUGH = {
    PREDICTION_SERVICE: {"Predict": False, "Classify": False, "Regress": False,
                         "GetModelMetadata": False, "MultiInference": True},
    MODEL_SERVICE: {"GetModelStatus": False},
}
# Only inference is split between labels: status and metadata without a version pass through
# unchanged, so a stock client sees every version and the backend's default, as on a direct call.
SPLIT_METHODS = frozenset({"Predict", "Classify", "Regress", "MultiInference"})
HOUSING_FLOATS = ["longitude", "latitude", "housing_median_age", "total_rooms", "population",
                  "households", "median_income"]
_STATE = {
    get_model_status_pb2.ModelVersionStatus.START: pb.MODEL_VERSION_STATE_START,
    get_model_status_pb2.ModelVersionStatus.LOADING: pb.MODEL_VERSION_STATE_LOADING,
    get_model_status_pb2.ModelVersionStatus.AVAILABLE: pb.MODEL_VERSION_STATE_AVAILABLE,
    get_model_status_pb2.ModelVersionStatus.UNLOADING: pb.MODEL_VERSION_STATE_UNLOADING,
    get_model_status_pb2.ModelVersionStatus.END: pb.MODEL_VERSION_STATE_END,
}
_STATE_RANK = {pb.MODEL_VERSION_STATE_AVAILABLE: 5, pb.MODEL_VERSION_STATE_LOADING: 4,
               pb.MODEL_VERSION_STATE_START: 3, pb.MODEL_VERSION_STATE_UNLOADING: 2,
               pb.MODEL_VERSION_STATE_END: 1}
MAX_SHADOW_IN_FLIGHT = 64


class GatewayError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


def _invalid(details: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, details)


class _Undecodable:
    """Request bytes that do not parse as the method's message: answered INVALID_ARGUMENT by
    `handled` (grpc itself would answer UNKNOWN for a client's mistake)."""

    def __init__(self, message: str):
        self.message = message


def _lenient(cls):
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except Exception as exc:
            return _Undecodable(f"request: not a valid {cls.DESCRIPTOR.full_name} ({exc.__class__.__name__})")

    return parse


class Call:
    """Per-request state: id, deadline, who is calling, what to log."""

    __slots__ = ("method", "request_id", "model", "principal", "retries", "label", "context", "deadline")

    def __init__(self, method: str, context, request_id: str):
        self.method, self.context, self.request_id = method, context, request_id
        self.model, self.principal, self.retries, self.label = "", None, 0, ""
        self.deadline = 0.0

    def backend_metadata(self) -> tuple:
        return (("x-request-id", self.request_id),)


def handled(method: str):
    """Wraps an RPC: request id, concurrency limit, auth, status mapping, metrics, access log."""

    def deco(fn):
        @functools.wraps(fn)
        async def wrapper(self: Gateway, request, context):
            md = context.invocation_metadata() or ()
            rid = auth = None
            for k, v in md:
                if k == "x-request-id":
                    rid = v[:128]
                elif k == "authorization":
                    auth = v
            call = Call(method, context, rid or os.urandom(16).hex())
            context.set_trailing_metadata((("x-request-id", call.request_id),))
            t0 = time.perf_counter()
            code = grpc.StatusCode.OK
            details = ""
            if self.in_flight >= self.cfg.max_concurrent_requests:
                metrics.REJECTED.inc()
                code, details = grpc.StatusCode.RESOURCE_EXHAUSTED, (
                    f"gateway at its concurrency limit ({self.cfg.max_concurrent_requests}); retry later")
                self._record(call, code, t0)
            else:
                self.in_flight += 1
                metrics.IN_FLIGHT.inc()
                try:
                    if self.tokens is not None:
                        call.principal = self.tokens.authenticate(auth)
                        if call.principal is None:
                            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED,
                                               "missing or unknown bearer token (metadata 'authorization')")
                    if type(request) is _Undecodable:
                        raise _invalid(request.message)
                    remaining = context.time_remaining()
                    call.deadline = time.monotonic() + (remaining if remaining is not None else 3600.0)
                    return await fn(self, request, context, call)
                except GatewayError as exc:
                    code, details = exc.code, exc.details
                except BackendError as exc:
                    code, details = exc.code, exc.details
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    log.exception("unexpected error", extra={"request_id": call.request_id})
                    code, details = grpc.StatusCode.INTERNAL, f"gateway error (request id {call.request_id})"
                finally:
                    self.in_flight -= 1
                    metrics.IN_FLIGHT.dec()
                    self._record(call, code, t0)
            await context.abort(code, details)

        return wrapper

    return deco


class Gateway(pb_grpc.InferenceGatewayServicer):
    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self.in_flight = 0
        self.shadow_in_flight = 0
        self.tokens = TokenStore(cfg.auth.tokens_file) if cfg.auth.tokens_file else None
        self.pools = {name: Pool(name, m.backend_model_name, m.targets, cfg.backend, m.max_message_bytes)
                      for name, m in cfg.models.items()}
        self._tasks: set[asyncio.Task] = set()
        self.signatures = signatures.Cache()

    # ----- shared steps ------------------------------------------------------------------------
    def _record(self, call: Call, code: grpc.StatusCode, t0: float) -> None:
        elapsed = time.perf_counter() - t0
        model = call.model or "-"
        count, latency = metrics.request_children(model, call.method, code.name)
        count.inc()
        latency.observe(elapsed)
        if logs.access_enabled():
            logs.access({
                "request_id": call.request_id, "method": call.method, "model": model,
                "code": code.name, "ms": round(elapsed * 1000, 3), "retries": call.retries,
                "label": call.label,
                "principal": call.principal.index if isinstance(call.principal, Principal) else None})

    def _model(self, call: Call, name: str, field: str) -> tuple[ModelConfig, Pool]:
        if not name:
            raise _invalid(f"{field}: model name is required")
        m = self.cfg.models.get(name)
        if m is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND,
                               f"{field}: model {name!r} is not served by this gateway")
        call.model = name
        if call.principal is not None and not call.principal.may_use(name):
            raise GatewayError(grpc.StatusCode.PERMISSION_DENIED, f"this token may not use model {name!r}")
        return m, self.pools[name]

    def _deadline(self, call: Call, m: ModelConfig) -> float:
        return min(call.deadline, time.monotonic() + m.deadline_ms / 1000)

    def _route(self, call: Call, m: ModelConfig, version: int | None, label: str,
               split: bool = True) -> wire.ModelSpec:
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

    async def _predict_bytes(self, call: Call, m: ModelConfig, pool: Pool, request: bytes) -> bytes:
        response, call.retries = await pool.call(PREDICT_PATH, request, call.backend_metadata(),
                                                 self._deadline(call, m))
        if m.shadow.label and random.random() * 100 < m.shadow.percent:
            self._shadow(call, m, pool, request, response)
        return response

    def _shadow(self, call: Call, m: ModelConfig, pool: Pool, request: bytes, primary: bytes) -> None:
        label = m.shadow.label
        if self.shadow_in_flight >= MAX_SHADOW_IN_FLIGHT:
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
            self.shadow_in_flight += 1
            try:
                raw, _ = await pool.call(PREDICT_PATH, shadow_request,
                                         (("x-request-id", rid), ("x-tfgate-shadow", "1")),
                                         time.monotonic() + m.deadline_ms / 1000)
                same = _same_outputs(predict_pb2.PredictResponse.FromString(primary),
                                     predict_pb2.PredictResponse.FromString(raw))
                result = "match" if same else "mismatch"
            except Exception:  # a shadow never affects the caller
                result = "error"
            finally:
                self.shadow_in_flight -= 1
            metrics.SHADOW.labels(model, label, result).inc()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _served_by(call: Call, resp: predict_pb2.PredictResponse) -> pb.ServedBy:
        return pb.ServedBy(model_name=call.model, version=resp.model_spec.version.value, label=call.label)

    @staticmethod
    def _tfs_request(spec: wire.ModelSpec, signature: str) -> predict_pb2.PredictRequest:
        ms = model_pb2.ModelSpec(name=spec.name, signature_name=signature)
        if spec.version is not None:
            ms.version.CopyFrom(wrappers_pb2.Int64Value(value=spec.version))
        elif spec.label:
            ms.version_label = spec.label
        return predict_pb2.PredictRequest(model_spec=ms)

    @staticmethod
    def _ref(ref: pb.ModelRef) -> tuple[int | None, str]:
        which = ref.WhichOneof("version_choice")
        if which == "version":
            if ref.version < 1:
                raise _invalid("model.version: must be >= 1")
            return ref.version, ""
        if which == "label":
            if not ref.label:
                raise _invalid("model.label: must not be empty")
            return None, ref.label
        return None, ""

    @staticmethod
    def _check_size(m: ModelConfig, size: int, field: str) -> None:
        if size > m.max_message_bytes:
            raise _invalid(f"{field}: request is {size} bytes, over this model's max_message_bytes "
                           f"({m.max_message_bytes})")

    @staticmethod
    def _output(resp: predict_pb2.PredictResponse, key: str, model: str) -> np.ndarray:
        if key not in resp.outputs:
            raise GatewayError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"model {model!r} returned no output {key!r} "
                               f"(outputs: {sorted(resp.outputs)})")
        return tensors.to_numpy(resp.outputs[key])

    # ----- tfgate.v1.InferenceGateway --------------------------------------------------------
    @handled("PredictHousing")
    async def PredictHousing(self, request: pb.PredictHousingRequest, context, call: Call):
        m, pool = self._model(call, request.model.name or "housing", "model.name")
        version, label = self._ref(request.model)
        recs = request.records
        n = len(recs)
        if n == 0:
            raise _invalid("records: at least one record is required")
        if n > m.max_records:
            raise _invalid(f"records: {n} records, over this model's max_records ({m.max_records})")
        self._check_size(m, request.ByteSize(), "records")
        req = self._tfs_request(self._route(call, m, version, label), m.signature_name)
        for name in HOUSING_FLOATS:
            col = np.fromiter((getattr(r, name) for r in recs), dtype=np.float32, count=n)
            bad = np.flatnonzero(~np.isfinite(col))
            if bad.size:
                raise _invalid(f"records[{bad[0]}].{name}: must be a finite number")
            req.inputs[name].CopyFrom(tensors.numpy_tensor_proto(col, types_pb2.DT_FLOAT))
        beds = np.fromiter((r.total_bedrooms if r.HasField("total_bedrooms") else np.nan for r in recs),
                           dtype=np.float32, count=n)
        req.inputs["total_bedrooms"].CopyFrom(tensors.numpy_tensor_proto(beds, types_pb2.DT_FLOAT))
        ocean = []
        for i, r in enumerate(recs):
            if not r.ocean_proximity:
                raise _invalid(f"records[{i}].ocean_proximity: must not be empty")
            ocean.append(r.ocean_proximity.encode())
        req.inputs["ocean_proximity"].CopyFrom(
            tensors.numpy_tensor_proto(np.array(ocean, dtype=object), types_pb2.DT_STRING))
        raw = await self._predict_bytes(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        values = self._output(resp, "median_house_value", call.model).reshape(-1)
        return pb.PredictHousingResponse(median_house_values=values.astype(np.float32).tolist(),
                                         served_by=self._served_by(call, resp))

    @handled("ClassifyFashion")
    async def ClassifyFashion(self, request: pb.ClassifyFashionRequest, context, call: Call):
        m, pool = self._model(call, request.model.name or "fashion", "model.name")
        version, label = self._ref(request.model)
        n = len(request.images)
        if n == 0:
            raise _invalid("images: at least one image is required")
        if n > m.max_records:
            raise _invalid(f"images: {n} images, over this model's max_records ({m.max_records})")
        k = request.top_k or 1
        if not 1 <= k <= len(m.class_names):
            raise _invalid(f"top_k: must be between 1 and {len(m.class_names)}, got {request.top_k}")
        self._check_size(m, request.ByteSize(), "images")
        if any(img.WhichOneof("data") == "encoded" for img in request.images):
            pixels = await asyncio.to_thread(_decode_images, request.images)
        else:
            pixels = _decode_images(request.images)
        req = self._tfs_request(self._route(call, m, version, label), m.signature_name)
        req.inputs["image"].CopyFrom(tensors.numpy_tensor_proto(pixels, types_pb2.DT_UINT8))
        raw = await self._predict_bytes(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        probs = self._output(resp, "probabilities", call.model).reshape(n, -1)
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        names = m.class_names
        out = pb.ClassifyFashionResponse(served_by=self._served_by(call, resp))
        for i in range(n):
            c = out.classifications.add()
            for j in top[i]:
                c.classes.add(class_id=int(j), class_name=names[j] if j < len(names) else str(j),
                              probability=float(probs[i, j]))
        return out

    @handled("Predict")
    async def Predict(self, request: pb.PredictRequest, context, call: Call):
        m, pool = self._model(call, request.model.name, "model.name")
        version, label = self._ref(request.model)
        self._check_size(m, request.ByteSize(), "inputs")
        if not request.inputs:
            raise _invalid("inputs: at least one input tensor is required")
        spec = self._route(call, m, version, label)
        spec.signature_name = request.model.signature_name or m.signature_name
        req = self._tfs_request(spec, spec.signature_name)
        given = {}
        budget = tensors.request_budget(call.model, m.max_tensor_bytes)
        for name, t in request.inputs.items():
            try:
                proto = tensors.to_tensor_proto(t, f"inputs[{name}]", budget)
            except tensors.TensorError as exc:
                raise _invalid(str(exc)) from None
            req.inputs[name].CopyFrom(proto)
            given[name] = (proto.dtype, list(t.shape))
        problem = await self.signatures.check(pool, spec, given, call.backend_metadata(),
                                              self._deadline(call, m))
        if problem:
            raise _invalid(problem)
        req.output_filter.extend(request.output_filter)
        raw = await self._predict_bytes(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        out = pb.PredictResponse(served_by=self._served_by(call, resp))
        for name, t in resp.outputs.items():
            out.outputs[name].CopyFrom(tensors.from_tensor_proto(t))
        return out

    async def _describe(self, call: Call, name: str) -> pb.Model:
        m, pool = self.cfg.models[name], self.pools[name]
        timeout = max(0.05, min(2.0, call.deadline - time.monotonic()))
        model = pb.Model(name=name, targets=m.targets, healthy_targets=pool.healthy_count())
        model.labels.update(m.labels)
        model.traffic_split.update(m.split)
        best: dict[int, tuple[int, str]] = {}
        for status in await pool.status_all(timeout):
            for v in status.model_version_status if status else ():
                state = _STATE.get(v.state, pb.MODEL_VERSION_STATE_UNSPECIFIED)
                rank = _STATE_RANK.get(state, 0)
                if v.version not in best or rank > _STATE_RANK.get(best[v.version][0], 0):
                    best[v.version] = (state, v.status.error_message)
        for version in sorted(best):
            state, err = best[version]
            model.versions.add(version=version, state=state, error_message=err)
        return model

    @handled("ListModels")
    async def ListModels(self, request: pb.ListModelsRequest, context, call: Call):
        names = [n for n in sorted(self.cfg.models)
                 if call.principal is None or call.principal.may_use(n)]
        models = await asyncio.gather(*(self._describe(call, n) for n in names))
        return pb.ListModelsResponse(models=models)

    @handled("GetModel")
    async def GetModel(self, request: pb.GetModelRequest, context, call: Call):
        self._model(call, request.name, "name")
        return pb.GetModelResponse(model=await self._describe(call, request.name))

    # ----- tensorflow.serving pass-through ----------------------------------------------------
    def passthrough_handler(self, service: str, method: str, nested: bool):
        path = f"/{service}/{method}"

        @handled(f"{service.rsplit('.', 1)[1]}.{method}")
        async def handler(self: Gateway, request: bytes, context, call: Call):
            try:
                spec = wire.request_model_spec(request, nested)
            except wire.WireError as exc:
                raise _invalid(f"request: not a valid {method} request ({exc})") from None
            m, pool = self._model(call, spec.name, "model_spec.name")
            self._check_size(m, len(request), "request")
            problem = tensors.passthrough_problem(method, request,
                                                  tensors.request_budget(call.model, m.max_tensor_bytes))
            if problem:
                raise _invalid(problem)
            body = request
            if not nested:
                routed = self._route(call, m, spec.version, spec.label, split=method in SPLIT_METHODS)
                routed.signature_name = spec.signature_name
                if routed != spec:
                    body = wire.replace_model_spec(request, routed)
            elif spec.name != m.backend_model_name:
                raise _invalid("tasks: MultiInference needs the backend's model name")
            if path == PREDICT_PATH:
                return await self._predict_bytes(call, m, pool, body)
            response, call.retries = await pool.call(path, body, call.backend_metadata(),
                                                     self._deadline(call, m))
            return response

        return functools.partial(handler, self)

    def generic_handlers(self) -> list:
        out = []
        for service, methods in PASSTHROUGH.items():
            table = {name: grpc.unary_unary_rpc_method_handler(
                self.passthrough_handler(service, name, nested)) for name, nested in methods.items()}
            if service == MODEL_SERVICE:
                table["HandleReloadConfigRequest"] = grpc.unary_unary_rpc_method_handler(
                    self._reload)
            out.append(grpc.method_handlers_generic_handler(service, table))
        return out

    @handled("ModelService.HandleReloadConfigRequest")
    async def _reload(self, request: bytes, context, call: Call):
        # Configuration is per backend and names every model, so it goes to every target.
        if call.principal is not None and call.principal.models is not None:
            raise GatewayError(grpc.StatusCode.PERMISSION_DENIED,
                               "reloading config needs an all-models token")
        path = f"/{MODEL_SERVICE}/HandleReloadConfigRequest"
        targets = {t.target: t for pool in self.pools.values() for t in pool.targets}
        timeout = max(0.05, call.deadline - time.monotonic())
        results = await asyncio.gather(*(t.method(path)(request, timeout=timeout,
                                                        metadata=call.backend_metadata())
                                         for t in targets.values()), return_exceptions=True)
        for r in results:
            if isinstance(r, grpc.aio.AioRpcError):
                raise BackendError(r.code(), r.details() or "")
            if isinstance(r, BaseException):
                raise r
        return results[-1]

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*(p.close() for p in self.pools.values()))


def _same_outputs(a: predict_pb2.PredictResponse, b: predict_pb2.PredictResponse) -> bool:
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


def _decode_images(images) -> np.ndarray:
    out = np.empty((len(images), 28, 28), dtype=np.uint8)
    for i, img in enumerate(images):
        which = img.WhichOneof("data")
        if which == "pixels":
            if len(img.pixels) != 784:
                raise _invalid(f"images[{i}].pixels: must be 784 bytes (28x28), got {len(img.pixels)}")
            out[i] = np.frombuffer(img.pixels, dtype=np.uint8).reshape(28, 28)
        elif which == "encoded":
            out[i] = _decode_one(img.encoded, i)
        else:
            raise _invalid(f"images[{i}]: set pixels or encoded")
    return out


def _decode_one(data: bytes, i: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    field = f"images[{i}].encoded"
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise _invalid(f"{field}: not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as im:
            if im.width * im.height > 40_000_000:
                raise _invalid(f"{field}: image of {im.width}x{im.height} pixels is too large")
            im = im.convert("L")
            if im.size != (28, 28):
                im = im.resize((28, 28), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except GatewayError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _invalid(f"{field}: cannot decode image ({exc.__class__.__name__})") from None


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


async def serve(cfg: GatewayConfig, reuse_port: bool = False, ready=None) -> int:
    """Runs until SIGTERM/SIGINT, then drains. Returns the process exit code."""
    gateway = Gateway(cfg)
    max_msg = max(m.max_message_bytes for m in cfg.models.values()) + 64 * 1024
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_msg),
        ("grpc.max_send_message_length", -1),
        # Clients reconnect now and then, so new gateway pods get their share.
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("tfgate.v1.InferenceGateway", {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(gateway, m.name), request_deserializer=_lenient(getattr(pb, m.input_type.name)),
            response_serializer=lambda r: r.SerializeToString())
        for m in pb.DESCRIPTOR.services_by_name["InferenceGateway"].methods})])
    server.add_generic_rpc_handlers(gateway.generic_handlers())
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = ["tfgate.v1.InferenceGateway", PREDICTION_SERVICE, MODEL_SERVICE]
    described = ["tfgate.v1.InferenceGateway", *register_service_descriptors()]
    reflection.enable_server_reflection([*described, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if cfg.tls.cert_file:
        creds = grpc.ssl_server_credentials(
            [(_read(cfg.tls.key_file), _read(cfg.tls.cert_file))],
            root_certificates=_read(cfg.tls.client_ca_file) if cfg.tls.client_ca_file else None,
            require_client_auth=bool(cfg.tls.client_ca_file))
        port = server.add_secure_port(cfg.listen, creds)
    else:
        port = server.add_insecure_port(cfg.listen)
    await server.start()
    for name in ["", *services]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gateway listening", extra={"listen": cfg.listen, "port": port, "pid": os.getpid(),
                                          "models": sorted(cfg.models), "tls": bool(cfg.tls.cert_file)})
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Drain: announce NOT_SERVING, keep serving while load balancers notice, then finish in-flight.
    log.info("draining", extra={"readiness_seconds": cfg.shutdown.readiness_seconds,
                                "grace_seconds": cfg.shutdown.grace_seconds, "in_flight": gateway.in_flight})
    await health_servicer.enter_graceful_shutdown()
    await asyncio.sleep(cfg.shutdown.readiness_seconds)
    await server.stop(cfg.shutdown.grace_seconds)
    await gateway.close()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0
