"""gRPC front end: PredictionService and ModelService from tensorflow-serving-api's stubs, plus
grpc.health.v1 and server reflection."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.apis import status_pb2 as serving_status_pb2

from .core import Core
from .errors import ServingError

log = logging.getLogger("tfgate.model_server")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


def _register_service_descriptors() -> None:
    """Put the two services' file descriptors in protobuf's default pool, for reflection.

    tensorflow-serving-api 2.19.1's prediction_service_pb2 / model_service_pb2 are generated in an old
    style that fails at import under protobuf 6 (`has_options` is read-only in upb) *after* their file
    descriptor has been added to the pool; the *_pb2_grpc stubs do not need them. Importing them here
    and ignoring that error leaves the descriptors registered.
    """
    for mod in ("prediction_service_pb2", "model_service_pb2"):
        try:
            __import__(f"tensorflow_serving.apis.{mod}")
        except AttributeError:
            pass


async def _call(context, fn, *args):
    try:
        return await fn(*args)
    except ServingError as e:
        await context.abort(e.code, e.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    async def Predict(self, request, context):
        return await _call(context, self.core.predict, request)

    async def Classify(self, request, context):
        return await _call(context, self.core.classify, request)

    async def Regress(self, request, context):
        return await _call(context, self.core.regress, request)

    async def MultiInference(self, request, context):
        return await _call(context, self.core.multi_inference, request)

    async def GetModelMetadata(self, request, context):
        return await _call(context, self.core.metadata, request)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    async def GetModelStatus(self, request, context):
        try:
            return self.core.status(request)
        except ServingError as e:
            await context.abort(e.code, e.message)

    async def HandleReloadConfigRequest(self, request, context):
        resp = model_management_pb2.ReloadConfigResponse()
        try:
            await self.core.manager.apply_config(request.config)
        except ServingError as e:
            log.error("ReloadConfig failed: %s", e.message)
            resp.status.CopyFrom(serving_status_pb2.StatusProto(error_code=e.code_value,
                                                                error_message=e.message))
            await context.abort(e.code, e.message)
        return resp


_UNDECODABLE = object()


def _lenient_service(service: str, servicer, requests: dict) -> grpc.GenericRpcHandler:
    """The service's methods with a request parser that does not fail: bytes that are not the
    method's message get INVALID_ARGUMENT (grpc itself answers UNKNOWN to such a client mistake)."""

    def handler(fn, cls):
        def parse(data: bytes):
            try:
                return cls.FromString(data)
            except Exception:
                return _UNDECODABLE

        async def call(request, context):
            if request is _UNDECODABLE:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Could not parse the request as {cls.DESCRIPTOR.full_name}")
            return await fn(request, context)

        return grpc.unary_unary_rpc_method_handler(call, request_deserializer=parse,
                                                   response_serializer=lambda r: r.SerializeToString())

    return grpc.method_handlers_generic_handler(
        service, {name: handler(getattr(servicer, name), cls) for name, cls in requests.items()})


def add_services(server: grpc.aio.Server, core: Core, enable_health: bool):
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        inference_pb2,
        predict_pb2,
        regression_pb2,
    )

    server.add_generic_rpc_handlers([
        _lenient_service(PREDICTION_SERVICE, PredictionServicer(core), {
            "Predict": predict_pb2.PredictRequest, "Classify": classification_pb2.ClassificationRequest,
            "Regress": regression_pb2.RegressionRequest, "MultiInference": inference_pb2.MultiInferenceRequest,
            "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest}),
        _lenient_service(MODEL_SERVICE, ModelServicer(core), {
            "GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
            "HandleReloadConfigRequest": model_management_pb2.ReloadConfigRequest}),
    ])
    names = [PREDICTION_SERVICE, MODEL_SERVICE, reflection.SERVICE_NAME]
    health_servicer = None
    if enable_health:
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    _register_service_descriptors()
    reflection.enable_server_reflection(names, server)
    return health_servicer


async def set_health(health_servicer, serving: bool) -> None:
    if health_servicer is None:
        return
    st = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", PREDICTION_SERVICE, MODEL_SERVICE):
        await health_servicer.set(name, st)
