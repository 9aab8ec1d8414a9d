"""KServe's Open Inference Protocol (v2) through the gateway: `inference.GRPCInferenceService`, routed like
every other call (middleware: auth, concurrency limit, metrics, access line; routing: the model's
config, its size bounds, versions, labels and traffic split; the pool: replicas and retries).

ModelInfer, ModelReady, ModelMetadata and ModelConfig go to the model's backends with the gateway's
model name and version choice rewritten to the backend's (a v2 version that is a number is a version,
any other string a label); only inference is split between labels. ServerLive, ServerReady and
ServerMetadata are the gateway's own answers. Inputs are sized (models.<name>.max_tensor_bytes) before
any backend sees them.
"""

from __future__ import annotations

import functools
import importlib.metadata

import grpc
from google.protobuf.message import DecodeError

from tfgate.inference import open_inference_grpc_pb2 as pb

from .. import v2_codec as v2
from ..status import invalid
from . import tensors
from .backends import Pool
from .calls import Call, Calls, handled
from .routing import Router

SERVICE = "inference.GRPCInferenceService"
# Forwarded methods: name -> (request, response, is it inference: split between labels and sized).
FORWARDED = {
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse, True),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse, False),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse, False),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse, False),
}


def _path(method: str) -> str:
    return f"/{SERVICE}/{method}"


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("tfgate")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _name_fields(method: str) -> tuple[str, str]:
    """The request's model name and version fields."""
    return ("model_name", "model_version") if method == "ModelInfer" else ("name", "version")


class OpenInference:
    def __init__(self, calls: Calls, router: Router, pools: dict[str, Pool]):
        self.calls = calls
        self.router = router
        self.pools = pools

    def _forward(self, method: str):
        request_cls, response_cls, inference = FORWARDED[method]
        name_field, version_field = _name_fields(method)

        @handled(f"GRPCInferenceService.{method}")
        async def handler(self: OpenInference, request: bytes, context, call: Call):
            try:
                req = request_cls.FromString(request)
            except DecodeError as exc:
                raise invalid(f"request: not a valid {request_cls.DESCRIPTOR.name} ({exc})") from None
            name = getattr(req, name_field)
            if method == "ModelReady" and name and name not in self.router.cfg.models:
                return pb.ModelReadyResponse(ready=False).SerializeToString()  # as a model server answers
            m, pool = self.router.model(call, name, name_field)
            self.router.check_size(m, len(request), "request")
            if inference:
                v2.check_grpc_request(req, tensors.request_budget(call.model, m.max_tensor_bytes))
            asked = getattr(req, version_field)
            version = int(asked) if asked.isdigit() else None
            routed = self.router.route(call, m, version, "" if asked.isdigit() else asked, split=inference)
            backend_version = str(routed.version) if routed.version is not None else routed.label
            body = request
            if (routed.name, backend_version) != (name, asked):
                setattr(req, name_field, routed.name)
                setattr(req, version_field, backend_version)
                body = req.SerializeToString()
            response, call.retries = await pool.call(_path(method), body, call.backend_metadata(),
                                                     self.router.deadline(call, m))
            if routed.name != name and method != "ModelReady":
                # The caller sees the gateway's name for the model, not the backend's.
                resp = response_cls.FromString(response)
                if method == "ModelConfig":
                    resp.config.name = name
                else:
                    setattr(resp, "model_name" if method == "ModelInfer" else "name", name)
                response = resp.SerializeToString()
            return response

        return functools.partial(handler, self)

    @handled("GRPCInferenceService.ServerLive")
    async def _live(self, request: bytes, context, call: Call):
        return pb.ServerLiveResponse(live=True).SerializeToString()

    @handled("GRPCInferenceService.ServerReady")
    async def _ready(self, request: bytes, context, call: Call):
        # Ready when every model has a backend replica in rotation.
        ready = all(p.healthy_count() > 0 for p in self.pools.values())
        return pb.ServerReadyResponse(ready=ready).SerializeToString()

    @handled("GRPCInferenceService.ServerMetadata")
    async def _metadata(self, request: bytes, context, call: Call):
        meta = v2.server_metadata(_version())
        return pb.ServerMetadataResponse(name="tfgate-gateway", version=meta["version"],
                                         extensions=meta["extensions"]).SerializeToString()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service, bytes in and bytes out."""
        table = {name: grpc.unary_unary_rpc_method_handler(self._forward(name)) for name in FORWARDED}
        for name, fn in (("ServerLive", self._live), ("ServerReady", self._ready),
                         ("ServerMetadata", self._metadata)):
            table[name] = grpc.unary_unary_rpc_method_handler(fn)
        return grpc.method_handlers_generic_handler(SERVICE, table)
