"""Scenarios against a real v2 server with Triton's or KServe's client (run by .venv/oip/bin/python).

`v2_client.py CLIENT URL SCENARIO MODEL [SIGNATURE METADATA_JSON]`, CLIENT one of triton-grpc, triton-http, kserve-grpc,
kserve-rest; URL host:port. Prints one JSON line.
- health: server live/ready, model ready (and an unknown model's), server and model metadata, model config.
- infer: inputs made from the model's metadata (each -1 dimension 2, deterministic values), every output
  asked for (HTTP: as binary data); prints the inputs sent and the outputs got, so the test can run the
  same inputs through TF Serving's API and compare.
- errors: an unknown model, a bad datatype, a wrong shape, an unknown input; each error's status and message.
With TFGATE_TOKEN set, every call carries `authorization: Bearer <token>` (the gateway's auth).
One client per process: Triton's and KServe's stubs both register inference.* protos.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from samples import NUMPY, dump  # noqa: E402

TOKEN = os.environ.get("TFGATE_TOKEN")
AUTH = [("authorization", f"Bearer {TOKEN}")] if TOKEN else []


def make_input(datatype: str, shape: list[int], seed: int) -> np.ndarray:
    shape = [2 if d < 0 else d for d in shape]
    n = int(np.prod(shape))
    if datatype == "BYTES":
        words = [b"NEAR BAY", b"INLAND", b"<1H OCEAN", b"x\xffy"]
        return np.array([words[(i + seed) % 3] for i in range(n)], dtype=object).reshape(shape)
    if datatype == "BOOL":
        return (np.arange(n) % 2 == seed % 2).reshape(shape)
    base = np.arange(n) + seed
    if datatype.startswith(("FP",)):
        return (base * 0.5 + 1).astype(NUMPY[datatype]).reshape(shape)
    return (base % 100).astype(NUMPY[datatype]).reshape(shape)


def inputs_for(meta: dict) -> dict[str, np.ndarray]:
    return {t["name"]: make_input(t["datatype"], t["shape"], i) for i, t in enumerate(meta["inputs"])}


class Triton:
    def __init__(self, kind: str, url: str):
        if kind == "grpc":
            import tritonclient.grpc as client
        else:
            import tritonclient.http as client
        from tritonclient.utils import InferenceServerException

        self.kind, self.client, self.error = kind, client, InferenceServerException
        self.c = client.InferenceServerClient(url=url)
        self.h = dict(AUTH) or None

    def _json(self, x):
        return x if self.kind == "http" else json.loads(json.dumps(x))

    def health(self, model: str) -> dict:
        c, h = self.c, self.h
        kw = {"as_json": True, "headers": h} if self.kind == "grpc" else {"headers": h}
        return {"live": c.is_server_live(headers=h), "ready": c.is_server_ready(headers=h),
                "model_ready": c.is_model_ready(model, headers=h),
                "unknown_ready": c.is_model_ready("no-such-model", headers=h),
                "server": c.get_server_metadata(**kw), "model": c.get_model_metadata(model, **kw),
                "config": c.get_model_config(model, **kw)}

    def metadata(self, model: str) -> dict:
        kw = {"as_json": True, "headers": self.h} if self.kind == "grpc" else {"headers": self.h}
        meta = self.c.get_model_metadata(model, **kw)
        for t in meta["inputs"] + meta["outputs"]:  # gRPC's JSON prints int64 as strings
            t["shape"] = [int(d) for d in t["shape"]]
        return meta

    def infer(self, model: str, inputs: dict, outputs: list[str], params: dict | None, version: str = ""):
        made = []
        for name, arr in inputs.items():
            datatype = raw_datatype(arr)
            i = self.client.InferInput(name, list(arr.shape), datatype)
            i.set_data_from_numpy(arr)
            made.append(i)
        asked = [self.client.InferRequestedOutput(o) for o in outputs]
        result = self.c.infer(model, made, model_version=version, outputs=asked, parameters=params, headers=self.h)
        response = result.get_response(as_json=True) if self.kind == "grpc" else result.get_response()
        return {o: result.as_numpy(o) for o in outputs}, response["model_version"]

    def failure(self, e) -> dict:
        return {"status": str(e.status()), "message": e.message()}


def raw_datatype(arr: np.ndarray) -> str:
    if arr.dtype == object:
        return "BYTES"
    return {np.dtype(v): k for k, v in NUMPY.items() if k != "BYTES"}[arr.dtype]


class KServe:
    def __init__(self, kind: str, url: str):
        import grpc
        import httpx
        from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig

        self.kind, self.url, self.base = kind, url, f"http://{url}"
        self.error = grpc.RpcError if kind == "grpc" else httpx.HTTPStatusError
        # Made inside each asyncio.run: a grpc.aio channel belongs to the loop it was made in.
        self.make = ((lambda: InferenceGRPCClient(url=url, retries=2)) if kind == "grpc" else
                     (lambda: InferenceRESTClient(RESTConfig(protocol="v2", retries=0))))

    def health(self, model: str) -> dict:
        async def go():
            c = self.make()
            if self.kind == "grpc":
                return {"live": await c.is_server_live(headers=AUTH), "ready": await c.is_server_ready(headers=AUTH),
                        "model_ready": await c.is_model_ready(model, headers=AUTH),
                        "unknown_ready": await c.is_model_ready("no-such-model", headers=AUTH)}
            return {"live": await c.is_server_live(self.base), "ready": await c.is_server_ready(self.base),
                    "model_ready": await c.is_model_ready(self.base, model),
                    "unknown_ready": await _false_on_error(c.is_model_ready(self.base, "no-such-model"))}
        return asyncio.run(go())

    def metadata(self, model: str) -> dict:
        # The kserve SDK has no metadata call: plain HTTP or gRPC with its own stubs.
        if self.kind == "grpc":
            import grpc
            from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
            from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

            with grpc.insecure_channel(self.url) as ch:
                m = pb_grpc.GRPCInferenceServiceStub(ch).ModelMetadata(pb.ModelMetadataRequest(name=model),
                                                                        metadata=AUTH)
            return {"inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in m.inputs],
                    "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in m.outputs]}
        import httpx

        return httpx.get(f"{self.base}/v2/models/{model}").json()

    def infer(self, model: str, inputs: dict, outputs: list[str], params: dict | None, version: str = ""):
        from kserve import InferInput, InferRequest
        from kserve.protocol.infer_type import RequestedOutput

        made = []
        for name, arr in inputs.items():
            i = InferInput(name, list(arr.shape), raw_datatype(arr))
            i.set_data_from_numpy(arr, binary_data=True)
            made.append(i)
        req = InferRequest(model_name=model, infer_inputs=made, parameters=params, model_version=version or None,
                           request_outputs=[RequestedOutput(o, parameters={"binary_data": True}) for o in outputs])

        async def go():
            c = self.make()
            if self.kind == "grpc":
                return await c.infer(req, headers=AUTH)
            return await c.infer(self.base, req, model_name=model, headers=dict(AUTH))
        resp = asyncio.run(go())
        return {o.name: o.as_numpy() for o in resp.outputs}, resp.model_version

    def failure(self, e) -> dict:
        if self.kind == "grpc":
            return {"status": str(e.code()), "message": e.details()}
        return {"status": str(e.response.status_code), "message": e.response.json().get("error", "")}


async def _false_on_error(coro):
    try:
        return await coro
    except Exception:  # kserve's REST client raises on a 400 "not ready"
        return False


def main() -> None:
    client, url, scenario, model = sys.argv[1:5]
    signature = sys.argv[5] if len(sys.argv) > 5 else ""
    family, kind = client.split("-")
    c = Triton(kind, url) if family == "triton" else KServe("grpc" if kind == "grpc" else "rest", url)
    params = {"signature_name": signature} if signature else None
    if scenario == "health":
        out = c.health(model)
    elif scenario == "infer":
        # Another signature's tensors: the test passes them (metadata describes serving_default).
        meta = json.loads(sys.argv[6]) if signature else c.metadata(model)
        inputs = inputs_for(meta)
        got, version = c.infer(model, inputs, [t["name"] for t in meta["outputs"]], params)
        out = {"inputs": dump(inputs), "outputs": dump(got), "model_version": version}
    elif scenario == "errors":
        meta = c.metadata(model)
        good = inputs_for(meta)
        first = meta["inputs"][0]["name"]
        wrong_type = dict(good)
        arr = good[first]
        wrong_type[first] = arr.astype(np.float64) if arr.dtype != np.float64 else arr.astype(np.int32)
        wrong_shape = dict(good)
        wrong_shape[first] = np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]]).reshape(-1, *([1] * 5))
        cases = {"unknown_model": ("no-such-model", good), "bad_datatype": (model, wrong_type),
                 "wrong_shape": (model, wrong_shape), "unknown_input": (model, {**good, "nope": arr})}
        out = {}
        for case, (name, inputs) in cases.items():
            try:
                c.infer(name, inputs, [], params)
                out[case] = {"status": "OK", "message": ""}
            except c.error as e:
                out[case] = c.failure(e)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
