"""The Open Inference Protocol (v2) on a real `tfgate model-server`, proven with Triton's and KServe's own
clients (.venv/oip, a subprocess each): health and metadata, inference on both demo models and on a model
they never saw (half_plus: two versions, a label, a BYTES signature), errors. Every v2 answer is compared
with what TF Serving's API answers for the same inputs from the same server: one data plane."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tfgate.inference import open_inference_grpc_pb2 as pb
from tfgate.inference import open_inference_grpc_pb2_grpc as pb_grpc
from tfgate.serving import v2_codec as v2
from tfgate.serving.model_server import tensors

from .clients.samples import dump
from .conftest import CLIENTS, run_client, signature_defs, url

MODELS = ["housing", "fashion", "half"]


def tf_serving_answer(server, model: str, inputs: dict, signature: str = "", version: int = 0) -> dict:
    """The same inputs through TF Serving's gRPC Predict on the same server."""
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model, signature_name=signature))
    if version:
        req.model_spec.version.value = version
    for k, arr in inputs.items():
        tensors.fill_proto(req.inputs[k], arr)
    with grpc.insecure_channel(server.grpc_target) as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=60)
    return {k: tensors.to_numpy(v, k) for k, v in resp.outputs.items()}


def undump(d: dict) -> np.ndarray:
    import base64

    if d["dtype"] == "object":
        arr = np.empty(len(d["values"]), dtype=object)
        arr[:] = [base64.b64decode(v) for v in d["values"]]
        return arr.reshape(d["shape"])
    return np.asarray(d["values"], dtype=d["dtype"]).reshape(d["shape"])


@pytest.mark.parametrize("client", CLIENTS)
def test_health_and_metadata(server, client, oip_python):
    got = run_client(oip_python, "v2_client.py", client, url(server, client), "health", "fashion")
    assert (got["live"], got["ready"], got["model_ready"], got["unknown_ready"]) == (True, True, True, False)
    if client.startswith("triton"):
        assert got["server"] == {"name": "tfgate", "version": got["server"]["version"],
                                 "extensions": ["binary_tensor_data", "parameters", "model_configuration"]}
        meta = got["model"]
        for t in meta["inputs"] + meta["outputs"]:
            t["shape"] = [int(d) for d in t["shape"]]  # gRPC's JSON prints int64 as strings
        want = v2.model_metadata("fashion", ["1"], signature_defs(server, "fashion")["serving_default"])
        assert meta == want
        config = got["config"].get("config", got["config"])  # gRPC wraps it in ModelConfigResponse
        assert config["name"] == "fashion" and config["platform"] == "tensorflow_savedmodel"
        assert int(config["max_batch_size"]) == 16  # the batching parameters' max_batch_size
        image = next(t for t in config["input"] if t["name"] == "image")
        assert image["data_type"] == "TYPE_UINT8" and [int(d) for d in image["dims"]] == [28, 28]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("client", CLIENTS)
def test_infer_equals_tf_serving_api(server, client, model, oip_python):
    got = run_client(oip_python, "v2_client.py", client, url(server, client), "infer", model)
    inputs = {k: undump(v) for k, v in got["inputs"].items()}
    want = tf_serving_answer(server, model, inputs)
    assert set(got["outputs"]) == set(want)
    assert got["outputs"] == dump(want), model
    if client != "kserve-rest":  # kserve's REST response object drops model_version
        assert got["model_version"] == ("2" if model == "half" else "1")


@pytest.mark.parametrize("client", CLIENTS)
def test_bytes_inputs_through_another_signature(server, client, oip_python):
    """half's echo_bytes (BYTES in; BYTES and INT64 out, as binary data over HTTP), picked by the
    `signature_name` parameter."""
    sd = signature_defs(server, "half")["echo_bytes"]
    meta = v2.model_metadata("half", ["2"], sd)
    got = run_client(oip_python, "v2_client.py", client, url(server, client), "infer", "half", "echo_bytes",
                     json.dumps(meta))
    sent = undump(got["inputs"]["s"])
    assert sent.dtype == object and len(sent) == 2
    assert got["outputs"]["s_bytes"] == got["inputs"]["s"]
    assert got["outputs"]["n_chars"]["values"] == [len(s) for s in sent]
    assert got["outputs"] == dump(tf_serving_answer(server, "half", {"s": sent}, "echo_bytes"))


@pytest.mark.parametrize("client", CLIENTS)
def test_errors_name_the_problem(server, client, oip_python):
    got = run_client(oip_python, "v2_client.py", client, url(server, client), "errors", "half")
    grpc_side = client.endswith("grpc")
    invalid = "StatusCode.INVALID_ARGUMENT" if grpc_side else "400"
    assert got["unknown_model"] == {"status": "StatusCode.NOT_FOUND" if grpc_side else "404",
                                    "message": "Servable not found for request: Latest(no-such-model)"}
    assert got["bad_datatype"] == {"status": invalid, "message": "input 'x' has datatype FP64; the signature "
                                                                 "wants FP32"}
    assert got["wrong_shape"] == {"status": invalid, "message": "input 'x' has shape [3,1,1,1,1,1]; the signature "
                                                                "wants [-1] (-1: any size)"}
    assert got["unknown_input"] == {"status": invalid, "message": "unknown input 'nope'; the signature's inputs "
                                                                  "are 'x'"}


# ---- the data plane's rules, with our own stubs (the clients are proven above)
def infer(server, model: str, version: str = "", x=(1.0, 2.0), **params) -> pb.ModelInferResponse:
    req = pb.ModelInferRequest(model_name=model, model_version=version)
    arr = np.asarray(x, np.float32)
    req.inputs.add(name="x", datatype="FP32", shape=arr.shape)
    req.raw_input_contents.append(arr.tobytes())
    for k, v in params.items():
        req.parameters[k].string_param = v
    with grpc.insecure_channel(server.grpc_target) as ch:
        return pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=60)


def y_of(resp) -> list[float]:
    return np.frombuffer(resp.raw_output_contents[0], np.float32).tolist()


def test_versions_and_labels_as_tf_serving(server):
    assert (infer(server, "half").model_version, y_of(infer(server, "half"))) == ("2", [3.5, 4.0])  # latest
    assert (infer(server, "half", "1").model_version, y_of(infer(server, "half", "1"))) == ("1", [2.5, 3.0])
    assert infer(server, "half", "stable").model_version == "1"  # a label
    with pytest.raises(grpc.RpcError) as e:
        infer(server, "half", "7")
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND,
                                                   "Servable not found for request: Specific(half, 7)")
    with pytest.raises(grpc.RpcError) as e:
        infer(server, "half", "canary")
    assert e.value.details() == "Unrecognized servable version label: canary"
    with pytest.raises(grpc.RpcError) as e:
        infer(server, "half", signature_name="nope")
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                   'Serving signature key "nope" not found.')


def test_requests_go_through_the_batcher(server):
    """The batcher's own limit answers a v2 request too: there is one data plane."""
    with pytest.raises(grpc.RpcError) as e:
        infer(server, "half", x=[0.0] * 17)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                   "Task size 17 is larger than maximum input batch size 16")


def test_rest_health_metadata_and_binary_outputs(server):
    import urllib.error
    import urllib.request

    def get(path):
        try:
            with urllib.request.urlopen(server.rest_url + path, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert get("/v2/health/live") == (200, {"live": True})
    assert get("/v2/health/ready") == (200, {"ready": True})
    assert get("/v2/models/half/versions/1/ready") == (200, {"name": "half", "ready": True})
    assert get("/v2/models/half/versions/9/ready") == (400, {"name": "half", "ready": False})
    status, meta = get("/v2/models/half/versions/stable")
    assert status == 200 and meta["versions"] == ["stable"] and meta["inputs"][0]["name"] == "x"
    assert get("/v2/models/nope") == (404, {"error": "Servable not found for request: Latest(nope)"})
    assert get("/v2/nope")[0] == 404
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}],
                       "parameters": {"binary_data_output": True}}).encode()
    req = urllib.request.Request(server.rest_url + "/v2/models/half/versions/1/infer", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        n = int(r.headers["Inference-Header-Content-Length"])
        raw = r.read()
    head = json.loads(raw[:n])
    assert head["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]
    assert np.frombuffer(raw[n:], np.float32).tolist() == [2.5, 3.0]


def test_reflection_lists_the_service(server):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(server.grpc_target) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        assert {"inference.GRPCInferenceService", "tensorflow.serving.PredictionService"} <= set(db.get_services())
        methods = DescriptorPool(db).FindServiceByName("inference.GRPCInferenceService").methods_by_name
        assert set(methods) == {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                                "ModelInfer", "ModelConfig"}
