"""Offline wire check with Triton's or KServe's own client code (run by .venv/oip/bin/python).

`wire.py {triton,kserve} requests DIR`: the client encodes requests for every datatype (gRPC bytes; REST
with binary tensors and as plain JSON) into DIR and prints the arrays it meant, as JSON.
`wire.py {triton,kserve} responses DIR`: the client decodes the responses tfgate wrote into DIR and
prints the arrays it got, as JSON. `wire.py {triton,kserve} descriptors -`: the client's proto fields.
One client per process: both register inference.* protos.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from samples import arrays, dump  # noqa: E402

PARAMS = {"signature_name": "all_types"}


def triton_requests(out: Path) -> dict:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.grpc import _utils

    def inputs(module, binary, utf8_only=False):
        made = []
        for name, (datatype, arr) in arrays(utf8_only).items():
            i = module.InferInput(name, list(arr.shape), datatype)
            i.set_data_from_numpy(arr) if module is grpcclient else i.set_data_from_numpy(arr, binary_data=binary)
            made.append(i)
        return made

    req = _utils._get_inference_request(
        model_name="m", inputs=inputs(grpcclient, True), model_version="", request_id="r1",
        outputs=[grpcclient.InferRequestedOutput("bytes")], sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, parameters=PARAMS)
    (out / "grpc_request.bin").write_bytes(req.SerializeToString())
    for kind, binary in (("binary", True), ("json", False)):
        body, n = httpclient.InferenceServerClient.generate_request_body(
            inputs(httpclient, binary, utf8_only=not binary),
            outputs=[httpclient.InferRequestedOutput("bytes", binary_data=True)], request_id="r1",
            parameters=PARAMS)
        (out / f"http_{kind}.bin").write_bytes(body.encode() if isinstance(body, str) else body)
        (out / f"http_{kind}.len").write_text("" if n is None else str(n))
    return {"grpc": dump({k: a for k, (_, a) in arrays().items()}),
            "http_binary": dump({k: a for k, (_, a) in arrays().items()}),
            "http_json": dump({k: a for k, (_, a) in arrays(True).items()})}


def kserve_requests(out: Path) -> dict:
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    def request(binary, utf8_only=False):
        made = []
        for name, (datatype, arr) in arrays(utf8_only).items():
            i = InferInput(name, list(arr.shape), datatype)
            i.set_data_from_numpy(arr, binary_data=binary)
            made.append(i)
        return InferRequest(model_name="m", infer_inputs=made, request_id="r1", parameters=PARAMS,
                            request_outputs=[RequestedOutput("bytes", parameters={"binary_data": True})])

    (out / "grpc_request.bin").write_bytes(request(True).to_grpc().SerializeToString())
    body, n = request(True).to_rest()
    (out / "http_binary.bin").write_bytes(body)
    (out / "http_binary.len").write_text(str(n))
    # kserve refuses FP16 as JSON data: the plain JSON request leaves it out.
    req = request(False, utf8_only=True)
    req.inputs = [i for i in req.inputs if i.datatype != "FP16"]
    doc, _ = req.to_rest()
    (out / "http_json.bin").write_bytes(json.dumps(doc).encode())
    (out / "http_json.len").write_text("")
    return {"grpc": dump({k: a for k, (_, a) in arrays().items()}),
            "http_binary": dump({k: a for k, (_, a) in arrays().items()}),
            "http_json": dump({k: a for k, (d, a) in arrays(True).items() if d != "FP16"})}


def triton_responses(d: Path) -> dict:
    import tritonclient.http as httpclient
    from tritonclient.grpc import InferResult, service_pb2

    got = {}
    resp = service_pb2.ModelInferResponse.FromString((d / "grpc_response.bin").read_bytes())
    result = InferResult(resp)
    got["grpc"] = dump({o.name: result.as_numpy(o.name) for o in resp.outputs})
    got["grpc_meta"] = {"model_name": resp.model_name, "model_version": resp.model_version, "id": resp.id}
    body = (d / "http_response.bin").read_bytes()
    n = (d / "http_response.len").read_text()
    result = httpclient.InferResult.from_response_body(body, header_length=int(n) if n else None)
    got["http"] = dump({o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]})
    return got


def kserve_responses(d: Path) -> dict:
    from kserve import InferResponse
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferResponse

    got = {}
    resp = InferResponse.from_grpc(ModelInferResponse.FromString((d / "grpc_response.bin").read_bytes()))
    got["grpc"] = dump({o.name: o.as_numpy() for o in resp.outputs})
    got["grpc_meta"] = {"model_name": resp.model_name, "model_version": resp.model_version, "id": resp.id}
    body = (d / "http_response.bin").read_bytes()
    n = (d / "http_response.len").read_text()
    resp = InferResponse.from_bytes(body, int(n)) if n else InferResponse.from_rest(json.loads(body))
    got["http"] = dump({o.name: o.as_numpy() for o in resp.outputs})
    return got


def fields(modules) -> dict:
    """Every message's fields (number, type, repeated or not, type name) and every method's types, by full name."""
    out: dict = {"messages": {}, "methods": {}}

    def walk(m):
        out["messages"][m.full_name] = {f.name: [f.number, f.type, f.is_repeated, f.message_type.full_name if
                                                 f.message_type else f.enum_type.full_name if f.enum_type else ""]
                                        for f in m.fields}
        for n in m.nested_types:
            walk(n)

    for mod in modules:
        for m in mod.DESCRIPTOR.message_types_by_name.values():
            walk(m)
        for e in mod.DESCRIPTOR.enum_types_by_name.values():
            out["messages"][e.full_name] = {v.name: [v.number] for v in e.values}
        for s in mod.DESCRIPTOR.services_by_name.values():
            for m in s.methods:
                out["methods"][m.full_name] = [m.input_type.full_name, m.output_type.full_name]
    return out


def triton_descriptors(_: Path) -> dict:
    from tritonclient.grpc import model_config_pb2, service_pb2

    return fields([service_pb2, model_config_pb2])


def kserve_descriptors(_: Path) -> dict:
    from kserve.protocol.grpc import grpc_predict_v2_pb2

    return fields([grpc_predict_v2_pb2])


def main() -> None:
    client, mode, d = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    fn = {"requests": {"triton": triton_requests, "kserve": kserve_requests},
          "responses": {"triton": triton_responses, "kserve": kserve_responses},
          "descriptors": {"triton": triton_descriptors, "kserve": kserve_descriptors}}[mode][client]
    print(json.dumps(fn(d)))


if __name__ == "__main__":
    main()
