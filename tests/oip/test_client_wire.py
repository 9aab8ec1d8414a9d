"""Offline wire check against the clients nobody here wrote: what tritonclient and the kserve SDK encode,
the v2 codec decodes to the same arrays; what the codec encodes, they decode to the same arrays. Every
datatype, gRPC (raw tensors) and REST (binary extension and plain JSON). And our .proto's field numbers,
types and method paths are theirs."""

from __future__ import annotations

import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from tfgate.inference import open_inference_grpc_pb2 as pb
from tfgate.serving import tensor_limits as limits
from tfgate.serving import v2_codec as v2

from .clients import wire
from .clients.samples import arrays, dump
from .conftest import run_client


def all_types_signature() -> meta_graph_pb2.SignatureDef:
    sd = meta_graph_pb2.SignatureDef()
    for name, (datatype, _) in arrays().items():
        for target in (sd.inputs, sd.outputs):
            target[name].name = f"{name}:0"
            target[name].dtype = v2.TF_OF[datatype]
            target[name].tensor_shape.dim.add(size=-1)
            target[name].tensor_shape.dim.add(size=2)
    return sd


def budget() -> limits.Budget:
    return limits.Budget(limits.MAX_MESSAGE_BYTES, "--max_request_tensor_bytes")


@pytest.mark.parametrize("client", ["triton", "kserve"])
def test_client_requests_decode_to_the_arrays_meant(client, oip_python, tmp_path):
    meant = run_client(oip_python, "wire.py", client, "requests", tmp_path)
    sig = all_types_signature().inputs
    req = pb.ModelInferRequest.FromString((tmp_path / "grpc_request.bin").read_bytes())
    assert (req.model_name, req.id, v2.signature_name(req.parameters)) == ("m", "r1", "all_types")
    assert v2.grpc_output_names(req) == ["bytes"]
    assert dump(v2.decode_grpc_request(req, sig, budget())) == meant["grpc"]
    for kind in ("binary", "json"):
        n = (tmp_path / f"http_{kind}.len").read_text()
        doc, binary = v2.parse_json_body((tmp_path / f"http_{kind}.bin").read_bytes(), n or None)
        assert bool(binary) == (kind == "binary")
        assert v2.json_signature(doc) == "all_types"
        sent = {t["name"] for t in doc["inputs"]}
        got, wanted = v2.decode_json_request(doc, binary, {k: v for k, v in sig.items() if k in sent}, budget())
        assert dump(got) == meant[f"http_{kind}"], kind
        assert wanted.names == ["bytes"] and wanted.is_binary("bytes")


@pytest.mark.parametrize("client", ["triton", "kserve"])
def test_codec_responses_decode_in_the_client(client, oip_python, tmp_path):
    outputs = {name: arr for name, (_, arr) in arrays().items()}
    order = list(outputs)
    resp = v2.encode_grpc_response(pb.ModelInferRequest(model_name="m", id="r9"), 4, outputs, order)
    (tmp_path / "grpc_response.bin").write_bytes(resp.SerializeToString())
    # Half the outputs as binary data, half as JSON; BYTES (not UTF-8 for Triton's client) must be binary.
    # kserve's REST decoding turns binary BYTES back into text, so it gets UTF-8 ones.
    http_outputs = {name: arr for name, (_, arr) in arrays(utf8_only=client == "kserve").items()}
    binary = {name: i % 2 == 0 or name == "bytes" for i, name in enumerate(order)}
    body, n = v2.encode_json_response("m", 4, "r9", http_outputs, order, v2.JsonOutputs(order, binary, False))
    (tmp_path / "http_response.bin").write_bytes(body)
    (tmp_path / "http_response.len").write_text(str(n))
    got = run_client(oip_python, "wire.py", client, "responses", tmp_path)
    assert got["grpc_meta"] == {"model_name": "m", "model_version": "4", "id": "r9"}
    assert got["grpc"] == dump(outputs)
    assert got["http"] == dump(http_outputs)


@pytest.mark.parametrize("client", ["triton", "kserve"])
def test_proto_is_the_clients_wire_format(client, oip_python):
    """Every message, field and method of protos/tfgate/inference/ exists in the client's own protos with
    the same number, type, cardinality and message type (kserve's subset lacks Triton's ModelConfig)."""
    theirs = run_client(oip_python, "wire.py", client, "descriptors", "-")
    ours = wire.fields([pb])
    triton_only = {"inference.GRPCInferenceService.ModelConfig"} if client == "kserve" else set()
    assert not ours["methods"].keys() - theirs["methods"].keys() - triton_only
    for method, types in ours["methods"].items():
        if method in theirs["methods"]:
            assert types == theirs["methods"][method], method
    compared = 0
    for message, fields in ours["messages"].items():
        if message not in theirs["messages"]:
            assert client == "kserve" and message.startswith(("inference.Model", "inference.DataType")), message
            continue
        for name, spec in fields.items():
            if client == "kserve" and message == "inference.InferParameter" and name not in theirs["messages"][message]:
                continue  # kserve's InferParameter predates double_param and uint64_param
            assert theirs["messages"][message].get(name) == spec, f"{message}.{name}"
            compared += 1
    every = sum(map(len, ours["messages"].values()))
    assert compared == every if client == "triton" else compared >= 60  # triton: every field of ours
