"""Issue 13 §1: no single request may make a server allocate unbounded memory.

Real processes: the reliability model server (default bound: the largest accepted message, 2 GiB - 1),
the gateway in front of it (default bound: 16 x max_message_bytes = 256 MiB), and one more model server
started here with `--max_request_tensor_bytes=4000000` and batching (allowed sizes 8 and 100000), for
the cases whose bytes must really be sent. Every bad request is sent with the stock tensorflow-serving-api
stubs (or plain HTTP); each answer is checked for its code and message (the input and both sizes), the
process's memory (VmRSS afterwards, and its peak while answering: VmHWM reset through clear_refs) for
growth under 50 MB, and a good request still answers afterwards.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.fixtures_servers import start_model_server
from tests.model_server.helpers import metric
from tfgate.serving.processes import model_config_text
from tfgate.v1 import gateway_pb2 as gw_pb
from tfgate.v1 import gateway_pb2_grpc as gw_grpc
from tfgate.v1 import tensor_pb2 as gw_tensor

DEFAULT_BOUND = 2**31 - 1
GATEWAY_BOUND = 16 * 16 * 1024 * 1024
SMALL_BOUND = 4_000_000
MB = 1024 * 1024
GROWTH_MB = 50


# ---- memory of a process ---------------------------------------------------------------------
def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for pid {pid}")


class Memory:
    """VmRSS before; afterwards VmRSS and the peak since (VmHWM, reset by writing 5 to clear_refs, so
    memory taken and given back while answering counts too)."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.peak_reset = True
        except OSError:  # not allowed here: VmRSS alone
            self.peak_reset = False
        self.before = _status_mb(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return
        after = _status_mb(self.pid, "VmRSS")
        assert after - self.before < GROWTH_MB, f"VmRSS {self.before:.0f} -> {after:.0f} MB"
        if self.peak_reset:
            peak = _status_mb(self.pid, "VmHWM")
            assert peak - self.before < GROWTH_MB, f"peak {peak:.0f} MB while answering, from {self.before:.0f} MB"


# ---- requests ----------------------------------------------------------------------------------
def tensor(dtype: int, dims, **values) -> tensor_pb2.TensorProto:
    t = tensor_pb2.TensorProto(dtype=dtype, **values)
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    return t


def predict(model: str, inputs: dict, signature: str = "") -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v)
    return req


def call(fn, req) -> tuple[grpc.StatusCode, str, object]:
    try:
        return grpc.StatusCode.OK, "", fn(req, timeout=60)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


@pytest.fixture(scope="module")
def ms(backend):
    with grpc.insecure_channel(backend.grpc_target) as ch:
        yield prediction_service_pb2_grpc.PredictionServiceStub(ch)


@pytest.fixture(scope="module")
def via_gw(gateway):
    with grpc.insecure_channel(gateway.target) as ch:
        yield prediction_service_pb2_grpc.PredictionServiceStub(ch), gw_grpc.InferenceGatewayStub(ch)


BATCHING = """
max_batch_size { value: 100000 }
batch_timeout_micros { value: 0 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 8
allowed_batch_sizes: 100000
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory, model_bases):
    d = tmp_path_factory.mktemp("oversize-ms")
    (d / "batching.config").write_text(BATCHING)
    (d / "monitoring.config").write_text('prometheus_config { enable: true, path: "/metrics" }')
    server = start_model_server(
        d, model_config=model_config_text({k: str(model_bases[k]) for k in ("half", "fashion")}),
        flags=[f"--max_request_tensor_bytes={SMALL_BOUND}", "--enable_batching",
               f"--batching_parameters_file={d / 'batching.config'}",
               f"--monitoring_config_file={d / 'monitoring.config'}"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_ms(small):
    with grpc.insecure_channel(small.grpc_target) as ch:
        yield prediction_service_pb2_grpc.PredictionServiceStub(ch)


def assert_half_answers(stub) -> None:
    """y = 0.5 x + 1 (half, version 1)."""
    code, details, resp = call(stub.Predict, predict("half", {"x": tensor(types_pb2.DT_FLOAT, [2], float_val=[2, 4])}))
    assert code == grpc.StatusCode.OK, details
    assert list(resp.outputs["y"].float_val) == [2.0, 3.0]


def assert_refused(code, details, *parts) -> None:
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    for p in parts:
        assert str(p) in details, f"{p!r} not in {details!r}"


# ---- Predict: shapes the bytes do not carry --------------------------------------------------
F, S = types_pb2.DT_FLOAT, types_pb2.DT_STRING
DECLARED = {  # name: (tensor, its declared bytes)
    "first dim 10^9, one value": (tensor(F, [10**9], float_val=[1.0]), 4 * 10**9),
    "2^62, one value": (tensor(F, [2**62], float_val=[1.0]), 4 * 2**62),
    "[2^31, 2^31], no values": (tensor(F, [2**31, 2**31]), 4 * 2**62),
    "[2^62, 4]: wraps to 0 in int64": (tensor(F, [2**62, 4]), 2**66),
    "10^9 by 4 bytes of tensor_content": (tensor(F, [10**9], tensor_content=b"\0" * 4), 4 * 10**9),
    "10^9 strings, one of 10 bytes": (tensor(S, [10**9], string_val=[b"x" * 10]), 10**9 * 34),
    "2^40 empty strings": (tensor(S, [2**40]), 24 * 2**40),
    "int8 [2^31]: one byte each": (tensor(types_pb2.DT_INT8, [2**31], int_val=[1]), 2**31),
}


@pytest.mark.parametrize("case", DECLARED)
def test_declared_shape_refused_by_the_model_server(backend, ms, case):
    tp, declared = DECLARED[case]
    with Memory(backend.pid):
        code, details, _ = call(ms.Predict, predict("half", {"x": tp}))
    assert_refused(code, details, "input x:", f"takes {declared} bytes", f"limit of {DEFAULT_BOUND} bytes",
                   "--max_request_tensor_bytes")
    assert_half_answers(ms)


@pytest.mark.parametrize("case", DECLARED)
def test_declared_shape_refused_by_the_gateway_pass_through(backend, gateway, via_gw, case):
    tp, declared = DECLARED[case]
    stub, _ = via_gw
    with Memory(gateway.proc.pid), Memory(backend.pid):
        code, details, _ = call(stub.Predict, predict("half", {"x": tp}))
    assert_refused(code, details, "inputs[x]:", f"takes {declared} bytes", f"limit of {GATEWAY_BOUND} bytes",
                   "gateway models.half.max_tensor_bytes")
    assert_half_answers(stub)


def test_inputs_add_up(backend, ms):
    """Two inputs under the bound alone, over it together: the second one named, with the total."""
    a = tensor(F, [300_000_000], float_val=[1.0])
    with Memory(backend.pid):
        code, details, _ = call(ms.Predict, predict("half", {"a": a, "b": a}, "two_inputs"))
    assert_refused(code, details, "input b:", "takes 1200000000 bytes (2400000000 with the request's other inputs)",
                   f"limit of {DEFAULT_BOUND}")


@pytest.mark.parametrize("dims", [[10**9], [2**62], [2**31, 2**31], [2**62, 4]])
def test_gateway_typed_api_refuses_declared_shapes(gateway, via_gw, dims):
    _, typed = via_gw
    req = gw_pb.PredictRequest(model=gw_pb.ModelRef(name="half"))
    req.inputs["x"].CopyFrom(gw_tensor.Tensor(dtype=gw_tensor.DATA_TYPE_FLOAT32, shape=dims, content=b"\0" * 4))
    with Memory(gateway.proc.pid):
        code, details, _ = call(typed.Predict, req)
    assert_refused(code, details, "inputs[x]:", f"takes {4 * int(np.prod(dims, dtype=object))} bytes",
                   f"limit of {GATEWAY_BOUND}")


# ---- Predict: values that do not fit the shape -----------------------------------------------
MALFORMED = {
    "2 values for 5 elements": (tensor(F, [5], float_val=[1, 2]), "2 values were sent for 5 elements"),
    "7 values for 5 elements": (tensor(F, [5], float_val=[1] * 7), "7 values were sent for 5 elements"),
    "3 strings for 2 elements": (tensor(S, [2], string_val=[b"a", b"b", b"c"]), "3 values were sent for 2"),
    "negative dimension": (tensor(F, [-1, 2]), "shape [-1,2] has a negative dimension"),
    "8 bytes of content for 3 floats": (tensor(F, [3], tensor_content=b"\0" * 8), "needs 12 bytes of tensor_content"),
    "odd complex numbers": (tensor(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1, 2, 3]), "scomplex_val holds 3"),
}


@pytest.mark.parametrize("case", MALFORMED)
@pytest.mark.parametrize("through", ["model server", "gateway"])
def test_values_that_do_not_fit_the_shape(ms, via_gw, case, through):
    tp, words = MALFORMED[case]
    stub = ms if through == "model server" else via_gw[0]
    code, details, _ = call(stub.Predict, predict("half", {"x": tp}))
    assert_refused(code, details, "x", words)


def test_tensorflow_fill_rule_still_holds(ms, via_gw):
    """None: zeros; exactly one: repeated over the shape (y = 0.5 x + 1)."""
    for stub in (ms, via_gw[0]):
        code, details, resp = call(stub.Predict, predict("half", {"x": tensor(F, [3], float_val=[2.0])}))
        assert code == grpc.StatusCode.OK, details
        assert list(resp.outputs["y"].float_val) == [2.0, 2.0, 2.0]
        code, details, resp = call(stub.Predict, predict("half", {"x": tensor(F, [2])}))
        assert code == grpc.StatusCode.OK, details
        assert list(resp.outputs["y"].float_val) == [1.0, 1.0]


def test_many_real_strings_over_the_bound(small, small_ms):
    """No fill: 150,000 strings of 10 bytes really sent, 5.1 MB as a string tensor, over 4 MB."""
    tp = tensor(S, [150_000], string_val=[b"0123456789"] * 150_000)
    with Memory(small.pid):
        code, details, _ = call(small_ms.Predict, predict("half", {"s": tp}, "echo_bytes"))
    assert_refused(code, details, "input s:", "takes 5100000 bytes", f"limit of {SMALL_BOUND}")
    assert_half_answers(small_ms)


# ---- Classify / Regress / MultiInference: the context is repeated in every example ---------------
def _with_context(n: int, context_bytes: int) -> input_pb2.Input:
    inp = input_pb2.Input()
    ctx = inp.example_list_with_context.context
    ctx.features.feature["blob"].bytes_list.value.append(b"c" * context_bytes)
    inp.example_list_with_context.examples.extend([example_pb2.Example()] * n)
    return inp


def test_examples_times_context_refused(backend, gateway, ms, via_gw):
    inp = _with_context(3000, MB)  # 1 MB sent; 3 GB as the string tensor the model would get
    ctx = inp.example_list_with_context.context.ByteSize()
    declared = 3000 * (24 + ctx) + inp.ByteSize()
    req = classification_pb2.ClassificationRequest(input=inp)
    req.model_spec.name, req.model_spec.signature_name = "half", "classify"
    with Memory(backend.pid):
        code, details, _ = call(ms.Classify, req)
    assert_refused(code, details, "input: 3000 examples", f"{ctx}-byte context", f"takes {declared} bytes",
                   f"limit of {DEFAULT_BOUND}")
    multi = inference_pb2.MultiInferenceRequest(input=inp)
    for method, sig in (("tensorflow/serving/classify", "classify"), ("tensorflow/serving/regress", "regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "half", sig
    with Memory(backend.pid):
        code, details, _ = call(ms.MultiInference, multi)
    assert_refused(code, details, "input: 3000 examples", f"takes {declared} bytes")
    stub, _ = via_gw
    reg = regression_pb2.RegressionRequest(input=inp)
    reg.model_spec.name, reg.model_spec.signature_name = "half", "regress"
    with Memory(gateway.proc.pid), Memory(backend.pid):
        code, details, _ = call(stub.Regress, reg)
    assert_refused(code, details, "input: 3000 examples", f"takes {declared} bytes", f"limit of {GATEWAY_BOUND}")
    assert_half_answers(ms)


def test_many_examples_over_the_bound(small, small_ms):
    ex = example_pb2.Example()
    ex.features.feature["x"].float_list.value.append(1.0)
    ex.features.feature["pad"].bytes_list.value.append(b"p" * 1000)
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "half", "classify"
    req.input.example_list.examples.extend([ex] * 4000)
    with Memory(small.pid):
        code, details, _ = call(small_ms.Classify, req)
    assert_refused(code, details, "input: 4000 examples", f"limit of {SMALL_BOUND}")
    del req.input.example_list.examples[3:]
    code, details, resp = call(small_ms.Classify, req)
    assert code == grpc.StatusCode.OK, details
    assert len(resp.result.classifications) == 3


# ---- REST ------------------------------------------------------------------------------------------
def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _b64(n: int) -> str:
    return base64.b64encode(b"\x01" * n).decode()


def test_rest_b64_string_over_the_bound(small):
    """2 MB of bytes as b64: its JSON (2.7 MB parsed) and the 2 MB string tensor pass 4 MB together."""
    body = json.dumps({"signature_name": "echo_bytes", "instances": [{"b64": _b64(2_000_000)}]}).encode()
    with Memory(small.pid):
        status, doc = _post(small.rest_url + "/v1/models/half:predict", body)
    assert status == 400, doc
    assert "input s: a string tensor of 1 element takes 2000024 bytes" in doc["error"], doc
    assert "with the parsed JSON" in doc["error"] and f"limit of {SMALL_BOUND} bytes" in doc["error"], doc


def test_rest_body_too_large_to_parse(small):
    """6 MB as b64 in `inputs`, and 120,000 numbers (240 kB of text, ~5 MB once parsed): refused before
    json.loads, with the body's size and the estimate."""
    for body in (json.dumps({"signature_name": "echo_bytes", "inputs": {"s": [{"b64": _b64(6_000_000)}]}}).encode(),
                 b'{"instances": [' + b",".join([b"0"] * 120_000) + b"]}"):
        with Memory(small.pid):
            status, doc = _post(small.rest_url + "/v1/models/half:predict", body)
        assert status == 400, doc
        assert f"request body: {len(body)} bytes of JSON would take about" in doc["error"], doc
        assert f"limit of {SMALL_BOUND} bytes" in doc["error"], doc


def test_rest_numbers_over_the_bound(small):
    """90,000 numbers: the parsed JSON fits, adding the float tensor does not; the input is named."""
    body = b'{"instances": [' + b",".join([b"0"] * 90_000) + b"]}"
    with Memory(small.pid):
        status, doc = _post(small.rest_url + "/v1/models/half:predict", body)
    assert status == 400, doc
    assert "input x: shape [90000] of float takes 360000 bytes" in doc["error"], doc
    status, doc = _post(small.rest_url + "/v1/models/half:predict", b'{"instances": [2.0, 4.0]}')
    assert status == 200 and doc == {"predictions": [2.0, 3.0]}, doc


# ---- batching: padding copies rows ---------------------------------------------------------------
PADDING = ":tensorflow:serving:batching_session:padding_size_sum"


def _padding(server) -> float:
    with urllib.request.urlopen(server.rest_url + "/metrics", timeout=30) as r:
        return metric(r.read().decode(), PADDING, model_name="fashion")


def test_batching_does_not_pad_beyond_the_bound(small, small_ms):
    """Allowed sizes 8 and 100000: 1 row pads to 8 (5 kB of padding), 9 rows would pad to 100000
    (78 MB of copies of one image, over 4 MB), so they run as 9."""
    for rows, padding in ((1, 7), (9, 0)):
        before = _padding(small)
        img = tensor(types_pb2.DT_UINT8, [rows, 28, 28], tensor_content=bytes(rows * 784))
        with Memory(small.pid):
            code, details, resp = call(small_ms.Predict, predict("fashion", {"image": img}))
        assert code == grpc.StatusCode.OK, details
        assert [d.size for d in resp.outputs["probabilities"].tensor_shape.dim] == [rows, 10]
        assert _padding(small) - before == padding


# ---- where the bound comes from -----------------------------------------------------------------
def test_model_server_bound_defaults_to_the_largest_accepted_message():
    from tfgate.serving.model_server import flags, server

    def bound(*argv):
        return server.max_tensor_bytes(flags.parse(list(argv)))

    assert bound("--rest_api_port=8501") == DEFAULT_BOUND
    assert bound() == DEFAULT_BOUND  # gRPC alone: its default receive limit is unlimited, so protobuf's
    assert bound("--grpc_channel_arguments=grpc.max_receive_message_length=1048576") == 1048576
    assert bound("--grpc_channel_arguments=grpc.max_receive_message_length=1048576",
                 "--rest_api_port=8501") == DEFAULT_BOUND  # REST still takes 2 GiB bodies
    assert bound("--max_request_tensor_bytes=5000") == 5000
    with pytest.raises(server.StartError, match="max_request_tensor_bytes must be >= 0"):
        bound("--max_request_tensor_bytes=-1")


def test_gateway_bound_from_yaml_and_environment(tmp_path):
    from tfgate.serving.gateway import config

    path = tmp_path / "gw.yaml"
    path.write_text("listen: 127.0.0.1:9000\nmodels:\n  half: {targets: ['127.0.0.1:8500']}\n"
                    "  big: {targets: ['127.0.0.1:8500'], max_message_bytes: 2048, max_tensor_bytes: 123456}\n")
    cfg = config.load(path, environ={})
    assert cfg.models["half"].max_tensor_bytes == 16 * cfg.models["half"].max_message_bytes == GATEWAY_BOUND
    assert cfg.models["big"].max_tensor_bytes == 123456
    cfg = config.load(path, environ={"TFGATE_GATEWAY__MODELS__HALF__MAX_TENSOR_BYTES": "5000"})
    assert cfg.models["half"].max_tensor_bytes == 5000
    with pytest.raises(config.ConfigError, match=r"models.half.max_tensor_bytes: must be >= 0"):
        config.load(path, environ={"TFGATE_GATEWAY__MODELS__HALF__MAX_TENSOR_BYTES": "-1"})
