"""tfgate.v1.InferenceGateway: the typed methods (PredictHousing, ClassifyFashion), the generic
Predict checked against the model's signature, and the model listing (ListModels, GetModel).

Each method turns the typed request into a TF Serving PredictRequest for the routed version, sends
it through the router and turns the answer back into the typed response."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
from google.protobuf import wrappers_pb2
from google.protobuf.descriptor import FieldDescriptor
from tensorflow_serving.apis import get_model_status_pb2, model_pb2, predict_pb2

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .. import grpc_plumbing
from .. import tensor_codec as codec
from ..status import ServingError, invalid
from . import images, signatures, tensors, wire
from .backends import Pool
from .calls import Call, Calls, handled
from .config import GatewayConfig
from .routing import Router

SERVICE = pb.DESCRIPTOR.services_by_name["InferenceGateway"]
# HousingRecord's fields are the model's raw inputs, in order: floats (finite, or unset when `optional`:
# sent as NaN, which the model imputes) and strings (not empty).
_RECORD_FIELDS = [(f.name, f.cpp_type == FieldDescriptor.CPPTYPE_STRING, f.has_presence)
                  for f in pb.HousingRecord.DESCRIPTOR.fields]
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


def _served_by(call: Call, resp: predict_pb2.PredictResponse) -> pb.ServedBy:
    return pb.ServedBy(model_name=call.model, version=resp.model_spec.version.value, label=call.label)


def _tfs_request(spec: wire.ModelSpec, signature: str) -> predict_pb2.PredictRequest:
    ms = model_pb2.ModelSpec(name=spec.name, signature_name=signature)
    if spec.version is not None:
        ms.version.CopyFrom(wrappers_pb2.Int64Value(value=spec.version))
    elif spec.label:
        ms.version_label = spec.label
    return predict_pb2.PredictRequest(model_spec=ms)


def _ref(ref: pb.ModelRef) -> tuple[int | None, str]:
    which = ref.WhichOneof("version_choice")
    if which == "version":
        if ref.version < 1:
            raise invalid("model.version: must be >= 1")
        return ref.version, ""
    if which == "label":
        if not ref.label:
            raise invalid("model.label: must not be empty")
        return None, ref.label
    return None, ""


def _output(resp: predict_pb2.PredictResponse, key: str, model: str) -> np.ndarray:
    if key not in resp.outputs:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"model {model!r} returned no output {key!r} (outputs: {sorted(resp.outputs)})")
    return tensors.to_numpy(resp.outputs[key])


def _class_names(resp: predict_pb2.PredictResponse) -> list[str]:
    """The model's own class names: its `all_classes` output ([N, classes] strings), when it has one."""
    if "all_classes" not in resp.outputs:
        return []
    rows = tensors.to_numpy(resp.outputs["all_classes"])
    if not rows.size:
        return []
    return [v.decode() if isinstance(v, bytes) else str(v) for v in rows.reshape(len(rows), -1)[0]]


class InferenceGateway(pb_grpc.InferenceGatewayServicer):
    def __init__(self, cfg: GatewayConfig, calls: Calls, router: Router, pools: dict[str, Pool]):
        self.cfg = cfg
        self.calls = calls
        self.router = router
        self.pools = pools
        self.signatures = signatures.Cache()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """Every method, with requests that do not parse answered INVALID_ARGUMENT."""
        return grpc.method_handlers_generic_handler(SERVICE.full_name, {
            m.name: grpc_plumbing.unary_method(getattr(self, m.name), getattr(pb, m.input_type.name))
            for m in SERVICE.methods})

    @handled("PredictHousing")
    async def PredictHousing(self, request: pb.PredictHousingRequest, context, call: Call):
        m, pool = self.router.model(call, request.model.name or "housing", "model.name")
        version, label = _ref(request.model)
        recs = request.records
        n = len(recs)
        if n == 0:
            raise invalid("records: at least one record is required")
        if n > m.max_records:
            raise invalid(f"records: {n} records, over this model's max_records ({m.max_records})")
        self.router.check_size(m, request.ByteSize(), "records")
        req = _tfs_request(self.router.route(call, m, version, label), m.signature_name)
        for name, is_string, optional in _RECORD_FIELDS:
            if is_string:
                values = [getattr(r, name).encode() for r in recs]
                empty = next((i for i, v in enumerate(values) if not v), None)
                if empty is not None:
                    raise invalid(f"records[{empty}].{name}: must not be empty")
                codec.fill_proto(req.inputs[name], np.array(values, dtype=object))
            elif optional:
                col = np.fromiter((getattr(r, name) if r.HasField(name) else np.nan for r in recs),
                                  dtype=np.float32, count=n)
                codec.fill_proto(req.inputs[name], col, as_content=True)
            else:
                col = np.fromiter((getattr(r, name) for r in recs), dtype=np.float32, count=n)
                bad = np.flatnonzero(~np.isfinite(col))
                if bad.size:
                    raise invalid(f"records[{bad[0]}].{name}: must be a finite number")
                codec.fill_proto(req.inputs[name], col, as_content=True)
        raw = await self.router.predict(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        values = _output(resp, "median_house_value", call.model).reshape(-1)
        return pb.PredictHousingResponse(median_house_values=values.astype(np.float32).tolist(),
                                         served_by=_served_by(call, resp))

    @handled("ClassifyFashion")
    async def ClassifyFashion(self, request: pb.ClassifyFashionRequest, context, call: Call):
        m, pool = self.router.model(call, request.model.name or "fashion", "model.name")
        version, label = _ref(request.model)
        n = len(request.images)
        if n == 0:
            raise invalid("images: at least one image is required")
        if n > m.max_records:
            raise invalid(f"images: {n} images, over this model's max_records ({m.max_records})")
        k = request.top_k or 1
        if k < 1 or m.class_names and k > len(m.class_names):
            raise invalid(f"top_k: must be between 1 and {len(m.class_names) or 'the number of classes'}, "
                          f"got {request.top_k}")
        self.router.check_size(m, request.ByteSize(), "images")
        if images.needs_decoding(request.images):
            pixels = await asyncio.to_thread(images.decode_images, request.images)
        else:
            pixels = images.decode_images(request.images)
        req = _tfs_request(self.router.route(call, m, version, label), m.signature_name)
        codec.fill_proto(req.inputs["image"], pixels, as_content=True)
        raw = await self.router.predict(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        probs = _output(resp, "probabilities", call.model).reshape(n, -1)
        if k > probs.shape[1]:
            raise invalid(f"top_k: must be between 1 and {probs.shape[1]}, got {request.top_k}")
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        names = m.class_names or _class_names(resp)
        out = pb.ClassifyFashionResponse(served_by=_served_by(call, resp))
        for i in range(n):
            c = out.classifications.add()
            for j in top[i]:
                c.classes.add(class_id=int(j), class_name=names[j] if j < len(names) else str(j),
                              probability=float(probs[i, j]))
        return out

    @handled("Predict")
    async def Predict(self, request: pb.PredictRequest, context, call: Call):
        m, pool = self.router.model(call, request.model.name, "model.name")
        version, label = _ref(request.model)
        self.router.check_size(m, request.ByteSize(), "inputs")
        if not request.inputs:
            raise invalid("inputs: at least one input tensor is required")
        spec = self.router.route(call, m, version, label)
        spec.signature_name = request.model.signature_name or m.signature_name
        req = _tfs_request(spec, spec.signature_name)
        given = {}
        budget = tensors.request_budget(call.model, m.max_tensor_bytes)
        for name, t in request.inputs.items():
            try:
                proto = tensors.to_tensor_proto(t, f"inputs[{name}]", budget)
            except tensors.TensorError as exc:
                raise invalid(str(exc)) from None
            req.inputs[name].CopyFrom(proto)
            given[name] = (proto.dtype, list(t.shape))
        problem = await self.signatures.check(pool, spec, given, call.backend_metadata(),
                                              self.router.deadline(call, m))
        if problem:
            raise invalid(problem)
        req.output_filter.extend(request.output_filter)
        raw = await self.router.predict(call, m, pool, req.SerializeToString())
        resp = predict_pb2.PredictResponse.FromString(raw)
        out = pb.PredictResponse(served_by=_served_by(call, resp))
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
        self.router.model(call, request.name, "name")
        return pb.GetModelResponse(model=await self._describe(call, request.name))
