"""The v2 codec alone (serving/v2_codec.py): datatypes, gRPC contents and raw tensors, REST JSON and the
binary extension, signature checks, the size bound, metadata and Triton's model configuration."""

from __future__ import annotations

import json
import struct

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2 as DT
from tensorflow.core.protobuf import meta_graph_pb2

from tfgate.inference import open_inference_grpc_pb2 as pb
from tfgate.serving import tensor_limits as limits
from tfgate.serving import v2_codec as v2

BIG = limits.MAX_MESSAGE_BYTES

ALL = {  # datatype -> sample values (flat)
    "BOOL": [True, False, True, True], "UINT8": [0, 1, 200, 255], "UINT16": [0, 1, 60000, 65535],
    "UINT32": [0, 1, 2**32 - 1, 7], "UINT64": [0, 1, 2**64 - 1, 9], "INT8": [-128, -1, 0, 127],
    "INT16": [-32768, -1, 0, 32767], "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 2**63 - 1], "FP16": [0.5, -1.0, 65504.0, 0.0],
    "FP32": [0.25, -1.5, 3.0e38, 0.0], "FP64": [0.1, -1e300, 2.5, 0.0], "BYTES": [b"a", b"", b"\xff\x00z", b"hi"],
}


def sigdef(inputs: dict, outputs: dict | None = None) -> meta_graph_pb2.SignatureDef:
    """inputs/outputs: alias -> (TF dtype, shape list or None for unknown rank)."""
    sd = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for target, spec in ((sd.inputs, inputs), (sd.outputs, outputs or {})):
        for alias, (dt, shape) in spec.items():
            info = target[alias]
            info.name = f"{alias}:0"
            info.dtype = dt
            if shape is None:
                info.tensor_shape.unknown_rank = True
            else:
                for d in shape:
                    info.tensor_shape.dim.add(size=d)
    return sd


def sig_for(datatype: str, shape=(-1,)):
    return sigdef({"x": (v2.TF_OF[datatype], list(shape))}).inputs


def budget(limit: int = BIG) -> limits.Budget:
    return limits.Budget(limit, "--max_request_tensor_bytes")


def grpc_req(*inputs, raw=None) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape, contents in inputs:
        t = req.inputs.add(name=name, datatype=datatype, shape=shape)
        if contents is not None:
            t.contents.CopyFrom(contents)
    if raw is not None:
        req.raw_input_contents.extend(raw)
    return req


def expected(datatype: str, values) -> np.ndarray:
    if datatype == "BYTES":
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    return np.asarray(values, dtype=v2.NUMPY[datatype])


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tolist() == b.tolist()


# ---- datatypes
def test_every_datatype_maps_to_numpy_and_tensorflow():
    for name, dt in v2.NUMPY.items():
        assert v2.datatype_of_tf(v2.TF_OF[name]) == name
        if name != "BYTES":
            assert v2.datatype_of_array(np.zeros(1, dt), "t") == name
    assert v2.datatype_of_tf(DT.DT_COMPLEX64) == "COMPLEX64"  # no v2 type: no client can send it


def test_bf16_and_unknown_datatypes_are_refused_by_name():
    with pytest.raises(v2.V2Error, match="input 'x': datatype BF16 is not supported.*send FP32"):
        v2.numpy_dtype("BF16", "input 'x'")
    with pytest.raises(v2.V2Error, match="input 'x': unknown datatype 'FLOAT32'; one of BOOL, UINT8"):
        v2.numpy_dtype("FLOAT32", "input 'x'")
    # A BF16 signature input: the request cannot match it, and is told why.
    sig = sigdef({"x": (DT.DT_BFLOAT16, [-1])}).inputs
    with pytest.raises(v2.V2Error, match="input 'x': datatype BF16 is not supported"):
        v2.decode_grpc_request(grpc_req(("x", "FP32", [1], pb.InferTensorContents(fp32_contents=[1]))),
                               sig, budget())


# ---- gRPC typed contents
@pytest.mark.parametrize("datatype", [d for d in ALL if d != "FP16"])
def test_typed_contents_decode_every_datatype(datatype):
    values = ALL[datatype]
    contents = pb.InferTensorContents()
    getattr(contents, v2.CONTENTS_FIELD[datatype]).extend(values)
    got = v2.decode_grpc_request(grpc_req(("x", datatype, [2, 2], contents)), sig_for(datatype, [-1, 2]), budget())
    assert_same(got["x"], expected(datatype, values).reshape(2, 2))


def test_typed_contents_errors_name_the_tensor():
    sig = sig_for("INT8")
    with pytest.raises(v2.V2Error, match="input 'x': value 300 does not fit INT8"):
        v2.decode_grpc_request(grpc_req(("x", "INT8", [2], pb.InferTensorContents(int_contents=[1, 300]))),
                               sig, budget())
    with pytest.raises(v2.V2Error, match="input 'x': shape \\[3\\] needs 3 values, int_contents holds 2"):
        v2.decode_grpc_request(grpc_req(("x", "INT8", [3], pb.InferTensorContents(int_contents=[1, 2]))),
                               sig, budget())
    with pytest.raises(v2.V2Error, match="input 'x' has datatype INT8, whose values go in int_contents, but "
                                         "fp32_contents is set"):
        v2.decode_grpc_request(grpc_req(("x", "INT8", [1], pb.InferTensorContents(fp32_contents=[1]))),
                               sig, budget())
    with pytest.raises(v2.V2Error, match="input 'x': FP16 has no typed contents field; send it in "
                                         "raw_input_contents"):
        v2.decode_grpc_request(grpc_req(("x", "FP16", [1], pb.InferTensorContents())), sig_for("FP16"), budget())


# ---- gRPC raw contents
@pytest.mark.parametrize("datatype", list(ALL))
def test_raw_contents_round_trip_every_datatype(datatype):
    arr = expected(datatype, ALL[datatype]).reshape(2, 2)
    raw = v2.to_raw(arr, datatype)
    got = v2.decode_grpc_request(grpc_req(("x", datatype, [2, 2], None), raw=[raw]), sig_for(datatype, [2, -1]),
                                 budget())
    assert_same(got["x"], arr)
    resp = v2.encode_grpc_response(pb.ModelInferRequest(model_name="m", id="r1"), 3, {"y": arr}, ["y"])
    assert (resp.model_name, resp.model_version, resp.id) == ("m", "3", "r1")
    assert (resp.outputs[0].name, resp.outputs[0].datatype, list(resp.outputs[0].shape)) == ("y", datatype, [2, 2])
    assert resp.raw_output_contents[0] == raw


def test_raw_bytes_are_length_prefixed_little_endian():
    arr = expected("BYTES", [b"ab", b"", b"xyz"])
    assert v2.to_raw(arr, "BYTES") == b"\x02\x00\x00\x00ab" + b"\x00" * 4 + b"\x03\x00\x00\x00xyz"
    assert v2.to_raw(np.array([1, 256], np.int32), "INT32") == struct.pack("<ii", 1, 256)


def test_raw_contents_errors_name_the_tensor():
    sig = sig_for("FP32")
    with pytest.raises(v2.V2Error, match=r"input 'x' \(raw_input_contents\[0\]\): shape \[3\] of FP32 needs 12 "
                                         r"bytes of raw data, got 8"):
        v2.decode_grpc_request(grpc_req(("x", "FP32", [3], None), raw=[b"\0" * 8]), sig, budget())
    with pytest.raises(v2.V2Error, match="raw_input_contents holds 2 entries for 1 inputs"):
        v2.decode_grpc_request(grpc_req(("x", "FP32", [1], None), raw=[b"\0" * 4, b""]), sig, budget())
    with pytest.raises(v2.V2Error, match="input 'x' has contents while the request uses raw_input_contents"):
        v2.decode_grpc_request(grpc_req(("x", "FP32", [1], pb.InferTensorContents(fp32_contents=[1])),
                                        raw=[b"\0" * 4]), sig, budget())
    sig = sig_for("BYTES")
    with pytest.raises(v2.V2Error, match=r"input 'x' \(raw_input_contents\[0\]\): element 1 declares 9 bytes at "
                                         r"offset 5, only 2 follow"):
        v2.decode_grpc_request(grpc_req(("x", "BYTES", [2], None), raw=[b"\1\0\0\0a\x09\0\0\0bc"]), sig, budget())
    with pytest.raises(v2.V2Error, match="2 byte\\(s\\) left at offset 5, too few for a BYTES element's 4-byte "
                                         "length"):
        v2.decode_grpc_request(grpc_req(("x", "BYTES", [2], None), raw=[b"\1\0\0\0a\0\0"]), sig, budget())
    with pytest.raises(v2.V2Error, match="shape \\[3\\] needs 3 BYTES elements, the raw data holds 1"):
        v2.decode_grpc_request(grpc_req(("x", "BYTES", [3], None), raw=[b"\1\0\0\0a"]), sig, budget())
    with pytest.raises(v2.V2Error, match="BOOL bytes must be 0 or 1"):
        v2.decode_grpc_request(grpc_req(("x", "BOOL", [2], None), raw=[b"\1\2"]), sig_for("BOOL"), budget())


# ---- the signature
def test_requests_are_checked_against_the_signature():
    sig = sigdef({"a": (DT.DT_FLOAT, [-1, 3]), "b": (DT.DT_STRING, None)}).inputs
    a = ("a", "FP32", [1, 3], pb.InferTensorContents(fp32_contents=[1, 2, 3]))
    b = ("b", "BYTES", [1], pb.InferTensorContents(bytes_contents=[b"s"]))
    got = v2.decode_grpc_request(grpc_req(a, b), sig, budget())
    assert got["a"].shape == (1, 3) and got["b"].tolist() == [b"s"]
    cases = {
        "missing input 'b'; the signature's inputs are 'a', 'b'": [a],
        "unknown input 'c'; the signature's inputs are 'a', 'b'": [a, b, ("c", "FP32", [0], None)],
        "input 'a' is given more than once": [a, a, b],
        "input 'a' has datatype FP64; the signature wants FP32": [("a", "FP64", [1, 3], None), b],
        r"input 'a' has shape \[1,4\]; the signature wants \[-1,3\] \(-1: any size\)": [("a", "FP32", [1, 4], None), b],
        r"input 'a' has shape \[3\]; the signature wants \[-1,3\]": [("a", "FP32", [3], None), b],
        "input 1 has no name": [a, ("", "FP32", [1], None)],
        "input 'a': shape \\[-1,3\\] has a negative dimension": [("a", "FP32", [-1, 3], None), b],
    }
    for message, inputs in cases.items():
        with pytest.raises(v2.V2Error, match=message) as e:
            v2.decode_grpc_request(grpc_req(*inputs), sig, budget())
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.http_status == 400


def test_outputs_asked_for_are_checked():
    outs = sigdef({}, {"y": (DT.DT_FLOAT, [-1]), "z": (DT.DT_STRING, [-1])}).outputs
    assert v2.requested_outputs([], outs) == ["y", "z"]
    assert v2.requested_outputs(["z"], outs) == ["z"]
    with pytest.raises(v2.V2Error, match="unknown output 'q'; the signature's outputs are 'y', 'z'"):
        v2.requested_outputs(["q"], outs)
    with pytest.raises(v2.V2Error, match="output 'y' is asked for more than once"):
        v2.requested_outputs(["y", "y"], outs)


def test_signature_comes_from_a_request_parameter():
    req = pb.ModelInferRequest()
    assert v2.signature_name(req.parameters) == "serving_default"
    req.parameters["signature_name"].string_param = "echo_bytes"
    assert v2.signature_name(req.parameters) == "echo_bytes"
    req.parameters["signature_name"].int64_param = 3
    with pytest.raises(v2.V2Error, match="parameter signature_name must be a non-empty string, got 3"):
        v2.signature_name(req.parameters)
    assert v2.json_signature({"parameters": {"signature_name": "classify"}}) == "classify"


# ---- the size bound, before anything is decoded
def test_declared_sizes_are_refused_before_decoding():
    sig = sig_for("FP32")
    huge = grpc_req(("x", "FP32", [10**9], pb.InferTensorContents(fp32_contents=[1.0])))
    with pytest.raises(v2.V2Error, match=r"input 'x': shape \[1000000000\] of FP32 takes 4000000000 bytes, over "
                                         r"the limit of 1000 bytes for a request's tensors "
                                         r"\(--max_request_tensor_bytes\)"):
        v2.decode_grpc_request(huge, sig, budget(1000))
    with pytest.raises(v2.V2Error, match="input 'x': shape"):
        v2.check_grpc_request(huge, budget(1000))
    with pytest.raises(v2.V2Error, match="has more than 254|dimensions, more than 254"):
        v2.check_grpc_request(grpc_req(("x", "FP32", [1] * 300, None)), budget())
    # Two inputs that fit alone but not together; the second one is named.
    two = sigdef({"a": (DT.DT_FLOAT, [-1]), "b": (DT.DT_FLOAT, [-1])}).inputs
    req = grpc_req(("a", "FP32", [200], None), ("b", "FP32", [200], None), raw=[b"\0" * 800] * 2)
    with pytest.raises(v2.V2Error, match=r"input 'b': .* takes 800 bytes \(1600 with the request's other inputs\)"):
        v2.decode_grpc_request(req, two, budget(1000))
    # BYTES count their content.
    raw = b"".join(struct.pack("<I", 600) + b"s" * 600 for _ in range(2))
    with pytest.raises(v2.V2Error, match="input 'x'.*over the limit of 1000"):
        v2.check_grpc_request(grpc_req(("x", "BYTES", [2], None), raw=[raw]), budget(1000))


# ---- REST JSON
def test_json_data_flat_or_nested_for_every_datatype():
    for datatype, values in ALL.items():
        if datatype == "BYTES":
            values = ["a", "", "é", "hi"]
        for data in (values, [values[:2], values[2:]]):
            doc = {"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2], "data": data}]}
            got, wanted = v2.decode_json_request(doc, b"", sig_for(datatype, [2, 2]), budget())
            want = [v.encode() for v in values] if datatype == "BYTES" else values
            assert_same(got["x"], expected(datatype, want).reshape(2, 2))
            assert wanted.names == [] and not wanted.is_binary("y")


def test_json_errors_name_the_tensor():
    def bad(t, sig=None, binary=b""):
        doc = {"inputs": [{"name": "x", "shape": [2], **t}]}
        with pytest.raises(v2.V2Error) as e:
            v2.decode_json_request(doc, binary, sig or sig_for(t.get("datatype", "FP32")), budget())
        return e.value.message

    assert bad({"datatype": "INT32", "data": [1, 2.5]}) == "input 'x': INT32 data must be integers, got 2.5"
    assert bad({"datatype": "FP32", "data": [1, "a"]}) == "input 'x': FP32 data must be numbers, got \"a\""
    assert bad({"datatype": "FP32", "data": [1, True]}) == "input 'x': FP32 data must be numbers, got true"
    assert bad({"datatype": "BOOL", "data": [1, 0]}) == "input 'x': BOOL data must be true or false, got 1"
    assert bad({"datatype": "BYTES", "data": ["a", 1]}) == "input 'x': BYTES data must be strings, got 1"
    assert bad({"datatype": "UINT8", "data": [1, 256]}) == "input 'x': value 256 does not fit UINT8"
    assert bad({"datatype": "INT64", "data": [1, 2**63]}) == f"input 'x': value {2**63} does not fit INT64"
    assert bad({"datatype": "FP32", "data": [[1], [2, 3]]}) == "input 'x': shape [2] needs 2 values, data holds 3"
    assert bad({"datatype": "FP32"}) == "input 'x' has neither 'data' nor parameters.binary_data_size"
    assert bad({"datatype": "FP32", "shape": "2", "data": [1, 2]}) == "input 'x': 'shape' must be a list of integers"
    assert bad({"datatype": "FP32", "parameters": {"binary_data_size": 8}}, binary=b"\0" * 4) == (
        "input 'x': binary_data_size 8 runs past the 4 binary bytes after the JSON header (at offset 0)")
    assert bad({"datatype": "FP32", "data": [1, 2]}, binary=b"\0" * 4) == (
        "4 binary bytes after the JSON header belong to no input")
    with pytest.raises(v2.V2Error, match="'inputs' must be a non-empty list of tensors"):
        v2.decode_json_request({"inputs": []}, b"", sig_for("FP32"), budget())
    with pytest.raises(v2.V2Error, match="the request body is not JSON"):
        v2.parse_json_body(b"{nope", None)
    with pytest.raises(v2.V2Error, match="Inference-Header-Content-Length '99' is not a length within the body's "
                                         "2 bytes"):
        v2.parse_json_body(b"{}", "99")


def test_json_size_bound_counts_declared_shapes():
    doc = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [10**8], "data": [1.0]}]}
    with pytest.raises(v2.V2Error, match=r"input 'x': shape \[100000000\] of FP64 takes 800000000 bytes"):
        v2.decode_json_request(doc, b"", sig_for("FP64"), budget(10**6))


def test_binary_extension_in_and_out():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    s = expected("BYTES", [b"\xff\xfe", b"ok"])
    head = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
        {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 12}},
    ], "outputs": [{"name": "s", "parameters": {"binary_data": True}}, {"name": "a"}],
        "parameters": {"binary_data_output": False}}).encode()
    body = head + v2.to_raw(a, "FP32") + v2.to_raw(s, "BYTES")
    doc, binary = v2.parse_json_body(body, str(len(head)))
    sig = sigdef({"a": (DT.DT_FLOAT, [-1, 3]), "s": (DT.DT_STRING, [-1])}).inputs
    got, wanted = v2.decode_json_request(doc, binary, sig, budget())
    assert_same(got["a"], a)
    assert_same(got["s"], s)
    assert wanted.names == ["s", "a"] and wanted.is_binary("s") and not wanted.is_binary("a")
    out, n = v2.encode_json_response("m", 2, "id7", got, wanted.names, wanted)
    meta = json.loads(out[:n])
    assert meta == {"model_name": "m", "model_version": "2", "id": "id7", "outputs": [
        {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 12}},
        {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}]}
    assert out[n:] == v2.to_raw(s, "BYTES")


def test_json_response_without_binary_and_non_utf8_bytes():
    wanted = v2.JsonOutputs([], {}, False)
    out, n = v2.encode_json_response("m", 1, "", {"y": np.array([[True, False]])}, ["y"], wanted)
    assert n is None
    assert json.loads(out) == {"model_name": "m", "model_version": "1",
                               "outputs": [{"name": "y", "datatype": "BOOL", "shape": [1, 2], "data": [True, False]}]}
    with pytest.raises(v2.V2Error, match="output 'z' holds bytes that are not UTF-8, which JSON cannot carry; ask "
                                         "for it as binary data"):
        v2.encode_json_response("m", 1, "", {"z": expected("BYTES", [b"\xff"])}, ["z"], wanted)
    everything_binary = v2.JsonOutputs([], {}, True)
    out, n = v2.encode_json_response("m", 1, "", {"z": expected("BYTES", [b"\xff"])}, ["z"], everything_binary)
    assert out[n:] == b"\1\0\0\0\xff"
    with pytest.raises(v2.V2Error, match="output 'c': dtype complex64 has no datatype") as e:
        v2.encode_json_response("m", 1, "", {"c": np.zeros(1, np.complex64)}, ["c"], wanted)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION


# ---- metadata and configuration
def test_metadata_and_config_from_a_signature():
    sd = sigdef({"image": (DT.DT_UINT8, [-1, 28, 28]), "any": (DT.DT_FLOAT, None)},
                {"probabilities": (DT.DT_FLOAT, [-1, 10]), "classes": (DT.DT_STRING, [-1])})
    meta = v2.model_metadata("fashion", [1, 2], sd)
    assert meta == {"name": "fashion", "versions": ["1", "2"], "platform": "tensorflow_savedmodel",
                    "inputs": [{"name": "any", "datatype": "FP32", "shape": [-1]},
                               {"name": "image", "datatype": "UINT8", "shape": [-1, 28, 28]}],
                    "outputs": [{"name": "classes", "datatype": "BYTES", "shape": [-1]},
                                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]}
    proto = v2.metadata_proto(meta)
    assert list(proto.inputs[1].shape) == [-1, 28, 28] and proto.outputs[0].datatype == "BYTES"

    sd = sigdef({"image": (DT.DT_UINT8, [-1, 28, 28])}, {"classes": (DT.DT_STRING, [-1])})
    cfg = v2.model_config("fashion", sd, max_batch_size=32, batching=True)
    assert cfg.max_batch_size == 32 and cfg.HasField("dynamic_batching")
    assert (cfg.input[0].name, cfg.input[0].data_type, list(cfg.input[0].dims)) == ("image", pb.TYPE_UINT8, [28, 28])
    assert (cfg.output[0].data_type, list(cfg.output[0].dims)) == (pb.TYPE_STRING, [])
    # A tensor without an open first dimension: no batch dimension at all.
    sd = sigdef({"x": (DT.DT_FLOAT, [3])}, {"y": (DT.DT_FLOAT, [-1])})
    cfg = v2.model_config("m", sd, max_batch_size=32)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [3] and not cfg.HasField("dynamic_batching")
    assert v2.server_metadata("0.1.0")["extensions"] == ["binary_tensor_data", "parameters", "model_configuration"]
