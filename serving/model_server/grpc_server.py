"""gRPC front end: PredictionService and ModelService from tensorflow-serving-api's stubs, plus
grpc.health.v1 and server reflection."""

from __future__ import annotations

import logging

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.apis import status_pb2 as serving_status_pb2

from .. import grpc_plumbing
from ..status import ServingError
from ..tfs_protos import MODEL_SERVICE, PREDICTION_SERVICE
from . import v2
from .data_plane import DataPlane

log = logging.getLogger("tfgate.model_server")


async def _call(context, fn, *args):
    try:
        return await fn(*args)
    except ServingError as e:
        await context.abort(e.code, e.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane):
        self.plane = plane

    async def Predict(self, request, context):
        return await _call(context, self.plane.predict, request)

    async def Classify(self, request, context):
        return await _call(context, self.plane.classify, request)

    async def Regress(self, request, context):
        return await _call(context, self.plane.regress, request)

    async def MultiInference(self, request, context):
        return await _call(context, self.plane.multi_inference, request)

    async def GetModelMetadata(self, request, context):
        return await _call(context, self.plane.metadata, request)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane):
        self.plane = plane

    async def GetModelStatus(self, request, context):
        try:
            return self.plane.status(request)
        except ServingError as e:
            await context.abort(e.code, e.message)

    async def HandleReloadConfigRequest(self, request, context):
        resp = model_management_pb2.ReloadConfigResponse()
        try:
            await self.plane.manager.apply_config(request.config)
        except ServingError as e:
            log.error("ReloadConfig failed: %s", e.message)
            resp.status.CopyFrom(serving_status_pb2.StatusProto(error_code=e.code_value,
                                                                error_message=e.message))
            await context.abort(e.code, e.message)
        return resp


def add_services(server: grpc.aio.Server, plane: DataPlane, enable_health: bool):
    """The two TF Serving services, the Open Inference Protocol's, health (if enabled) and reflection;
    returns the health servicer."""
    server.add_generic_rpc_handlers([
        grpc_plumbing.lenient_service(PREDICTION_SERVICE, PredictionServicer(plane), {
            "Predict": predict_pb2.PredictRequest, "Classify": classification_pb2.ClassificationRequest,
            "Regress": regression_pb2.RegressionRequest, "MultiInference": inference_pb2.MultiInferenceRequest,
            "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest}),
        grpc_plumbing.lenient_service(MODEL_SERVICE, ModelServicer(plane), {
            "GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
            "HandleReloadConfigRequest": model_management_pb2.ReloadConfigRequest}),
        v2.grpc_handler(v2.OpenInference(plane)),  # KServe's Open Inference Protocol (v2)
    ])
    health_servicer = grpc_plumbing.add_health(server) if enable_health else None
    grpc_plumbing.enable_reflection(server, [v2.SERVICE, *([grpc_plumbing.HEALTH_SERVICE] if enable_health else [])])
    return health_servicer
