"""Security: tokens, per-model allow-lists, TLS trust, and no secrets or payloads in the logs.

This file runs last in the folder (alphabetical), so the log check at its end covers the logs of the
whole reliability run that share its processes.
"""

from __future__ import annotations

import glob

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)

from tests.gateway.helpers import make_certs
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import tensor_pb2

from .conftest import PAYLOAD_MARKER, TOKEN_ALL, TOKEN_HOUSING

WRONG_TOKEN = "tok-wrong-0d9e8c7b"


def _identity(b):
    return b


def _housing(marker: str = "NEAR BAY") -> pb.PredictHousingRequest:
    return pb.PredictHousingRequest(records=[pb.HousingRecord(
        longitude=-122, latitude=37, housing_median_age=41, total_rooms=880, population=322, households=126,
        median_income=8.25, ocean_proximity=marker)])


def _half(model: str = "half") -> pb.PredictRequest:
    req = pb.PredictRequest(model=pb.ModelRef(name=model))
    req.inputs["x"].CopyFrom(tensor_pb2.Tensor(dtype=1, shape=[1], content=np.float32([2]).tobytes()))
    return req


def _tfs(model: str, cls):
    req = cls()
    spec = req.tasks.add().model_spec if cls is inference_pb2.MultiInferenceRequest else req.model_spec
    spec.name = model
    return req


# Every RPC a caller can make, with a valid request for `model`.
def all_rpcs(model: str):
    return [
        ("/tfgate.v1.InferenceGateway/PredictHousing", _housing()),
        ("/tfgate.v1.InferenceGateway/ClassifyFashion",
         pb.ClassifyFashionRequest(images=[pb.Image(pixels=bytes(784))])),
        ("/tfgate.v1.InferenceGateway/Predict", _half(model)),
        ("/tfgate.v1.InferenceGateway/ListModels", pb.ListModelsRequest()),
        ("/tfgate.v1.InferenceGateway/GetModel", pb.GetModelRequest(name=model)),
        ("/tensorflow.serving.PredictionService/Predict", _tfs(model, predict_pb2.PredictRequest)),
        ("/tensorflow.serving.PredictionService/Classify", _tfs(model, classification_pb2.ClassificationRequest)),
        ("/tensorflow.serving.PredictionService/Regress", _tfs(model, regression_pb2.RegressionRequest)),
        ("/tensorflow.serving.PredictionService/MultiInference", _tfs(model, inference_pb2.MultiInferenceRequest)),
        ("/tensorflow.serving.PredictionService/GetModelMetadata",
         _tfs(model, get_model_metadata_pb2.GetModelMetadataRequest)),
        ("/tensorflow.serving.ModelService/GetModelStatus", _tfs(model, get_model_status_pb2.GetModelStatusRequest)),
        ("/tensorflow.serving.ModelService/HandleReloadConfigRequest", model_management_pb2.ReloadConfigRequest()),
    ]


@pytest.fixture(scope="module")
def channel(secure_gateway):
    with secure_gateway.channel() as ch:
        yield ch


def call(ch, method, req, token=None):
    md = (("authorization", f"Bearer {token}"),) if token else ()
    fn = ch.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
    try:
        fn(req.SerializeToString(), timeout=20, metadata=md)
        return "OK", ""
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""


@pytest.mark.parametrize("token", [None, WRONG_TOKEN, ""])
def test_every_rpc_without_a_valid_token_is_unauthenticated(channel, token):
    for method, req in all_rpcs("half"):
        code, details = call(channel, method, req, token)
        assert code == "UNAUTHENTICATED", (method, code, details)
        assert details


def test_other_authorization_schemes_are_unauthenticated(channel):
    fn = channel.unary_unary("/tfgate.v1.InferenceGateway/Predict", request_serializer=_identity,
                             response_deserializer=_identity)
    for header in (f"Basic {TOKEN_ALL}", TOKEN_ALL, f"Bearer {TOKEN_ALL}x", f"Bearer {TOKEN_ALL[:-1]}"):
        with pytest.raises(grpc.RpcError) as info:
            fn(_half().SerializeToString(), timeout=10, metadata=(("authorization", header),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, header


def test_health_and_reflection_need_no_token(channel):
    assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=10))
    names = {s.name for s in answers[0].list_services_response.service}
    assert "tfgate.v1.InferenceGateway" in names


def test_token_for_housing_only(channel):
    assert call(channel, "/tfgate.v1.InferenceGateway/PredictHousing", _housing(PAYLOAD_MARKER),
                TOKEN_HOUSING) == ("OK", "")
    for method, req in all_rpcs("half"):
        code, details = call(channel, method, req, TOKEN_HOUSING)
        if method.endswith(("PredictHousing", "ListModels")):
            assert code == "OK", (method, details)
        else:
            assert code == "PERMISSION_DENIED", (method, code, details)
    resp = pb.ListModelsResponse.FromString(
        channel.unary_unary("/tfgate.v1.InferenceGateway/ListModels", request_serializer=_identity,
                            response_deserializer=_identity)(b"", timeout=10,
                                                             metadata=(("authorization", f"Bearer {TOKEN_HOUSING}"),)))
    assert [m.name for m in resp.models] == ["housing"]


def test_all_models_token(channel):
    assert call(channel, "/tfgate.v1.InferenceGateway/Predict", _half(), TOKEN_ALL) == ("OK", "")
    assert call(channel, "/tfgate.v1.InferenceGateway/PredictHousing", _housing(PAYLOAD_MARKER), TOKEN_ALL)[0] == "OK"
    # A bad request that carries the marker: the caller gets a message, the logs must not get it.
    bad = _half()
    bad.inputs[PAYLOAD_MARKER].CopyFrom(tensor_pb2.Tensor(dtype=1, shape=[3], content=b"\x00" * 5))
    assert call(channel, "/tfgate.v1.InferenceGateway/Predict", bad, TOKEN_ALL)[0] == "INVALID_ARGUMENT"


def test_tls_with_the_wrong_ca_fails(secure_gateway, tmp_path):
    other = make_certs(tmp_path)  # a different CA that never signed the gateway's certificate
    creds = grpc.ssl_channel_credentials(other["ca.crt"].read_bytes())
    with grpc.secure_channel(secure_gateway.target, creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
        code, details = call(ch, "/tfgate.v1.InferenceGateway/Predict", _half(), TOKEN_ALL)
    assert code == "UNAVAILABLE", (code, details)
    with grpc.insecure_channel(secure_gateway.target) as ch:  # plaintext to the TLS port
        code, _ = call(ch, "/tfgate.v1.InferenceGateway/Predict", _half(), TOKEN_ALL)
    assert code == "UNAVAILABLE"


def test_no_secret_or_payload_in_any_log(secure_gateway, gateway, backend, tmp_path_factory):
    """Greps every log written under this session's temp root (gateways, model servers of all
    reliability tests so far) for the tokens and the payload marker."""
    assert call_count_nonzero(secure_gateway)
    root = tmp_path_factory.getbasetemp()
    logs = [p for p in glob.glob(str(root / "**" / "*.log"), recursive=True)]
    assert str(secure_gateway.log_path) in logs and str(backend.log_path) in logs
    for path in logs:
        text = open(path, errors="replace").read()
        for secret in (TOKEN_ALL, TOKEN_HOUSING, WRONG_TOKEN, PAYLOAD_MARKER):
            assert secret not in text, f"{secret[:8]}… found in {path}"


def call_count_nonzero(gw) -> bool:
    """The secure gateway did log requests (so the grep above means something)."""
    return '"code": "UNAUTHENTICATED"' in gw.log_path.read_text(errors="replace") or \
        "UNAUTHENTICATED" in gw.log_path.read_text(errors="replace")
