"""Property-based fuzzing of every front door: the gateway's typed API, generic Predict and TF Serving
pass-through, and the model server's gRPC and REST APIs.

Every answer must be a documented status with a message; a client mistake is never INTERNAL or
UNKNOWN; the servers stay up and answer a good request afterwards. Case counts come from the
hypothesis profile (tests/reliability/conftest.py).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import tensor_pb2

# Client mistakes may get these (README: gateway "Errors", model server = TF Serving's codes).
# The graph judges shapes (as in TF Serving) and its status is passed on: some kernels refuse a shape
# with ABORTED (oneDNN's Softmax on rank > 5: "Input dims must be <= 5 and >=1"), REST 409.
ALLOWED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED",
           "OUT_OF_RANGE", "ABORTED"}
HTTP_ALLOWED = {200, 400, 404, 409, 413}
GW = "/tfgate.v1.InferenceGateway/"
PS = "/tensorflow.serving.PredictionService/"
MS = "/tensorflow.serving.ModelService/"


def _identity(b):
    return b


class Raw:
    """Calls any method with raw request bytes (identity serializers): what a broken client sends."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])

    def call(self, method: str, body: bytes, timeout: float = 20) -> tuple[str, str, bytes]:
        fn = self.channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        try:
            return "OK", "", fn(body, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or "", b""


def check(code: str, details: str, what) -> None:
    assert code in ALLOWED, f"{code}: {details!r} for {what!r}"
    if code != "OK":
        assert details.strip(), f"{code} without a message for {what!r}"


@pytest.fixture(scope="module")
def gw(gateway):
    return Raw(gateway.target)


@pytest.fixture(scope="module")
def ms(backend):
    return Raw(backend.grpc_target)


def good_half() -> bytes:
    req = pb.PredictRequest(model=pb.ModelRef(name="half"))
    req.inputs["x"].CopyFrom(tensor_pb2.Tensor(dtype=1, shape=[2], content=np.float32([2, 4]).tobytes()))
    return req.SerializeToString()


def assert_still_serving(gw: Raw, ms: Raw) -> None:
    code, details, raw = gw.call(GW + "Predict", good_half())
    assert code == "OK", details
    y = np.frombuffer(pb.PredictResponse.FromString(raw).outputs["y"].content, np.float32)
    assert y.tolist() == [2.0, 3.0]
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "half"
    code, details, _ = ms.call(MS + "GetModelStatus", req.SerializeToString())
    assert code == "OK", details


# ---- strategies ------------------------------------------------------------------------------
names = st.one_of(st.sampled_from(["half", "housing", "fashion", "", "x", "y", "HALF", "half\x00",
                                   "a" * 300, "../etc/passwd", "ünï", "images"]),
                  st.text(max_size=20))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, -0.0, 1e38, -1e38, float("nan"), float("inf"), float("-inf")]))
dims = st.one_of(st.integers(-3, 6), st.sampled_from([2**31, 2**62, -(2**62), 10**12]))
shapes = st.lists(dims, max_size=5)
blobs = st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=5000))


@st.composite
def gw_tensor(draw):
    t = tensor_pb2.Tensor(dtype=draw(st.integers(-2, 20)), shape=draw(shapes))
    kind = draw(st.sampled_from(["content", "strings", "both", "none", "consistent"]))
    if kind in ("content", "both"):
        t.content = draw(blobs)
    if kind in ("strings", "both"):
        t.string_values.extend(draw(st.lists(st.binary(max_size=20), max_size=5)))
    if kind == "consistent":  # right length for a float32 shape: exercises the model, not the parser
        n = draw(st.integers(0, 8))
        t.dtype, t.shape[:] = 1, [n]
        t.content = np.array(draw(st.lists(floats, min_size=n, max_size=n)), np.float32).tobytes()
    return t


@st.composite
def model_ref(draw, default=""):
    ref = pb.ModelRef(name=draw(st.one_of(st.just(default), names)))
    which = draw(st.sampled_from(["none", "version", "label"]))
    if which == "version":
        ref.version = draw(st.one_of(st.integers(-5, 5), st.just(2**62)))
    elif which == "label":
        ref.label = draw(st.one_of(st.just("stable"), st.just(""), st.text(max_size=10)))
    ref.signature_name = draw(st.sampled_from(["", "serving_default", "nope", "echo_bytes", "two_inputs",
                                               "classify"]))
    return ref


@st.composite
def tfs_tensor(draw):
    t = tf_tensor_pb2.TensorProto(dtype=draw(st.sampled_from(list(types_pb2.DataType.values())[:30])))
    for d in draw(shapes):
        t.tensor_shape.dim.add(size=d)
    if draw(st.booleans()):
        t.tensor_shape.unknown_rank = True
    part = draw(st.sampled_from(["content", "float", "string", "int", "none"]))
    if part == "content":
        t.tensor_content = draw(blobs)
    elif part == "float":
        t.float_val.extend(draw(st.lists(floats, max_size=8)))
    elif part == "string":
        t.string_val.extend(draw(st.lists(st.binary(max_size=16), max_size=5)))
    elif part == "int":
        t.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8)))
    return t


@st.composite
def tfs_predict(draw):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = draw(st.one_of(st.just("half"), names))
    which = draw(st.sampled_from(["none", "version", "label"]))
    if which == "version":
        req.model_spec.version.value = draw(st.integers(-3, 2**62))
    elif which == "label":
        req.model_spec.version_label = draw(st.text(max_size=10))
    req.model_spec.signature_name = draw(st.sampled_from(["", "serving_default", "two_inputs", "echo_bytes",
                                                          "classify", "nope"]))
    for name in draw(st.lists(st.one_of(st.sampled_from(["x", "a", "b", "s", "inputs"]), st.text(max_size=8)),
                              max_size=3)):
        req.inputs[name].CopyFrom(draw(tfs_tensor()))
    req.output_filter.extend(draw(st.lists(st.sampled_from(["y", "nope", "", "sum"]), max_size=3)))
    return req


@st.composite
def mangled(draw, valid: bytes):
    """Truncated, bit-flipped, extended or random bytes derived from a valid message."""
    how = draw(st.sampled_from(["truncate", "flip", "append", "random", "invalid_utf8"]))
    if how == "truncate" and valid:
        return valid[:draw(st.integers(0, len(valid) - 1))]
    if how == "flip" and valid:
        i = draw(st.integers(0, len(valid) - 1))
        return valid[:i] + bytes([valid[i] ^ draw(st.integers(1, 255))]) + valid[i + 1:]
    if how == "append":
        return valid + draw(st.binary(min_size=1, max_size=16))
    if how == "invalid_utf8":  # a string field (tag 1, length-delimited) holding non-UTF-8 bytes
        return b"\x0a\x04\x0a\x02\xff\xfe" + valid
    return draw(st.binary(max_size=200))


# ---- gateway typed API --------------------------------------------------------------------
@given(records=st.lists(st.fixed_dictionaries({
    "f": st.lists(floats, min_size=8, max_size=8), "beds": st.booleans(),
    "ocean": st.one_of(st.sampled_from(["NEAR BAY", "", "INLAND"]), st.text(max_size=30))}), max_size=6),
    ref=model_ref())
def test_gateway_predict_housing(gw, ms, records, ref):
    req = pb.PredictHousingRequest(model=ref)
    for r in records:
        f = r["f"]
        rec = req.records.add(longitude=f[0], latitude=f[1], housing_median_age=f[2], total_rooms=f[3],
                              population=f[4], households=f[5], median_income=f[6],
                              ocean_proximity=r["ocean"])
        if r["beds"]:
            rec.total_bedrooms = f[7]
    code, details, _ = gw.call(GW + "PredictHousing", req.SerializeToString())
    check(code, details, req)


def _png(w: int, h: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h), 128).save(buf, format="PNG")
    return buf.getvalue()


images = st.one_of(
    st.builds(lambda b: pb.Image(pixels=b), st.one_of(st.binary(min_size=784, max_size=784), blobs)),
    st.builds(lambda b: pb.Image(encoded=b), blobs),
    st.builds(lambda b: pb.Image(encoded=b"\x89PNG\r\n\x1a\n" + b), blobs),       # PNG magic, then junk
    st.builds(lambda b: pb.Image(encoded=b"\xff\xd8\xff\xe0" + b), blobs),         # JPEG magic, then junk
    st.builds(lambda w, h: pb.Image(encoded=_png(w, h)), st.integers(1, 64), st.integers(1, 64)),
    st.just(pb.Image()))


@given(imgs=st.lists(images, max_size=4), top_k=st.integers(-2, 12), ref=model_ref())
def test_gateway_classify_fashion(gw, ms, imgs, top_k, ref):
    req = pb.ClassifyFashionRequest(images=imgs, top_k=top_k, model=ref)
    code, details, _ = gw.call(GW + "ClassifyFashion", req.SerializeToString())
    check(code, details, req)


@given(ref=model_ref(default="half"), inputs=st.dictionaries(st.one_of(st.sampled_from(["x", "a", "b", "s"]),
                                                                       st.text(max_size=8)), gw_tensor(), max_size=3),
       output_filter=st.lists(st.sampled_from(["y", "nope", "", "sum"]), max_size=3))
def test_gateway_generic_predict(gw, ms, ref, inputs, output_filter):
    req = pb.PredictRequest(model=ref, output_filter=output_filter)
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v)
    code, details, _ = gw.call(GW + "Predict", req.SerializeToString())
    check(code, details, req)


# ---- TF Serving API: through the gateway's pass-through and on the model server directly -----
@given(req=tfs_predict(), via_gateway=st.booleans())
def test_tf_serving_predict(gw, ms, req, via_gateway):
    code, details, _ = (gw if via_gateway else ms).call(PS + "Predict", req.SerializeToString())
    check(code, details, req)


@given(name=names, version=st.integers(-3, 2**62), label=st.text(max_size=8), field=st.text(max_size=12),
       via_gateway=st.booleans())
def test_tf_serving_metadata_and_status(gw, ms, name, version, label, field, via_gateway):
    meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[field])
    meta.model_spec.name = name
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = name
    if version % 2:
        status.model_spec.version.value = version
    else:
        status.model_spec.version_label = label
    raw = gw if via_gateway else ms
    for method, req in ((PS + "GetModelMetadata", meta), (MS + "GetModelStatus", status)):
        code, details, _ = raw.call(method, req.SerializeToString())
        check(code, details, req)


# ---- sizes and value counts (issue 13), against an oracle written here from the README's rules -----
# Declared elements x dtype size (a string: 24 bytes plus its content, the last value repeated over what it
# fills) over the bound is INVALID_ARGUMENT naming both sizes; otherwise values must be none, one or all.
MS_BOUND = 2**31 - 1  # --max_request_tensor_bytes default
GW_BOUND = 16 * 16 * 1024 * 1024  # gateway default: 16 x max_message_bytes
DT = types_pb2
SIZED = {  # dtype: (itemsize, value field, numbers per element)
    DT.DT_FLOAT: (4, "float_val", 1), DT.DT_DOUBLE: (8, "double_val", 1), DT.DT_INT32: (4, "int_val", 1),
    DT.DT_UINT8: (1, "int_val", 1), DT.DT_INT16: (2, "int_val", 1), DT.DT_INT8: (1, "int_val", 1),
    DT.DT_STRING: (0, "string_val", 1), DT.DT_COMPLEX64: (8, "scomplex_val", 2), DT.DT_INT64: (8, "int64_val", 1),
    DT.DT_BOOL: (1, "bool_val", 1), DT.DT_UINT16: (2, "int_val", 1), DT.DT_COMPLEX128: (16, "dcomplex_val", 2),
    DT.DT_HALF: (2, "half_val", 1), DT.DT_UINT32: (4, "uint32_val", 1), DT.DT_UINT64: (8, "uint64_val", 1),
}
# Small dims, or ones whose product passes both bounds even at one byte an element (nothing in between,
# which a server would really allocate).
sized_dims = st.lists(st.one_of(st.integers(0, 7), st.sampled_from([2**31, 2**40, 2**62, -1])), max_size=4)


@st.composite
def sized_tensor(draw):
    dtype = draw(st.sampled_from(sorted(SIZED)))
    itemsize, field, per = SIZED[dtype]
    dims = draw(sized_dims)
    how = draw(st.sampled_from(["none", "one", "all", "some", "content", "many strings"]))
    if how == "many strings":  # huge counts of real strings, declared right, one short or huge
        dtype, itemsize, field, per = DT.DT_STRING, *SIZED[DT.DT_STRING]
        k = draw(st.sampled_from([1000, 20_000]))
        dims = [draw(st.sampled_from([k, k + 1, 2**40]))]
    t = tf_tensor_pb2.TensorProto(dtype=dtype)
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    n = int(np.prod(dims, dtype=object)) if dims and min(dims) >= 0 else (1 if not dims else None)
    if how == "content" and dtype != DT.DT_STRING:
        size = n * itemsize if n is not None and n <= 5000 and draw(st.booleans()) else draw(st.integers(1, 64))
        t.tensor_content = bytes(size)
        return t
    if how == "all" and n is not None and n <= 5000:
        k = n
    elif how in ("none", "one"):
        k = {"none": 0, "one": 1}[how]
    elif how != "many strings":  # a few values, rarely the right number
        k = draw(st.integers(2, 70))
    values = getattr(t, field)
    if dtype == DT.DT_STRING:
        values.extend([b"ab"] * k)
    else:
        extra = draw(st.sampled_from([0, 0, 1])) if per == 2 and k else 0  # an odd count of complex parts
        values.extend([1] * (k * per + extra))
    return t


def expected(t, bound: int) -> list[str] | None:
    """Fragments an INVALID_ARGUMENT message must hold, or None when any allowed answer will do."""
    dims = [d.size for d in t.tensor_shape.dim]
    if any(d < 0 for d in dims):
        return ["negative dimension"]
    n = int(np.prod(dims, dtype=object)) if dims else 1
    itemsize, field, per = SIZED[t.dtype]
    if t.dtype != DT.DT_STRING and t.tensor_content:
        declared = n * itemsize
        if declared > bound:
            return [f"takes {declared} bytes", f"limit of {bound} bytes"]
        return None if len(t.tensor_content) == declared else ["bytes of tensor_content"]
    values = getattr(t, field)
    if t.dtype == DT.DT_STRING:
        content = sum(map(len, values)) + max(0, n - len(values)) * len(values[-1]) if values else 0
        declared = 24 * n + content
    else:
        declared = n * itemsize
    if declared > bound:
        return [f"takes {declared} bytes", f"limit of {bound} bytes"]
    if len(values) % per:
        return [f"holds {len(values)} numbers"]
    if len(values) // per not in (0, 1, n):
        return [f"{len(values) // per} values were sent for {n} elements"]
    return None


@given(t=sized_tensor(), via_gateway=st.booleans())
def test_tensor_sizes_and_value_counts(gw, ms, t, via_gateway):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half"
    req.inputs["x"].CopyFrom(t)
    code, details, _ = (gw if via_gateway else ms).call(PS + "Predict", req.SerializeToString())
    check(code, details, t)
    want = expected(t, GW_BOUND if via_gateway else MS_BOUND)
    if want is not None:
        assert code == "INVALID_ARGUMENT", (code, details, t)
        for part in ["x", *want]:
            assert part in details, (part, details)


# ---- raw bytes: truncated, flipped, random ---------------------------------------------------
RAW_TARGETS = [
    ("gw", GW + "Predict"), ("gw", GW + "PredictHousing"), ("gw", GW + "ClassifyFashion"),
    ("gw", GW + "GetModel"), ("gw", PS + "Predict"), ("gw", MS + "GetModelStatus"),
    ("ms", PS + "Predict"), ("ms", PS + "Classify"), ("ms", PS + "Regress"), ("ms", PS + "MultiInference"),
    ("ms", PS + "GetModelMetadata"), ("ms", MS + "GetModelStatus"),
]


@given(where=st.sampled_from(RAW_TARGETS), body=st.data())
def test_raw_protobuf_bytes(gw, ms, where, body):
    server, method = where
    tfs = predict_pb2.PredictRequest()
    tfs.model_spec.name = "half"
    tfs.inputs["x"].CopyFrom(tf_tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0]))
    tfs.inputs["x"].tensor_shape.dim.add(size=1)
    valid = good_half() if method.startswith(GW) else tfs.SerializeToString()
    data = body.draw(mangled(valid))
    code, details, _ = (gw if server == "gw" else ms).call(method, data)
    check(code, details, (method, data[:80]))


# ---- REST --------------------------------------------------------------------------------------
def _post(url: str, data: bytes, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_http(status: int, body: bytes, what) -> None:
    assert status in HTTP_ALLOWED, f"HTTP {status}: {body[:300]!r} for {str(what)[:300]}"
    doc = json.loads(body)
    if status != 200:
        assert isinstance(doc.get("error"), str) and doc["error"].strip(), body[:300]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), floats.map(
    lambda f: f if np.isfinite(f) else 1e308), st.text(max_size=10), st.just({"b64": "AAAA"}),
    st.just({"b64": "!!notbase64"}))
json_doc = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                        max_leaves=25)


@st.composite
def rest_body(draw):
    kind = draw(st.sampled_from(["doc", "instances", "inputs", "bytes", "nested", "examples"]))
    if kind == "instances":
        return json.dumps({"signature_name": draw(st.sampled_from(["", "two_inputs", "echo_bytes", 3])),
                           "instances": draw(json_doc)}).encode()
    if kind == "inputs":
        return json.dumps({"inputs": draw(json_doc)}).encode()
    if kind == "examples":
        return json.dumps({"examples": draw(json_doc), "context": draw(json_doc)}).encode()
    if kind == "bytes":  # not JSON, or JSON with invalid UTF-8 inside
        return draw(st.one_of(st.binary(max_size=100), st.just(b'{"instances": ["\xff\xfe"]}')))
    if kind == "nested":  # deeply nested arrays or objects
        depth = draw(st.sampled_from([50, 1000, 100_000]))
        if draw(st.booleans()):
            return b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
        return b'{"inputs": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    return json.dumps(draw(json_doc)).encode()


@given(path=st.sampled_from(["/v1/models/half:predict", "/v1/models/half:classify", "/v1/models/half:regress",
                             "/v1/models/half/versions/1:predict", "/v1/models/half/versions/-1:predict",
                             "/v1/models/half/labels/nope:predict", "/v1/models/nope:predict",
                             "/v1/models/housing:predict", "/v1/models/fashion:predict"]),
       body=rest_body())
def test_rest_api(backend, gw, ms, path, body):
    status, payload = _post(backend.rest_url + path, body)
    check_http(status, payload, (path, body[:200]))


@pytest.mark.parametrize("path,body", [
    # Cases the properties above found (each was an HTTP 500 before the fix in serving/model_server/rest.py).
    (":predict", b'{"inputs": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}"),
    (":classify", b'{"signature_name": 3, "instances": null}'),
    (":classify", b'{"examples": [], "context": {"": 9223372036854775808}}'),
    (":regress", b'{"examples": [{"x": -9223372036854775809}]}'),
])
def test_rest_found_cases(backend, path, body):
    status, payload = _post(backend.rest_url + "/v1/models/half" + path, body)
    check_http(status, payload, body[:100])
    assert status == 400


def test_rest_large_json_and_servers_still_up(backend, gw, ms):
    """A few MB of JSON (the benchmark run sends 100 MB): a clean answer, then business as usual."""
    big = b'{"instances": [' + b",".join([b"1.5"] * 1_500_000) + b"]}"
    status, payload = _post(backend.rest_url + "/v1/models/half:predict", big, timeout=120)
    check_http(status, payload, "large JSON")
    if status == 200:
        assert len(json.loads(payload)["predictions"]) == 1_500_000
    bad = b'{"instances": [' + b",".join([b'"x"'] * 500_000) + b"]}"
    status, payload = _post(backend.rest_url + "/v1/models/half:predict", bad, timeout=120)
    check_http(status, payload, "large bad JSON")
    assert status == 400
    assert_still_serving(gw, ms)


def test_rest_json_of_many_megabytes(backend, gw, ms):
    """One JSON body of TFGATE_FUZZ_JSON_MB megabytes (4 in CI, 100 in the benchmark run): a string
    where the model wants floats, so a clean 400 after parsing it all; then the servers still serve."""
    mb = int(os.environ.get("TFGATE_FUZZ_JSON_MB", "4"))
    body = b'{"instances": ["' + b"a" * (mb * 1024 * 1024) + b'"]}'
    status, payload = _post(backend.rest_url + "/v1/models/half:predict", body, timeout=300)
    check_http(status, payload, f"{mb} MB JSON")
    assert status == 400
    assert_still_serving(gw, ms)


def test_servers_answer_a_good_request_after_fuzzing(gateway, backend, gw, ms):
    assert gateway.proc.poll() is None and backend.alive()
    assert_still_serving(gw, ms)
