"""The Open Inference Protocol (v2) through a real `tfgate gateway` in front of the v2 model server, routed
like every other call: bearer-token auth (and its model allow-list), a replica that is down (retried),
labels and the traffic split, the size bound, metrics. Proven with Triton's and KServe's gRPC clients."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest

from tests.gateway.helpers import Gateway, free_port
from tests.model_server.helpers import metric
from tfgate.inference import open_inference_grpc_pb2 as pb
from tfgate.inference import open_inference_grpc_pb2_grpc as pb_grpc
from tfgate.serving import v2_codec as v2

from .clients.samples import dump
from .conftest import OIP_PYTHON, run_client, signature_defs
from .test_model_server_v2 import tf_serving_answer, undump

TOKENS = "all-models\nhalf-only half\n"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, server):
    work = tmp_path_factory.mktemp("v2-gw")
    (work / "tokens").write_text(TOKENS)
    down = f"127.0.0.1:{free_port()}"  # nothing listens there: UNAVAILABLE, retried on the replica
    targets = [down, server.grpc_target]
    gw = Gateway(work, {"auth": {"tokens_file": str(work / "tokens")}, "models": {
        "housing": {"targets": targets}, "fashion": {"targets": targets}, "half": {"targets": targets},
        "half-gw": {"targets": targets, "backend_model_name": "half", "labels": {"old": 1, "new": 2},
                    "split": {"old": 50, "new": 50}, "max_tensor_bytes": 4096}}})
    yield gw
    assert gw.stop() == 0


def client(gw, name: str, *args: str, token: str = "all-models") -> dict:
    return run_client(OIP_PYTHON, "v2_client.py", name, gw.target, *args, token=token)


@pytest.mark.parametrize("name", ["triton-grpc", "kserve-grpc"])
def test_health_metadata_and_infer_through_the_gateway(gateway, server, name, oip_python):
    got = client(gateway, name, "health", "fashion")
    assert (got["live"], got["ready"], got["model_ready"], got["unknown_ready"]) == (True, True, True, False)
    if name.startswith("triton"):
        assert got["server"]["name"] == "tfgate-gateway"
        meta = got["model"]
        for t in meta["inputs"] + meta["outputs"]:
            t["shape"] = [int(d) for d in t["shape"]]
        assert meta == v2.model_metadata("fashion", ["1"], signature_defs(server, "fashion")["serving_default"])
    for model in ("housing", "fashion"):
        got = client(gateway, name, "infer", model)
        inputs = {k: undump(v) for k, v in got["inputs"].items()}
        assert got["outputs"] == dump(tf_serving_answer(server, model, inputs)), model
    errors = client(gateway, name, "errors", "half")
    assert errors["unknown_model"]["message"] == "model_name: model 'no-such-model' is not served by this gateway"
    assert errors["unknown_model"]["status"] == "StatusCode.NOT_FOUND"
    assert errors["bad_datatype"] == {"status": "StatusCode.INVALID_ARGUMENT",
                                      "message": "input 'x' has datatype FP64; the signature wants FP32"}
    assert errors["wrong_shape"]["message"].startswith("input 'x' has shape [3,1,1,1,1,1]")


def stub_call(gw, method: str, req, token: str | None = "all-models", metadata=()):
    md = ((("authorization", f"Bearer {token}"),) if token else ()) + tuple(metadata)
    with grpc.insecure_channel(gw.target) as ch:
        return getattr(pb_grpc.GRPCInferenceServiceStub(ch), method)(req, metadata=md, timeout=30)


def infer_req(model: str, x, version: str = "") -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model, model_version=version)
    arr = np.asarray(x, np.float32)
    req.inputs.add(name="x", datatype="FP32", shape=arr.shape)
    req.raw_input_contents.append(arr.tobytes())
    return req


def code_of(fn) -> tuple[grpc.StatusCode, str]:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def test_auth_applies_to_v2(gateway):
    assert code_of(lambda: stub_call(gateway, "ModelInfer", infer_req("half", [1.0]), token=None)) == (
        grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token (metadata 'authorization')")
    assert code_of(lambda: stub_call(gateway, "ModelInfer", infer_req("half", [1.0]), token="half-only"))[0] == (
        grpc.StatusCode.OK)
    assert code_of(lambda: stub_call(gateway, "ModelMetadata", pb.ModelMetadataRequest(name="fashion"),
                                     token="half-only")) == (
        grpc.StatusCode.PERMISSION_DENIED, "this token may not use model 'fashion'")


def test_labels_split_and_names_through_the_gateway(gateway):
    def y(version: str = ""):
        resp = stub_call(gateway, "ModelInfer", infer_req("half-gw", [2.0], version))
        assert resp.model_name == "half-gw"  # the gateway's name, not the backend's
        return resp.model_version, np.frombuffer(resp.raw_output_contents[0], np.float32).tolist()

    assert y("old") == ("1", [3.0]) and y("new") == ("2", [4.0]) and y("1") == ("1", [3.0])
    seen = {y()[0] for _ in range(24)}  # the 50/50 split: both versions answer (p of one only: 2^-23)
    assert seen == {"1", "2"}
    meta = stub_call(gateway, "ModelMetadata", pb.ModelMetadataRequest(name="half-gw", version="old"))
    assert (meta.name, list(meta.versions)) == ("half-gw", ["1"])
    ready = stub_call(gateway, "ModelReady", pb.ModelReadyRequest(name="half-gw", version="new"))
    assert ready.ready


def test_reflection_lists_the_service(gateway):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(gateway.target) as ch:
        assert "inference.GRPCInferenceService" in set(ProtoReflectionDescriptorDatabase(ch).get_services())


def test_size_bound_and_metrics(gateway):
    code, details = code_of(lambda: stub_call(gateway, "ModelInfer", infer_req("half-gw", np.zeros(2000))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == ("input 'x': shape [2000] of FP32 takes 8000 bytes, over the limit of 4096 bytes for a "
                       "request's tensors (gateway models.half-gw.max_tensor_bytes)")
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5).read().decode()
    assert metric(text, "tfgate_gateway_requests_total", model="half-gw", method="GRPCInferenceService.ModelInfer",
                  code="INVALID_ARGUMENT") >= 1
    assert metric(text, "tfgate_gateway_requests_total", model="half", method="GRPCInferenceService.ModelInfer",
                  code="OK") >= 1
    assert metric(text, "tfgate_gateway_retries_total", model="fashion") + metric(
        text, "tfgate_gateway_retries_total", model="housing") + metric(
        text, "tfgate_gateway_retries_total", model="half") >= 1  # the replica that is down was retried

