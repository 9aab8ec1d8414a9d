"""Config loading/validation, wire-level model-spec routing, tensor conversion, token file."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

from tfgate.serving.gateway import config, tensors, wire
from tfgate.serving.gateway.auth import TokenStore
from tfgate.v1 import tensor_pb2 as gw

MINIMAL = """\
listen: 127.0.0.1:9000
metrics_listen: 127.0.0.1:9090
models:
  housing: {targets: ["127.0.0.1:8500"]}
  fashion: {targets: ["127.0.0.1:8500", "127.0.0.1:8510"]}
"""


def test_minimal_config_from_the_issue(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(MINIMAL)
    cfg = config.load(path, environ={})
    assert cfg.listen == "127.0.0.1:9000" and cfg.metrics_listen == "127.0.0.1:9090"
    assert cfg.models["fashion"].targets == ["127.0.0.1:8500", "127.0.0.1:8510"]
    assert cfg.models["housing"].backend_model_name == "housing"


def test_every_field_overridable_from_environment(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(MINIMAL)
    env = {
        "TFGATE_GATEWAY__LISTEN": "127.0.0.1:9100",
        "TFGATE_GATEWAY__BACKEND__RETRY__MAX_ATTEMPTS": "7",
        "TFGATE_GATEWAY__MODELS__HOUSING__SPLIT": "{stable: 90, canary: 10}",
        "TFGATE_GATEWAY__MODELS__HOUSING__TARGETS": "dns:///tf-serving-housing:8500",
        "TFGATE_GATEWAY__MODELS__EXTRA__TARGETS": "127.0.0.1:1,127.0.0.1:2",
        "UNRELATED": "x",
    }
    cfg = config.load(path, environ=env)
    assert cfg.listen == "127.0.0.1:9100"
    assert cfg.backend.retry.max_attempts == 7
    assert cfg.models["housing"].split == {"stable": 90, "canary": 10}
    assert cfg.models["housing"].targets == ["dns:///tf-serving-housing:8500"]
    assert cfg.models["extra"].targets == ["127.0.0.1:1", "127.0.0.1:2"]


@pytest.mark.parametrize("text, env, message", [
    (MINIMAL, {"TFGATE_GATEWAY__MODELS__HOUSING__DEADLINE": "5"},
     "models.housing: unknown field(s) deadline"),
    (MINIMAL, {"TFGATE_GATEWAY__MODELS__HOUSING__SPLIT": "{a: 50, b: 40}"}, "models.housing.split"),
    (MINIMAL, {"TFGATE_GATEWAY__MAX_CONCURRENT_REQUESTS": "lots"},
     "max_concurrent_requests: expected an int"),
    (MINIMAL, {"TFGATE_GATEWAY__MODELS__FASHION__TARGETS": "[]"}, "models.fashion.targets: at least one"),
    (MINIMAL, {"TFGATE_GATEWAY__MODELS__FASHION__TARGETS": "http://x:1"}, "models.fashion.targets[0]"),
    (MINIMAL, {"TFGATE_GATEWAY__TLS__CERT_FILE": "/nonexistent.crt",
               "TFGATE_GATEWAY__TLS__KEY_FILE": "/nonexistent.key"}, "tls.cert_file: file not found"),
    ("listen: nowhere\nmodels: {a: {targets: ['h:1']}}", {}, "listen: expected host:port"),
    ("models: {}", {}, "listen: required"),
    ("- a list", {}, "top level must be a mapping"),
])
def test_validation_names_the_field(tmp_path, text, env, message):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ=env)
    assert message in str(err.value)


def _request(**spec) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(**spec))
    req.inputs["x"].float_val.extend([1.0, 2.0])
    req.inputs["x"].dtype = 1
    req.output_filter.append("y")
    return req


@pytest.mark.parametrize("spec, expect", [
    ({"name": "m"}, wire.ModelSpec(name="m")),
    ({"name": "m", "version": wrappers_pb2.Int64Value(value=7), "signature_name": "s"},
     wire.ModelSpec(name="m", version=7, signature_name="s")),
    ({"name": "m", "version_label": "canary"}, wire.ModelSpec(name="m", label="canary")),
])
def test_model_spec_read_from_wire(spec, expect):
    assert wire.request_model_spec(_request(**spec).SerializeToString()) == expect


def test_model_spec_splice_leaves_the_rest_intact():
    original = _request(name="public", version_label="x")
    out = wire.replace_model_spec(original.SerializeToString(),
                                  wire.ModelSpec(name="backend", version=3, signature_name="sig"))
    parsed = predict_pb2.PredictRequest.FromString(out)
    assert parsed.model_spec.name == "backend" and parsed.model_spec.version.value == 3
    assert parsed.model_spec.signature_name == "sig"
    assert parsed.model_spec.WhichOneof("version_choice") == "version"
    assert parsed.inputs == original.inputs and parsed.output_filter == original.output_filter


def test_tensor_round_trip_and_errors():
    arr = np.arange(6, dtype="<f4").reshape(2, 3)
    t = gw.Tensor(dtype=gw.DATA_TYPE_FLOAT32, shape=[2, 3], content=arr.tobytes())
    back = tensors.from_tensor_proto(tensors.to_tensor_proto(t, "inputs[x]"))
    assert back == t
    s = gw.Tensor(dtype=gw.DATA_TYPE_STRING, shape=[2], string_values=[b"a", b"b"])
    assert tensors.from_tensor_proto(tensors.to_tensor_proto(s, "inputs[s]")) == s
    with pytest.raises(tensors.TensorError, match=r"inputs\[x\].content: shape \[2, 3\] of float32 needs 24"):
        tensors.to_tensor_proto(gw.Tensor(dtype=gw.DATA_TYPE_FLOAT32, shape=[2, 3], content=b"\0" * 20),
                                "inputs[x]")
    with pytest.raises(tensors.TensorError, match=r"inputs\[x\].dtype"):
        tensors.to_tensor_proto(gw.Tensor(shape=[1]), "inputs[x]")
    # TF Serving may answer with typed value fields instead of tensor_content.
    p = tensors.to_tensor_proto(t, "x")
    p.ClearField("tensor_content")
    p.float_val.extend(arr.reshape(-1).tolist())
    assert np.array_equal(tensors.to_numpy(p), arr)


def test_token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# comment\nsecret-all\nsecret-housing housing\n")
    store = TokenStore(str(path))
    assert store.authenticate("Bearer secret-all").may_use("fashion")
    p = store.authenticate("bearer secret-housing")
    assert p.may_use("housing") and not p.may_use("fashion")
    assert store.authenticate("Bearer secret-al") is None
    assert store.authenticate("secret-all") is None
    assert store.authenticate(None) is None


def test_signature_problems_name_the_input():
    from tensorflow.core.framework import types_pb2

    from tfgate.serving.gateway.signatures import Input, problems

    sig = {"image": Input(types_pb2.DT_UINT8, [-1, 28, 28]), "k": Input(types_pb2.DT_INT32, None)}
    ok = {"image": (types_pb2.DT_UINT8, [5, 28, 28]), "k": (types_pb2.DT_INT32, [])}
    assert problems(sig, ok, "serving_default") is None
    cases = {
        "inputs[x]: signature 'serving_default' has no input 'x'": {**ok, "x": (types_pb2.DT_UINT8, [1])},
        "inputs[image].dtype: the model expects DT_UINT8, got DT_FLOAT": {
            **ok, "image": (types_pb2.DT_FLOAT, [5, 28, 28])},
        "inputs[image].shape: the model expects ['?', 28, 28], got [5, 28, 27]": {
            **ok, "image": (types_pb2.DT_UINT8, [5, 28, 27])},
        "inputs[image].shape: the model expects ['?', 28, 28], got [784]": {
            **ok, "image": (types_pb2.DT_UINT8, [784])},
        "inputs: missing k": {"image": ok["image"]},
    }
    for expect, given in cases.items():
        assert problems(sig, given, "serving_default").startswith(expect), expect
