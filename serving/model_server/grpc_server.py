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


def add_services(server: grpc.aio.Server, core: Core, enable_health: bool):
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
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
