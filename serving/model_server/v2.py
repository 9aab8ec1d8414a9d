"""KServe's Open Inference Protocol (v2) on the model server: gRPC `inference.GRPCInferenceService` on the
gRPC port and `/v2...` on the REST port, both through the data plane TF Serving's API uses (version
policy, labels, batching, metrics, the request size bound). The codec is tfgate.serving.v2_codec.

Versions: a v2 `version` that is a number picks that version; any other string is a version label
(TF Serving's labels); none picks what TF Serving's API would. The SignatureDef: the request parameter
`signature_name` (REST metadata: `?signature_name=`), serving_default by default.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import re

import grpc
from aiohttp import web
from tensorflow_serving.apis import model_pb2

from tfgate.inference import open_inference_grpc_pb2 as pb
from tfgate.inference import open_inference_grpc_pb2_grpc as pb_grpc

from .. import grpc_plumbing
from .. import tensor_limits as limits
from .. import v2_codec as v2
from ..status import ServingError, invalid
from .data_plane import DataPlane

SERVICE = "inference.GRPCInferenceService"
SETTING = "--max_request_tensor_bytes"
_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                   r"(?P<verb>/ready|/infer|/config)?/?$")


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("tfgate")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _spec(name: str, version: str, signature: str = "") -> model_pb2.ModelSpec:
    if not name:
        raise invalid("no model name given")
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version:
        if version.isdigit():
            spec.version.value = int(version)
        else:
            spec.version_label = version
    return spec


def _signature(servable, name: str):
    """The SignatureDef asked for; without serving_default, a model's only signature."""
    if name == v2.DEFAULT_SIGNATURE and name not in servable.signatures and len(servable.signatures) == 1:
        return next(iter(servable.signatures.values()))
    return servable.signature(name)


class OpenInference:
    """The protocol's operations on one data plane; both front ends call these."""

    def __init__(self, plane: DataPlane):
        self.plane = plane

    @property
    def manager(self):
        return self.plane.manager

    def _budget(self, used: int = 0, held: str = "the request's other inputs") -> limits.Budget:
        return limits.Budget(self.plane.max_tensor_bytes, SETTING, used, held)

    def server_ready(self) -> bool:
        return self.manager.ready()

    def model_ready(self, name: str, version: str) -> bool:
        try:
            self.manager.resolve(_spec(name, version))
        except ServingError:
            return False
        return True

    def metadata(self, name: str, version: str, signature: str = v2.DEFAULT_SIGNATURE) -> dict:
        v = self.manager.resolve(_spec(name, version))
        with self.manager.hold(v) as servable:
            sig = _signature(servable, signature)
            model = self.manager.models[name]
            versions = [version] if version else [str(x.version) for x in model.available()]
            return v2.model_metadata(name, versions, sig.sigdef)

    def config(self, name: str, version: str) -> pb.ModelConfig:
        v = self.manager.resolve(_spec(name, version))
        with self.manager.hold(v) as servable:
            sig = _signature(servable, v2.DEFAULT_SIGNATURE)
            batcher = self.plane.batcher
            return v2.model_config(name, sig.sigdef, batcher.params.max_batch_size if batcher else 0,
                                   batching=batcher is not None)

    async def _infer(self, spec: model_pb2.ModelSpec, decode, encode):
        """decode(signature, budget) -> (inputs, output order); encode(version, outputs, order)."""
        async def go():
            v = self.manager.resolve(spec)
            with self.manager.hold(v) as servable:
                sig = _signature(servable, spec.signature_name)
                inputs, order = decode(sig)
                out = await self.plane._run(servable, sig, inputs, order)
                return encode(servable.version, out, order)
        return await self.plane._timed("v2_infer", spec, go)

    async def infer_grpc(self, req: pb.ModelInferRequest) -> pb.ModelInferResponse:
        spec = _spec(req.model_name, req.model_version, v2.signature_name(req.parameters))
        sized = v2.check_grpc_request(req, self._budget())  # sized before the model is even looked up

        def decode(sig):
            inputs = v2.decode_grpc_request(req, sig.sigdef.inputs, self._budget(), sized)
            return inputs, v2.requested_outputs(v2.grpc_output_names(req), sig.sigdef.outputs)

        def encode(version, out, order):
            return v2.encode_grpc_response(req, version, out, order)

        return await self._infer(spec, decode, encode)

    async def infer_json(self, name: str, version: str, body: bytes,
                         header_length: str | None) -> tuple[bytes, int | None]:
        if len(body) > self.plane.max_tensor_bytes:  # refused before parsing: the parse is the allocation
            raise invalid(f"request body: {len(body)} bytes, over the limit of {self.plane.max_tensor_bytes} bytes "
                          f"for a request ({SETTING})")
        doc, binary = v2.parse_json_body(body, header_length)
        spec = _spec(name, version, v2.json_signature(doc))
        wanted = None

        def decode(sig):
            nonlocal wanted
            # The parsed JSON counts against the bound, as on TF Serving's REST path.
            budget = self._budget(len(body), "the request's JSON")
            inputs, wanted = v2.decode_json_request(doc, binary, sig.sigdef.inputs, budget)
            return inputs, v2.requested_outputs(wanted.names, sig.sigdef.outputs)

        def encode(version, out, order):
            return v2.encode_json_response(name, version, doc.get("id", ""), out, order, wanted)

        return await self._infer(spec, decode, encode)


async def _abort(context, e: ServingError):
    await context.abort(e.code, e.message)


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, oip: OpenInference):
        self.oip = oip

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.oip.server_ready())

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.oip.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        meta = v2.server_metadata(_version())
        return pb.ServerMetadataResponse(**meta)

    async def ModelMetadata(self, request, context):
        try:
            return v2.metadata_proto(self.oip.metadata(request.name, request.version))
        except ServingError as e:
            await _abort(context, e)

    async def ModelConfig(self, request, context):
        try:
            return pb.ModelConfigResponse(config=self.oip.config(request.name, request.version))
        except ServingError as e:
            await _abort(context, e)

    async def ModelInfer(self, request, context):
        try:
            return await self.oip.infer_grpc(request)
        except ServingError as e:
            await _abort(context, e)


REQUESTS = {
    "ServerLive": pb.ServerLiveRequest, "ServerReady": pb.ServerReadyRequest, "ModelReady": pb.ModelReadyRequest,
    "ServerMetadata": pb.ServerMetadataRequest, "ModelMetadata": pb.ModelMetadataRequest,
    "ModelInfer": pb.ModelInferRequest, "ModelConfig": pb.ModelConfigRequest,
}


def grpc_handler(oip: OpenInference) -> grpc.GenericRpcHandler:
    """The service, with a request parser that answers INVALID_ARGUMENT to bytes that are not the message."""
    return grpc_plumbing.lenient_service(SERVICE, Servicer(oip), REQUESTS)


# ---- REST
def _json(doc, status: int = 200) -> web.Response:
    # Exactly application/json, no charset: kserve's REST client reads an error's message only then.
    return web.Response(body=json.dumps(doc).encode(), status=status, content_type="application/json")


def _error(e: ServingError) -> web.Response:
    return _json({"error": e.message}, e.http_status)


class RestV2:
    """`/v2...` on the model server's REST port; errors as {"error": "..."} (the protocol's REST form)."""

    def __init__(self, oip: OpenInference, timeout: float | None = None):
        self.oip = oip
        self.timeout = timeout

    async def dispatch(self, request: web.Request) -> web.Response:
        try:
            if self.timeout:
                return await asyncio.wait_for(self._dispatch(request), self.timeout)
            return await self._dispatch(request)
        except ServingError as e:
            return _error(e)
        except TimeoutError:
            return _error(ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    async def _dispatch(self, request: web.Request) -> web.Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if method == "GET" and path == "/v2":
            return _json(v2.server_metadata(_version()))
        if method == "GET" and path in ("/v2/health/live", "/v2/health/ready"):
            ok = path.endswith("live") or self.oip.server_ready()
            return _json({"live" if path.endswith("live") else "ready": ok}, status=200 if ok else 503)
        m = _PATH.match(path)
        if m is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {request.path}")
        name, version, verb = m["name"], m["version"] or "", m["verb"]
        if method == "GET" and verb is None:
            signature = request.query.get(v2.SIGNATURE_PARAM, v2.DEFAULT_SIGNATURE)
            return _json(self.oip.metadata(name, version, signature))
        if method == "GET" and verb == "/ready":
            ok = self.oip.model_ready(name, version)
            return _json({"name": name, "ready": ok}, status=200 if ok else 400)
        if method == "GET" and verb == "/config":
            from google.protobuf import json_format

            return _json(json_format.MessageToDict(self.oip.config(name, version), preserving_proto_field_name=True,
                                                   always_print_fields_with_no_presence=True))
        if method == "POST" and verb == "/infer":
            body = await request.read()
            out, n = await self.oip.infer_json(name, version, body, request.headers.get(v2.HEADER_LENGTH))
            if n is None:
                return web.Response(body=out, content_type="application/json")
            return web.Response(body=out, content_type="application/octet-stream",
                                headers={v2.HEADER_LENGTH: str(n)})
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {request.path}")
