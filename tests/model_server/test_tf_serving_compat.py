"""Where a TF Serving user notices (issue 19 §3-§5), against real `tfgate model-server` processes:
the REST metadata JSON, field for field as TF Serving prints it; a malformed text-proto file reported
in TF Serving's (protobuf's C++ parser's) words, line and column, at start-up and on a config poll;
and an unknown input alias (a Keras 3 export's renamed keys) refused with TF Serving's message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, json_format, wrappers_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.model_server import models
from tests.model_server.helpers import http, out, predict_request, stubs, wait_for
from tfgate.serving.model_server import textproto
from tfgate.serving.processes import model_config_text, tfgate_command

MSC = "tensorflow.serving.ModelServerConfig"


@pytest.fixture(scope="module")
def env(tmp_path_factory, model_server_factory):
    d = tmp_path_factory.mktemp("tf-serving-compat")
    models.make_tf1_half_plus_two(d / "tf1")
    models.make_keras_export(d / "kexport")
    models.make_half_plus(d / "hp", 1)
    entries = {n: str(d / n) for n in ("tf1", "kexport", "hp")}
    config = model_config_text(entries)
    server = model_server_factory(workdir=d / "run", model_config=config,
                                  flags=["--model_config_file_poll_wait_seconds=1"])
    _, pred, _ = stubs(server.grpc_target)
    return d, server, pred, config


# ---- §3 metadata
def _tensor(name: str, dtype: str, dims: list[int]) -> dict:
    return {"name": name, "dtype": dtype,
            "tensor_shape": {"dim": [{"size": str(n), "name": ""} for n in dims], "unknown_rank": False}}


def _signature(inputs: dict, outputs: dict, method: str) -> dict:
    return {"inputs": inputs, "outputs": outputs, "method_name": method, "defaults": {}}


# TF Serving's answer for its half_plus_two (TF1 SavedModelBuilder) model: every field, defaults included.
TF1_METADATA = {
    "model_spec": {"name": "tf1", "signature_name": "", "version": "1"},
    "metadata": {"signature_def": {"signature_def": {
        "serving_default": _signature({"x": _tensor("x:0", "DT_FLOAT", [-1])},
                                      {"y": _tensor("y:0", "DT_FLOAT", [-1])}, "tensorflow/serving/predict"),
        "classify_x_to_y": _signature({"inputs": _tensor("tf_example:0", "DT_STRING", [-1])},
                                      {"scores": _tensor("y_ex:0", "DT_FLOAT", [-1, 1])},
                                      "tensorflow/serving/classify"),
        "regress_x_to_y": _signature({"inputs": _tensor("tf_example:0", "DT_STRING", [-1])},
                                     {"outputs": _tensor("y_ex:0", "DT_FLOAT", [-1, 1])},
                                     "tensorflow/serving/regress"),
    }}},
}


def test_rest_metadata_prints_every_field_as_tf_serving(env):
    _, server, _, _ = env
    for path in ("/v1/models/tf1/metadata", "/v1/models/tf1/versions/1/metadata"):
        assert http("GET", server.rest_url + path) == (200, TF1_METADATA)


def test_rest_metadata_of_a_keras_export_keeps_unknown_rank_and_empty_dims(env):
    """Keras 3's archive has an init-op signature whose output has no shape: `dim: []`,
    `unknown_rank: true`, `method_name: ""` are printed, not left out."""
    _, server, _, _ = env
    status, body = http("GET", server.rest_url + "/v1/models/kexport/metadata")
    assert status == 200
    sigs = body["metadata"]["signature_def"]["signature_def"]
    init = sigs["__saved_model_init_op"]
    assert init["method_name"] == "" and init["inputs"] == {} and init["defaults"] == {}
    (only,) = init["outputs"].values()
    assert only["dtype"] == "DT_INVALID" and only["tensor_shape"] == {"dim": [], "unknown_rank": True}
    assert sigs["serving_default"]["inputs"]["features"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}], "unknown_rank": False}


def test_grpc_metadata_is_the_savedmodels_signature_map(env):
    d, server, pred, _ = env
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "tf1"
    resp = pred.GetModelMetadata(req, timeout=30)
    assert (resp.model_spec.name, resp.model_spec.version.value) == ("tf1", 1)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sdm)
    on_disk = loader_impl.parse_saved_model(str(d / "tf1" / "1")).meta_graphs[0].signature_def
    assert dict(sdm.signature_def) == dict(on_disk)
    # REST prints this same message (C++ JsonPrintOptions always_print_primitive_fields).
    as_json = json_format.MessageToDict(sdm, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    assert as_json == TF1_METADATA["metadata"]["signature_def"]


# ---- §4 malformed text-proto files: protobuf's C++ parser is the reference (protoc links the same code)
def _descriptor_set(*files) -> bytes:
    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd):
        if fd.name not in seen:
            for dep in fd.dependencies:
                add(dep)
            seen.add(fd.name)
            fd.CopyToProto(out.file.add())
    for f in files:
        add(f)
    return out.SerializeToString()


def _schema_file(type_name: str, schema: dict) -> descriptor_pb2.FileDescriptorProto:
    """A .proto of the fields tfgate reads (the files TF Serving's pip package does not ship)."""
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{type_name}.proto", package="tensorflow.serving",
                                             syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    scalar = {"bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
              "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
              "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING}

    def message(full_name: str, fields: dict) -> None:
        msg = fdp.message_type.add(name=full_name.rsplit(".", 1)[1])
        for number, (name, kind) in enumerate(fields.items(), 1):
            f = msg.field.add(name=name, number=number)
            repeated = isinstance(kind, list)
            kind = kind[0] if repeated else kind
            f.label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if isinstance(kind, tuple):
                f.type, f.type_name = f.TYPE_MESSAGE, "." + kind[0]
                if not kind[0].startswith("google.protobuf."):
                    message(*kind)
            else:
                f.type = scalar[kind]
    message(type_name, schema)
    return fdp


def _protoc_errors(text: bytes, type_name: str, descriptor_set: Path, proto: str) -> list[tuple[int, int, str]]:
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptor_set}",
                        f"--encode={type_name}", proto], input=text, capture_output=True, timeout=60)
    errors = []
    for line in r.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("input:") and "warning:" not in line:
            pos, msg = line[len("input:"):].split(": ", 1)
            ln, col = pos.split(":")
            errors.append((int(ln), int(col), msg))
    return errors


MODEL_CONFIGS = [
    b'model_config_list {\n  config {\n    name: "hp"\n    base_pth: "/x"\n  }\n}\n',  # unknown field
    b'model_config_list {\n  config {\n    name: "hp"\n  }\n',  # unclosed message
    b'model_config_list {\n\tconfig {\n\t\tname: hp\n\t}\n}\n',  # a bare word for a string (tabs: 8 columns)
    b'model_config_list { config { name: "a" name: "b" } }',  # a field given twice
    b'model_config_list { config { model_version_policy { latest { } all { } } } }',  # two of a oneof
    b'model_config_list { config { version_labels { key: "s" value: 1.5 } } }',  # a float for an int64
    b'model_config_list { config { model_version_policy { latest { num_versions: 5000000000 } } } }',
    b'model_config_list { config { name: "a\n" } }',  # a string across lines
    b'model_config_list { config { name: "a" } } }',  # one brace too many
    b'model_config_list { config: [{name: "a"}, {name: "b"} {name: "c"}] }',
    b'model_config_list { [ext.field] { } }',
    model_config_text({"a": "/m/a"}, labels={"a": {"stable": 1}}, policy="latest { num_versions: 2 }").encode(),
]
SCHEMA_FILES = [
    (textproto.BATCHING_SCHEMA, "tensorflow.serving.BatchingParameters",
     [b"max_batch_size { value: 8 }\nbatch_timeout_micros: 5\n", b"allowed_batch_sizes: [2, 4 8]",
      b"max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: [4, 8]\n"]),
    (textproto.MONITORING_SCHEMA, "tensorflow.serving.MonitoringConfig",
     [b"prometheus_config {\n  enable: yes\n}\n", b"prometheus_config { enabel: true }",
      b'prometheus_config { enable: true, path: "/m" }']),
    (textproto.SSL_SCHEMA, "tensorflow.serving.SSLConfig",
     [b'server_key: "k"\ncustom_ca: 1\n', b'server_cert: "-----BEGIN\\q"', b'client_verify: true client_verify: t']),
]


def test_text_proto_errors_are_protobufs_cpp_errors(tmp_path):
    """Line, column and message of every error equal those of protobuf's C++ text parser (protoc
    --encode), which is what TF Serving logs; texts it accepts are accepted."""
    msc_set = tmp_path / "msc.desc"
    msc_set.write_bytes(_descriptor_set(model_server_config_pb2.ModelServerConfig.DESCRIPTOR.file))
    refused = 0
    for text in MODEL_CONFIGS:
        want = _protoc_errors(text, MSC, msc_set, "tensorflow_serving/config/model_server_config.proto")
        try:
            textproto.parse_model_server_config(text)
            got = []
        except textproto.TextProtoError as e:
            got = e.errors
        assert got == want, text
        refused += bool(want)
    assert refused == len(MODEL_CONFIGS) - 1  # all but the last are malformed
    for schema, type_name, texts in SCHEMA_FILES:
        fdp = _schema_file(type_name, schema)
        fds = descriptor_pb2.FileDescriptorSet.FromString(_descriptor_set(wrappers_pb2.DESCRIPTOR))
        fds.file.add().CopyFrom(fdp)
        path = tmp_path / f"{type_name}.desc"
        path.write_bytes(fds.SerializeToString())
        for text in texts:
            want = _protoc_errors(text, type_name, path, fdp.name)
            try:
                textproto.parse(text, schema, type_name)
                got = []
            except textproto.TextProtoError as e:
                got = e.errors
            assert got == want, (type_name, text)


def test_malformed_model_config_at_start_up(tmp_path):
    bad = tmp_path / "models.config"
    bad.write_bytes(MODEL_CONFIGS[0])
    r = subprocess.run([*tfgate_command(), "model-server", "--port=0", f"--model_config_file={bad}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 255, r.stderr
    lines = [ln.split("] ", 1)[-1] for ln in r.stderr.splitlines()]
    first = (f"Error parsing text-format {MSC}: 4:13: Message type \"tensorflow.serving.ModelConfig\" has no "
             f"field named \"base_pth\".")
    second = f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'"
    assert first in lines and second in lines, r.stderr
    assert lines.index(first) < lines.index(second)


@pytest.mark.parametrize("flag, text, first", [
    ("--batching_parameters_file", b"max_batch_size { value: 8 }\nbatch_timeout_micros: 5\n",
     'tensorflow.serving.BatchingParameters: 2:23: Expected "{", found "5".'),
    ("--monitoring_config_file", b"prometheus_config {\n  enable: yes\n}\n",
     'tensorflow.serving.MonitoringConfig: 3:1: Invalid value for boolean field "enable". Value: "yes".'),
    ("--ssl_config_file", b'server_key: "k"\ncustom_ca: 1\n',
     "tensorflow.serving.SSLConfig: 2:12: Expected string, got: 1"),
], ids=["batching", "monitoring", "ssl"])
def test_other_malformed_files_at_start_up(tmp_path, flag, text, first):
    bad = tmp_path / "bad.config"
    bad.write_bytes(text)
    models.make_trailing_one(tmp_path / "m")
    cmd = [*tfgate_command(), "model-server", "--port=0", "--model_name=m", f"--model_base_path={tmp_path / 'm'}",
           f"{flag}={bad}"] + (["--enable_batching"] if "batching" in flag else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 255, r.stderr
    lines = [ln.split("] ", 1)[-1] for ln in r.stderr.splitlines()]
    assert f"Error parsing text-format {first}" in lines, r.stderr
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in lines, r.stderr


def test_malformed_model_config_on_a_poll_keeps_the_old_config(env):
    d, server, pred, config = env
    path = d / "run" / "models.config"
    # A typo in a field name: the file must not replace the config being served.
    bad = config.replace("    model_platform:", "    model_platfrom:", 1)
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if "model_platfrom" in ln)
    col = bad.splitlines()[line - 1].index(":") + 1
    applied = server.log().count("Applied new model config")
    try:
        path.write_text(bad)
        want = [f"Error parsing text-format {MSC}: {line}:{col}: Message type \"tensorflow.serving.ModelConfig\" "
                f"has no field named \"model_platfrom\".",
                f"Failed to read ModelServerConfig file: Invalid protobuf file: '{path}'"]

        def logged():
            lines = [ln.split("] ", 1)[-1] for ln in server.log().splitlines()]
            return all(w in lines for w in want)

        wait_for(logged, what="the poll to log the parse error")
        assert server.alive()
        r = pred.Predict(predict_request("tf1", {"x": np.array([2.0], np.float32)}), timeout=30)
        assert out(r, "y").tolist() == [3.0]
    finally:
        path.write_text(config)
    # The restored file (the config already served) applies cleanly on a later poll.
    wait_for(lambda: server.log().count("Applied new model config") > applied, what="the restored config")
    assert "PollFilesystemAndReloadConfig failed" not in server.log()


# ---- §5 input aliases: TF Serving's PreProcessPrediction order (sizes first, then each alias)
def _alias_error(alias: str, expected: str) -> str:
    return f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set {{{expected}}}."


def test_unknown_input_alias_grpc(env):
    _, _, pred, _ = env
    x = np.ones([1, 3], np.float32)
    cases = [
        # A client of a legacy Keras export still sends the old key to a Keras 3 archive.
        (predict_request("kexport", {"dense_input": x}), _alias_error("dense_input", "features")),
        (predict_request("hp", {"a": [1.0], "c": [1.0]}, signature="two_inputs"), _alias_error("c", "a,b")),
        # A count that differs is reported as such first, naming what was sent extra and what is missing.
        (predict_request("kexport", {"dense_input": x, "features": x}),
         "input size does not match signature: 2!=1 len({dense_input,features}) != len({features}). "
         "Sent extra: {dense_input}. Missing but required: {}."),
        (predict_request("hp", {"c": [1.0]}, signature="two_inputs"),
         "input size does not match signature: 1!=2 len({c}) != len({a,b}). Sent extra: {c}. "
         "Missing but required: {a,b}."),
    ]
    for req, message in cases:
        with pytest.raises(grpc.RpcError) as e:
            pred.Predict(req, timeout=30)
        assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    r = pred.Predict(predict_request("kexport", {"features": x}), timeout=30)  # the right key works
    assert out(r, "output_0").tolist() == [[6.5]]


def test_unknown_input_alias_rest(env):
    _, server, _, _ = env
    url = server.rest_url + "/v1/models/kexport:predict"
    row = [1.0, 1.0, 1.0]
    for body in ({"instances": [{"dense_input": row}]}, {"inputs": {"dense_input": [row]}}):
        assert http("POST", url, body) == (400, {"error": _alias_error("dense_input", "features")})
    two = server.rest_url + "/v1/models/hp:predict"
    body = {"signature_name": "two_inputs", "instances": [{"a": 1.0, "c": 2.0}]}
    assert http("POST", two, body) == (400, {"error": _alias_error("c", "a,b")})
    body = {"signature_name": "two_inputs", "inputs": {"a": [1.0], "b": [2.0], "c": [3.0]}}
    assert http("POST", two, body) == (400, {"error": (
        "input size does not match signature: 3!=2 len({a,b,c}) != len({a,b}). Sent extra: {c}. "
        "Missing but required: {}.")})
    assert http("POST", url, {"instances": [{"features": row}]}) == (200, {"predictions": [[6.5]]})
