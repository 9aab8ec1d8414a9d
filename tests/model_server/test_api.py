"""PredictionService, ModelService, REST, health, reflection, batching, warm-up, limits and every
client error, against one real `tfgate model-server` subprocess serving two small models."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
)

from tests.model_server import models
from tests.model_server.helpers import (
    classify_request,
    examples,
    http,
    metric,
    out,
    predict_request,
    regress_request,
    stubs,
)

BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 2 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_server_factory):
    d = tmp_path_factory.mktemp("api")
    models.make_half_plus(d / "hp", 1, b=2.0, warmup=3)
    models.make_half_plus(d / "hp", 2, b=3.0)
    models.make_half_plus(d / "hp", 3, b=4.0)  # on disk, but not in the specific policy
    models.make_tf1_half_plus_two(d / "tf1", 1)
    (d / "batching.config").write_text(BATCHING)
    (d / "monitoring.config").write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }')
    config = f"""
model_config_list {{
  config {{
    name: "hp" base_path: "{d / 'hp'}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{ name: "tf1" base_path: "{d / 'tf1'}" model_platform: "tensorflow" }}
}}
"""
    return model_server_factory(
        d, model_config=config, socket_path=str(d / "grpc.sock"),
        flags=["--enable_batching", f"--batching_parameters_file={d / 'batching.config'}",
               f"--monitoring_config_file={d / 'monitoring.config'}",
               "--grpc_channel_arguments=grpc.max_receive_message_length=1048576",
               "--file_system_poll_wait_seconds=1"])


@pytest.fixture(scope="module")
def grpc_stubs(server):
    ch, pred, model = stubs(server.grpc_target)
    yield pred, model
    ch.close()


def metrics_text(server) -> str:
    status, text = http("GET", server.rest_url + "/monitoring/prometheus/metrics")
    assert status == 200
    return text


# ---- gRPC happy paths
def test_predict_latest_version_and_label(grpc_stubs):
    pred, _ = grpc_stubs
    x = np.array([1.0, 2.0, 10.0], np.float32)
    latest = pred.Predict(predict_request("hp", {"x": x}), timeout=30)
    assert latest.model_spec.name == "hp" and latest.model_spec.version.value == 2
    assert latest.model_spec.signature_name == "serving_default"
    assert list(latest.outputs["y"].float_val) == [3.5, 4.0, 8.0]  # typed values, as TF Serving answers
    assert not latest.outputs["y"].tensor_content
    v1 = pred.Predict(predict_request("hp", {"x": x}, version=1), timeout=30)
    np.testing.assert_array_equal(out(v1, "y"), [2.5, 3.0, 7.0])
    stable = pred.Predict(predict_request("hp", {"x": x}, label="stable"), timeout=30)
    assert stable.model_spec.version.value == 1
    canary = pred.Predict(predict_request("hp", {"x": x}, label="canary"), timeout=30)
    assert canary.model_spec.version.value == 2


def test_predict_accepts_tensor_content_and_typed_values(grpc_stubs):
    pred, _ = grpc_stubs
    req = predict_request("hp", {}, version=1)
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([4.0, 6.0], np.float32)))
    assert req.inputs["x"].tensor_content  # numpy arrays become tensor_content
    np.testing.assert_array_equal(out(pred.Predict(req, timeout=30), "y"), [4.0, 5.0])
    typed = predict_pb2.PredictRequest()
    typed.model_spec.name = "hp"
    typed.model_spec.version.value = 1
    t = typed.inputs["x"]
    t.dtype = tf.float32.as_datatype_enum
    t.tensor_shape.dim.add(size=2)
    t.float_val.extend([4.0, 6.0])
    np.testing.assert_array_equal(out(pred.Predict(typed, timeout=30), "y"), [4.0, 5.0])


def test_output_filter_and_multiple_inputs(grpc_stubs):
    pred, _ = grpc_stubs
    a, b = np.array([5.0, 1.0], np.float32), np.array([2.0, 2.0], np.float32)
    both = pred.Predict(predict_request("hp", {"a": a, "b": b}, signature="two_inputs"), timeout=30)
    assert set(both.outputs) == {"sum", "diff"}
    only = pred.Predict(predict_request("hp", {"a": a, "b": b}, signature="two_inputs",
                                        output_filter=["diff"]), timeout=30)
    assert set(only.outputs) == {"diff"}
    np.testing.assert_array_equal(out(only, "diff"), [3.0, -1.0])


def test_bytes_outputs(grpc_stubs):
    pred, _ = grpc_stubs
    resp = pred.Predict(predict_request("hp", {"s": np.array([b"\x00\xff", b"ab"], object)},
                                        signature="echo_bytes"), timeout=30)
    assert list(resp.outputs["s_bytes"].string_val) == [b"\x00\xff", b"ab"]
    assert list(resp.outputs["n_chars"].int64_val) == [2, 2]


def test_classify_regress_multi_inference(grpc_stubs):
    pred, _ = grpc_stubs
    exs = examples("x", [2.0, 4.0])
    c = pred.Classify(classify_request("hp", exs, "classify"), timeout=30)
    assert c.model_spec.version.value == 2 and c.model_spec.signature_name == "classify"
    got = [[(k.label, k.score) for k in cl.classes] for cl in c.result.classifications]
    assert got == [[("y", 4.0), ("x", 2.0)], [("y", 5.0), ("x", 4.0)]]
    r = pred.Regress(regress_request("hp", exs, "regress"), timeout=30)
    assert [x.value for x in r.result.regressions] == [4.0, 5.0]
    # Context features are merged into every example.
    req = regress_request("hp", [], "regress")
    req.input.example_list_with_context.context.CopyFrom(examples("x", [6.0])[0])
    req.input.example_list_with_context.examples.extend([tf.train.Example(), tf.train.Example()])
    r = pred.Regress(req, timeout=30)
    assert [x.value for x in r.result.regressions] == [6.0, 6.0]
    mi = inference_pb2.MultiInferenceRequest()
    for sig, method in (("classify", models.CLASSIFY), ("regress", models.REGRESS)):
        t = mi.tasks.add(method_name=method)
        t.model_spec.name = "hp"
        t.model_spec.signature_name = sig
    mi.input.example_list.examples.extend(exs)
    res = pred.MultiInference(mi, timeout=30)
    assert [x.value for x in res.results[1].regression_result.regressions] == [4.0, 5.0]
    assert res.results[0].classification_result.classifications[1].classes[0].score == 5.0


def test_tf1_model_like_tf_serving_test_models(grpc_stubs, server):
    pred, _ = grpc_stubs
    r = pred.Predict(predict_request("tf1", {"x": np.array([1.0, 3.0], np.float32)}), timeout=30)
    np.testing.assert_array_equal(out(r, "y"), [2.5, 3.5])
    exs = examples("x", [2.0])
    assert pred.Regress(regress_request("tf1", exs, "regress_x_to_y"), timeout=30).result.regressions[0].value == 3.0
    c = pred.Classify(classify_request("tf1", exs, "classify_x_to_y"), timeout=30)
    assert c.result.classifications[0].classes[0].score == 3.0
    status, body = http("POST", server.rest_url + "/v1/models/tf1:predict", {"instances": [2.0]})
    assert (status, body) == (200, {"predictions": [3.0]})


def test_metadata(grpc_stubs):
    pred, _ = grpc_stubs
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "hp"
    resp = pred.GetModelMetadata(req, timeout=30)
    assert resp.model_spec.name == "hp" and resp.model_spec.version.value == 2
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sdm)
    sigs = sdm.signature_def
    assert sigs["classify"].method_name == models.CLASSIFY
    assert sigs["regress"].method_name == models.REGRESS
    assert sigs["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum


def test_model_status_and_version_policy(grpc_stubs, server):
    _, model = grpc_stubs
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "hp"
    resp = model.GetModelStatus(req, timeout=30)
    states = {s.version: s.state for s in resp.model_version_status}
    avail = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert states == {1: avail, 2: avail}  # version 3 is on disk but outside the specific policy
    req.model_spec.version.value = 1
    assert [s.version for s in model.GetModelStatus(req, timeout=30).model_version_status] == [1]
    status, body = http("GET", server.rest_url + "/v1/models/hp/versions/2")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


# ---- every client error: gRPC code + TF Serving's message
def _no_spec():
    req = predict_pb2.PredictRequest()
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    return req


def _empty_name():
    req = _no_spec()
    req.model_spec.signature_name = "serving_default"
    return req


ERRORS = [
    ("no model spec", lambda: _no_spec(), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    ("no model name", lambda: _empty_name(), grpc.StatusCode.INVALID_ARGUMENT,
     "ModelSpec has no name specified."),
    ("unknown model", lambda: predict_request("nope", {"x": [1.0]}), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    ("unknown version", lambda: predict_request("hp", {"x": [1.0]}, version=3), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(hp, 3)"),
    ("unknown label", lambda: predict_request("hp", {"x": [1.0]}, label="prod"),
     grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: prod"),
    ("unknown signature", lambda: predict_request("hp", {"x": [1.0]}, signature="x"),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "x" not found.'),
    ("extra input", lambda: predict_request("hp", {"x": [1.0], "z": [1.0]}), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
     "Missing but required: {}."),
    ("missing input", lambda: predict_request("hp", {"a": [1.0]}, signature="two_inputs"),
     grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
     "Missing but required: {b}."),
    ("wrong dtype", lambda: predict_request("hp", {"x": np.array([b"a"], object)}),
     grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but string is provided"),
    ("bad output filter", lambda: predict_request("hp", {"x": [1.0]}, output_filter=["nope"]),
     grpc.StatusCode.INVALID_ARGUMENT,
     "output tensor alias not found in signature: nope Outputs expected to be in the set {y}."),
    # Shapes are the graph's to judge, as in TF Serving: a+b of [2,3] and [2,2] fails in the session.
    ("shapes the graph refuses", lambda: predict_request(
        "hp", {"a": np.ones([2, 3], np.float32), "b": np.ones([2, 2], np.float32)}, signature="two_inputs"),
     grpc.StatusCode.INVALID_ARGUMENT, None),
]


@pytest.mark.parametrize("make, code, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_predict_errors(grpc_stubs, make, code, message):
    pred, _ = grpc_stubs
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(make(), timeout=30)
    assert e.value.code() == code, e.value.details()
    if message is not None:
        assert e.value.details() == message
    elif make is ERRORS[-1][1]:  # TensorFlow's own message, as TF Serving passes it on
        assert e.value.details().startswith("Incompatible shapes: [2,3] vs. [2,2]"), e.value.details()


def test_other_api_errors(grpc_stubs):
    pred, model = grpc_stubs
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "hp"
    with pytest.raises(grpc.RpcError) as e:
        pred.GetModelMetadata(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st = get_model_status_pb2.GetModelStatusRequest()
    st.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        model.GetModelStatus(st, timeout=30)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND,
                                                   "Could not find any versions of model nope")
    with pytest.raises(grpc.RpcError) as e:  # a predict signature is not a classifier
        pred.Classify(classify_request("hp", examples("x", [1.0])), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        pred.Regress(regress_request("hp", [], "regress"), timeout=30)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")


def test_oversized_request_is_resource_exhausted(grpc_stubs):
    pred, _ = grpc_stubs
    big = np.zeros(400_000, np.float32)  # 1.6 MB > --grpc_channel_arguments max 1 MiB
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("hp", {"x": big}), timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# ---- REST
def test_rest_row_columnar_b64(server):
    u = server.rest_url + "/v1/models/hp"
    assert http("POST", u + ":predict", {"instances": [1.0, 2.0]}) == (200, {"predictions": [3.5, 4.0]})
    assert http("POST", u + "/versions/1:predict", {"inputs": [1.0, 2.0]}) == (200, {"outputs": [2.5, 3.0]})
    assert http("POST", u + "/labels/stable:predict", {"inputs": {"x": [2.0]}}) == (200, {"outputs": [3.0]})
    rows = {"signature_name": "two_inputs", "instances": [{"a": 1.0, "b": 2.0}, {"a": 5.0, "b": 1.0}]}
    assert http("POST", u + ":predict", rows) == (
        200, {"predictions": [{"diff": -1.0, "sum": 3.0}, {"diff": 4.0, "sum": 6.0}]})
    cols = {"signature_name": "two_inputs", "inputs": {"a": [1.0, 5.0], "b": [2.0, 1.0]}}
    assert http("POST", u + ":predict", cols) == (200, {"outputs": {"diff": [-1.0, 4.0], "sum": [3.0, 6.0]}})
    raw = b"\x00\xfe\xff"
    b64 = {"signature_name": "echo_bytes", "instances": [{"s": {"b64": base64.b64encode(raw).decode()}}]}
    status, body = http("POST", u + ":predict", b64)
    assert status == 200
    assert body == {"predictions": [{"s_bytes": {"b64": base64.b64encode(raw).decode()}, "n_chars": 3}]}
    assert http("POST", u + ":classify", {"signature_name": "classify", "examples": [{"x": 2.0}]}) == (
        200, {"results": [[["y", 4.0], ["x", 2.0]]]})
    assert http("POST", u + ":regress", {"signature_name": "regress", "context": {"x": 4.0},
                                         "examples": [{}, {}]}) == (200, {"results": [5.0, 5.0]})
    status, meta = http("GET", u + "/metadata")
    assert status == 200 and meta["model_spec"]["version"] == "2"
    assert meta["metadata"]["signature_def"]["signature_def"]["regress"]["method_name"] == models.REGRESS


REST_ERRORS = [
    ("POST", "/v1/models/hp:predict", b'{"instances": [1.0,', 400, "JSON Parse error"),
    ("POST", "/v1/models/nope:predict", b'{"instances": [1.0]}', 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/hp/versions/9:predict", b'{"instances": [1.0]}', 404,
     "Servable not found for request: Specific(hp, 9)"),
    ("POST", "/v1/models/hp/labels/prod:predict", b'{"instances": [1.0]}', 400,
     "Unrecognized servable version label: prod"),
    ("POST", "/v1/models/hp:predict", b'{"signature_name": "x", "instances": [1.0]}', 400,
     'Serving signature key "x" not found.'),
    ("POST", "/v1/models/hp:predict", b'{"instances": ["a"]}', 400, "not of expected type: float"),
    ("POST", "/v1/models/hp:predict", b'{"foo": 1}', 400, "'instances'"),
    ("POST", "/v1/models/hp:explode", b"{}", 404, "Malformed request: POST /v1/models/hp:explode"),
    ("GET", "/v1/nothing", None, 404, "Malformed request: GET /v1/nothing"),
]


@pytest.mark.parametrize("method, path, raw, status, message", REST_ERRORS)
def test_rest_errors(server, method, path, raw, status, message):
    got, body = http(method, server.rest_url + path, raw=raw)
    assert got == status
    assert set(body) == {"error"} and message in body["error"], body


# ---- transport and operations
def test_unix_socket(server):
    ch, pred, _ = stubs(f"unix:{server.socket_path}")
    with ch:
        r = pred.Predict(predict_request("hp", {"x": [2.0]}, version=1), timeout=30)
    assert list(r.outputs["y"].float_val) == [3.0]


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.grpc_target) as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for name in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            assert h.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status == \
                health_pb2.HealthCheckResponse.SERVING
        r = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(r.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                           timeout=10))
        names = {s.name for s in resp.list_services_response.service}
        assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"} <= names
        resp = next(r.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="tensorflow.serving.PredictionService")]), timeout=10))
        assert resp.file_descriptor_response.file_descriptor_proto


def test_warmup_replayed_before_available(server):
    text = metrics_text(server)
    assert metric(text, ":tensorflow:serving:model_warmup_records_total", model_name="hp") == 3
    assert "Number of warmup records read: 3" in server.log()


def test_batching_merges_concurrent_requests(server, grpc_stubs):
    pred, _ = grpc_stubs
    name = ":tensorflow:serving:batching_session:processed_batch_size"
    before = metrics_text(server)
    n0 = metric(before, name + "_count", model_name="hp", signature_name="serving_default")
    s0 = metric(before, name + "_sum", model_name="hp", signature_name="serving_default")
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        r = pred.Predict(predict_request("hp", {"x": [float(i)]}, version=1), timeout=30)
        return r.outputs["y"].float_val[0]

    with cf.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(one, range(8)))
    assert got == [0.5 * i + 2 for i in range(8)]  # each caller gets its own row back
    after = metrics_text(server)
    batches = metric(after, name + "_count", model_name="hp", signature_name="serving_default") - n0
    rows = metric(after, name + "_sum", model_name="hp", signature_name="serving_default") - s0
    assert rows == 8
    assert batches < 8, "no two concurrent requests were merged"
    pads = metric(after, PADDING + "_count", model_name="hp") - metric(before, PADDING + "_count", model_name="hp")
    assert pads == batches  # one padding observation per executed batch


PROCESSED = ":tensorflow:serving:batching_session:processed_batch_size"
PADDING = ":tensorflow:serving:batching_session:padding_size"


def _batch_deltas(server, send) -> tuple[float, float, float, float]:
    """(batches, rows, padding observations, padding rows) that `send()` added for model hp."""
    names = (PROCESSED + "_count", PROCESSED + "_sum", PADDING + "_count", PADDING + "_sum")
    before = metrics_text(server)
    send()
    after = metrics_text(server)
    return tuple(metric(after, n, model_name="hp", signature_name="serving_default")
                 - metric(before, n, model_name="hp", signature_name="serving_default") for n in names)


def test_batching_pads_a_batch_to_the_next_allowed_size(server, grpc_stubs):
    pred, _ = grpc_stubs
    got = {}

    def send():
        got["y"] = pred.Predict(predict_request("hp", {"x": [0.0, 2.0, 4.0]}, version=1), timeout=30)

    # One request of 3 rows is one batch of 3; allowed sizes 2, 4, 8 pad it to 4: exactly 1 row.
    assert _batch_deltas(server, send) == (1, 3, 1, 1)
    assert list(got["y"].outputs["y"].float_val) == [2.0, 3.0, 4.0]  # the padding row is not returned


def test_batching_padding_of_concurrent_requests_is_exact(server, grpc_stubs):
    pred, _ = grpc_stubs
    barrier = threading.Barrier(3)

    def one(i):
        barrier.wait()
        return pred.Predict(predict_request("hp", {"x": [float(i)]}, version=1), timeout=30).outputs["y"].float_val[0]

    def send():
        with cf.ThreadPoolExecutor(3) as ex:
            assert list(ex.map(one, range(3))) == [2.0, 2.5, 3.0]

    batches, rows, pads, padding = _batch_deltas(server, send)
    assert rows == 3 and pads == batches
    # Three 1-row tasks form {3} (padded to 4), {1, 2} (1 -> 2) or {1, 1, 1} (each 1 -> 2): how the
    # 20 ms window fell decides the batches, and the batches decide the padding exactly.
    assert padding == {1: 1, 2: 1, 3: 3}[batches]


def test_full_batch_queue_is_unavailable(grpc_stubs):
    pred, _ = grpc_stubs
    # One batch thread: a slow batch runs while the queue (2 batches x 8 rows) fills up. 4,000 matmuls took
    # only 0.5 s on a fast machine, less than the pauses below: 30,000 keep it busy for seconds anywhere.
    slow = {"x": np.array([1.0], np.float32), "n": np.array([30000], np.int32)}
    fast8 = {"x": np.ones(8, np.float32), "n": np.ones(8, np.int32)}
    with cf.ThreadPoolExecutor(4) as ex:
        first = ex.submit(pred.Predict, predict_request("hp", slow, signature="slow"), timeout=120)
        time.sleep(0.5)
        queued = [ex.submit(pred.Predict, predict_request("hp", fast8, signature="slow"), timeout=120)
                  for _ in range(2)]
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as e:
            pred.Predict(predict_request("hp", {"x": [1.0], "n": np.array([1], np.int32)}, signature="slow"),
                         timeout=60)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "queue" in e.value.details()
        first.result()
        for q in queued:
            assert len(q.result().outputs["y"].float_val) == 8


def test_deadline_exceeded_stops_the_work(server, grpc_stubs):
    pred, _ = grpc_stubs
    req = predict_request("hp", {"x": [1.0], "n": np.array([3000], np.int32)}, version=1, signature="slow")
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(req, timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server saw the deadline too: the request is counted as cancelled, not OK.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = metrics_text(server)
        if metric(text, ":tensorflow:serving:request_count_total", model_name="hp", signature_name="slow",
                  status="CANCELLED") >= 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("server did not record the expired request as cancelled")
    assert pred.Predict(predict_request("hp", {"x": [1.0]}, version=1), timeout=30).outputs["y"].float_val[0] == 2.5


def test_request_metrics(server):
    text = metrics_text(server)
    assert metric(text, ":tensorflow:serving:request_count_total", model_name="hp", API="predict",
                  status="OK") >= 5
    assert metric(text, ":tensorflow:serving:request_count_total", model_name="hp",
                  status="INVALID_ARGUMENT") >= 1
    assert metric(text, ":tensorflow:serving:request_latency_count", model_name="hp") >= 5
    assert metric(text, ":tensorflow:cc:saved_model:load_attempt_count_total", model_name="hp",
                  status="ok") == 2
