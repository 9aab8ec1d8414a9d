"""KServe's Open Inference Protocol (v2) <-> numpy, for the model server and the gateway (issue 16).

gRPC: ModelInferRequest inputs (typed `contents` or `raw_input_contents`) -> {name: ndarray}, and
arrays -> ModelInferResponse (`raw_output_contents`, as Triton answers). REST: the v2 JSON tensors
(`data` flat or nested, BYTES as strings) and the binary-tensor extension (a JSON header of
`Inference-Header-Content-Length` bytes, then the tensors' raw bytes). Metadata and Triton's model
configuration come from a SignatureDef.

Requests are checked against the signature (names, datatypes, shapes where the signature fixes them)
and sized with tensor_limits before any array is built. Every error names the tensor. Leaf module:
imports only tfgate.serving.tensor_limits, tfgate.serving.status and the generated stubs.
"""

from __future__ import annotations

import json
import struct

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2

from ..inference import open_inference_grpc_pb2 as pb
from . import tensor_limits as limits
from .status import ServingError

DT = types_pb2
DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_PARAM = "signature_name"  # request parameter choosing the SignatureDef
PLATFORM = "tensorflow_savedmodel"  # Triton's name for a SavedModel's platform
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "parameters", "model_configuration"]

# v2 datatype -> numpy dtype (BYTES: object arrays of bytes, as the servers' other paths hold strings).
NUMPY = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
TF_OF = {
    "BOOL": DT.DT_BOOL, "UINT8": DT.DT_UINT8, "UINT16": DT.DT_UINT16, "UINT32": DT.DT_UINT32,
    "UINT64": DT.DT_UINT64, "INT8": DT.DT_INT8, "INT16": DT.DT_INT16, "INT32": DT.DT_INT32,
    "INT64": DT.DT_INT64, "FP16": DT.DT_HALF, "FP32": DT.DT_FLOAT, "FP64": DT.DT_DOUBLE,
    "BYTES": DT.DT_STRING, "BF16": DT.DT_BFLOAT16,
}
DATATYPE_OF_TF = {v: k for k, v in TF_OF.items()}
DATATYPE_OF_NUMPY = {v: k for k, v in NUMPY.items() if k != "BYTES"}
# The InferTensorContents field each datatype's typed values travel in (FP16 and BF16 have none).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_LEN = struct.Struct("<I")
BF16_REFUSED = ("datatype BF16 is not supported: numpy, through which tfgate feeds TensorFlow, has no "
                "bfloat16; send FP32")


class V2Error(ServingError):
    """A request the protocol refuses (INVALID_ARGUMENT unless said otherwise; REST: `http_status`)."""

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(code, message)


# ---- datatypes
def numpy_dtype(datatype: str, what: str) -> np.dtype:
    """The numpy dtype of a v2 datatype; `what` names the tensor for the error."""
    dt = NUMPY.get(datatype)
    if dt is None:
        if datatype == "BF16":
            raise V2Error(f"{what}: {BF16_REFUSED}")
        raise V2Error(f"{what}: unknown datatype {datatype!r}; one of {', '.join(NUMPY)}")
    return dt


def datatype_of_tf(dtype: int) -> str:
    """The v2 datatype of a TensorFlow dtype; types the protocol lacks (complex, quantized, resource)
    keep TensorFlow's name in capitals, which no client can send."""
    name = DATATYPE_OF_TF.get(dtype)
    if name is None:
        return DT.DataType.Name(dtype).removeprefix("DT_") if dtype in DT.DataType.values() else "INVALID"
    return name


def datatype_of_array(arr: np.ndarray, what: str) -> str:
    if arr.dtype == object or arr.dtype.kind in "SU":
        return "BYTES"
    name = DATATYPE_OF_NUMPY.get(arr.dtype)
    if name is None:
        raise V2Error(f"{what}: dtype {arr.dtype} has no datatype in the Open Inference Protocol",
                      grpc.StatusCode.FAILED_PRECONDITION)
    return name


def param_value(p: pb.InferParameter):
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def signature_name(params) -> str:
    """The SignatureDef a request asks for through its `signature_name` parameter (gRPC map or JSON
    dict); serving_default without it."""
    if SIGNATURE_PARAM not in params:
        return DEFAULT_SIGNATURE
    value = params[SIGNATURE_PARAM]
    if isinstance(value, pb.InferParameter):
        value = param_value(value)
    if not isinstance(value, str) or not value:
        raise V2Error(f"parameter {SIGNATURE_PARAM} must be a non-empty string, got {value!r}")
    return value


# ---- checks against the signature
def _shape_text(shape) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def signature_shape(info) -> list[int] | None:
    """A TensorInfo's shape with -1 for unknown dimensions; None when even the rank is unknown."""
    if info.tensor_shape.unknown_rank:
        return None
    return [d.size if d.size >= 0 else -1 for d in info.tensor_shape.dim]


class Sized:
    """One input tensor's declaration, checked and sized before its values are decoded."""

    __slots__ = ("name", "datatype", "shape", "count", "dtype")

    def __init__(self, name: str, datatype: str, shape, what: str):
        self.name = name
        self.datatype = datatype
        self.dtype = numpy_dtype(datatype, what)
        self.shape = [int(d) for d in shape]
        try:
            self.count = limits.element_count(self.shape)
        except limits.LimitError as e:
            raise V2Error(f"{what}: {e}") from None


def check_signature(sized: list[Sized], sig_inputs) -> None:
    """Names, datatypes and shapes against the SignatureDef's inputs (alias -> TensorInfo)."""
    names = [s.name for s in sized]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise V2Error(f"input '{n}' is given more than once")
        seen.add(n)
    unknown = [n for n in names if n not in sig_inputs]
    if unknown:
        raise V2Error(f"unknown input '{unknown[0]}'; the signature's inputs are "
                      f"{', '.join(repr(k) for k in sorted(sig_inputs))}")
    missing = sorted(set(sig_inputs) - seen)
    if missing:
        raise V2Error(f"missing input{'s' * (len(missing) > 1)} {', '.join(repr(m) for m in missing)}; the "
                      f"signature's inputs are {', '.join(repr(k) for k in sorted(sig_inputs))}")
    for s in sized:
        info = sig_inputs[s.name]
        if info.dtype != DT.DT_INVALID and TF_OF[s.datatype] != info.dtype:
            want = datatype_of_tf(info.dtype)
            if want == "BF16":
                raise V2Error(f"input '{s.name}': {BF16_REFUSED}")
            raise V2Error(f"input '{s.name}' has datatype {s.datatype}; the signature wants {want}")
        want_shape = signature_shape(info)
        if want_shape is not None and (len(want_shape) != len(s.shape) or any(
                w not in (-1, g) for w, g in zip(want_shape, s.shape, strict=True))):
            raise V2Error(f"input '{s.name}' has shape {_shape_text(s.shape)}; the signature wants "
                          f"{_shape_text(want_shape)} (-1: any size)")


def _budget_bytes(s: Sized, content: int = 0) -> int:
    if s.datatype == "BYTES":
        return limits.tensor_bytes(DT.DT_STRING, s.count, content)
    return s.count * s.dtype.itemsize


def _take(budget: limits.Budget, s: Sized, content: int = 0) -> None:
    try:
        budget.take(_budget_bytes(s, content), f"shape {_shape_text(s.shape)} of {s.datatype}")
    except limits.LimitError as e:
        raise V2Error(f"input '{s.name}': {e}") from None


# ---- raw (binary) tensors: gRPC raw_input_contents and REST's binary extension
def bytes_elements(raw: bytes, what: str) -> list[bytes]:
    """Split BYTES in raw form: each element is a 4-byte little-endian length, then that many bytes."""
    out = []
    pos, end = 0, len(raw)
    view = memoryview(raw)
    while pos < end:
        if end - pos < 4:
            raise V2Error(f"{what}: {end - pos} byte(s) left at offset {pos}, too few for a BYTES element's "
                          f"4-byte length")
        (n,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if n > end - pos:
            raise V2Error(f"{what}: element {len(out)} declares {n} bytes at offset {pos - 4}, only "
                          f"{end - pos} follow")
        out.append(bytes(view[pos:pos + n]))
        pos += n
    return out


def from_raw(s: Sized, raw: bytes, budget: limits.Budget, what: str) -> np.ndarray:
    if s.datatype == "BYTES":
        _take(budget, s, len(raw))  # the content is at most the raw bytes: sized before splitting
        elements = bytes_elements(raw, what)
        if len(elements) != s.count:
            raise V2Error(f"{what}: shape {_shape_text(s.shape)} needs {s.count} BYTES elements, the raw "
                          f"data holds {len(elements)}")
        arr = np.empty(s.count, dtype=object)
        arr[:] = elements
        return arr.reshape(s.shape)
    _take(budget, s)
    want = s.count * s.dtype.itemsize
    if len(raw) != want:
        raise V2Error(f"{what}: shape {_shape_text(s.shape)} of {s.datatype} needs {want} bytes of raw data, "
                      f"got {len(raw)}")
    arr = np.frombuffer(raw, dtype=s.dtype.newbyteorder("<"))
    if s.datatype == "BOOL" and arr.size and int(arr.view(np.uint8).max()) > 1:
        raise V2Error(f"{what}: BOOL bytes must be 0 or 1")
    return arr.astype(s.dtype, copy=False).reshape(s.shape)


def to_raw(arr: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in arr.ravel():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LEN.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _check_range(arr: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """Integers the request's wider field holds, checked to fit the datatype before narrowing."""
    if arr.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise V2Error(f"{what}: value {int(bad)} does not fit {DATATYPE_OF_NUMPY[dtype]}")
    return arr.astype(dtype, copy=False)


# ---- gRPC
def check_grpc_request(req: pb.ModelInferRequest, budget: limits.Budget) -> list[Sized]:
    """Size a ModelInferRequest's inputs against `budget` without decoding any (the gateway's check).
    Returns the inputs' declarations, for `decode_grpc_request`."""
    sized = _declared(req)
    raw = req.raw_input_contents
    for i, (s, t) in enumerate(zip(sized, req.inputs, strict=True)):
        if raw:
            _take(budget, s, len(raw[i]) if s.datatype == "BYTES" else 0)
        elif s.datatype == "BYTES":
            _take(budget, s, sum(map(len, t.contents.bytes_contents)))
        else:
            _take(budget, s)
    return sized


def _declared(req: pb.ModelInferRequest) -> list[Sized]:
    for i, t in enumerate(req.inputs):
        if not t.name:
            raise V2Error(f"input {i} has no name")
    sized = [Sized(t.name, t.datatype, t.shape, f"input '{t.name}'") for t in req.inputs]
    raw = req.raw_input_contents
    if raw:
        if len(raw) != len(req.inputs):
            raise V2Error(f"raw_input_contents holds {len(raw)} entries for {len(req.inputs)} inputs; send one "
                          f"per input, in the inputs' order")
        for t in req.inputs:
            if t.HasField("contents"):
                raise V2Error(f"input '{t.name}' has contents while the request uses raw_input_contents; send "
                              f"every input one way")
    return sized


def _from_contents(s: Sized, t, budget: limits.Budget) -> np.ndarray:
    what = f"input '{s.name}'"
    field = CONTENTS_FIELD.get(s.datatype)
    if field is None:
        raise V2Error(f"{what}: {s.datatype} has no typed contents field; send it in raw_input_contents")
    others = [f.name for f, _ in t.contents.ListFields() if f.name != field]
    if others:
        raise V2Error(f"{what} has datatype {s.datatype}, whose values go in {field}, but {others[0]} is set")
    values = getattr(t.contents, field)
    _take(budget, s, sum(map(len, values)) if s.datatype == "BYTES" else 0)
    if len(values) != s.count:
        raise V2Error(f"{what}: shape {_shape_text(s.shape)} needs {s.count} values, {field} holds {len(values)}")
    if s.datatype == "BYTES":
        arr = np.empty(s.count, dtype=object)
        arr[:] = list(values)
        return arr.reshape(s.shape)
    if s.dtype.kind in "fb":
        return np.asarray(values, dtype=s.dtype).reshape(s.shape)
    wide = np.asarray(values, dtype=np.uint64 if s.datatype == "UINT64" else np.int64)
    return _check_range(wide, s.dtype, what).reshape(s.shape)


def decode_grpc_request(req: pb.ModelInferRequest, sig_inputs, budget: limits.Budget,
                        sized: list[Sized] | None = None) -> dict[str, np.ndarray]:
    """A ModelInferRequest's inputs as arrays keyed by the signature's aliases (its input names);
    `sized`: what check_grpc_request returned for it, if it ran."""
    sized = sized if sized is not None else _declared(req)
    check_signature(sized, sig_inputs)
    raw = req.raw_input_contents
    out = {}
    for i, (s, t) in enumerate(zip(sized, req.inputs, strict=True)):
        if raw:
            out[s.name] = from_raw(s, raw[i], budget, f"input '{s.name}' (raw_input_contents[{i}])")
        else:
            out[s.name] = _from_contents(s, t, budget)
    return out


def requested_outputs(names: list[str], sig_outputs) -> list[str]:
    """The outputs to answer, in the order asked for; every output (sorted) when none is asked for."""
    if not names:
        return sorted(sig_outputs)
    seen: set[str] = set()
    for n in names:
        if n not in sig_outputs:
            raise V2Error(f"unknown output '{n}'; the signature's outputs are "
                          f"{', '.join(repr(k) for k in sorted(sig_outputs))}")
        if n in seen:
            raise V2Error(f"output '{n}' is asked for more than once")
        seen.add(n)
    return list(names)


def grpc_output_names(req: pb.ModelInferRequest) -> list[str]:
    return [o.name for o in req.outputs]


def encode_grpc_response(req: pb.ModelInferRequest, version: int | str,
                         outputs: dict[str, np.ndarray], order: list[str]) -> pb.ModelInferResponse:
    """The response Triton would give: each output's values in raw_output_contents."""
    resp = pb.ModelInferResponse(model_name=req.model_name, model_version=str(version), id=req.id)
    for name in order:
        arr = np.asarray(outputs[name])
        datatype = datatype_of_array(arr, f"output '{name}'")
        resp.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        resp.raw_output_contents.append(to_raw(arr, datatype))
    return resp


# ---- REST JSON
def _json_params(obj, what: str) -> dict:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise V2Error(f"{what}: 'parameters' must be a JSON object")
    return params


def parse_json_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON part of a REST request and the binary part after it (binary-tensor extension)."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise V2Error(f"{HEADER_LENGTH} {header_length!r} is not a length within the body's {len(body)} bytes")
        body, binary = body[:n], body[n:]
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise V2Error(f"the request body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise V2Error("the request body must be a JSON object")
    return doc, binary


def _flatten(data, what: str) -> list:
    """Nested JSON lists to one row-major list (the protocol allows `data` either way)."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            flat.append(v)
        else:
            stack.pop()
    return flat


def _from_json_data(s: Sized, data, budget: limits.Budget) -> np.ndarray:
    what = f"input '{s.name}'"
    flat = _flatten(data, what)
    if s.datatype == "BYTES":
        bad = next((v for v in flat if not isinstance(v, str)), None)
        if bad is not None:
            raise V2Error(f"{what}: BYTES data must be strings, got {json.dumps(bad)}")
        # UTF-8 takes at most 4 bytes a character: sized before encoding.
        _take(budget, s, sum(len(v) if v.isascii() else 4 * len(v) for v in flat))
    else:
        _take(budget, s)
    if len(flat) != s.count:
        raise V2Error(f"{what}: shape {_shape_text(s.shape)} needs {s.count} values, data holds {len(flat)}")
    if s.datatype == "BYTES":
        arr = np.empty(s.count, dtype=object)
        arr[:] = [v.encode("utf-8") for v in flat]
        return arr.reshape(s.shape)
    if s.datatype == "BOOL":
        bad = next((v for v in flat if not isinstance(v, bool)), None)
        if bad is not None:
            raise V2Error(f"{what}: BOOL data must be true or false, got {json.dumps(bad)}")
        return np.asarray(flat, dtype=np.bool_).reshape(s.shape)
    want_int = s.dtype.kind in "iu"
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, int | float) or (want_int and not isinstance(v, int)):
            raise V2Error(f"{what}: {s.datatype} data must be {'integers' if want_int else 'numbers'}, "
                          f"got {json.dumps(v)}")
    if want_int:
        try:
            wide = np.asarray(flat, dtype=np.uint64 if s.datatype == "UINT64" else np.int64)
        except OverflowError:
            info = np.iinfo(s.dtype)
            bad = next(v for v in flat if not info.min <= v <= info.max)
            raise V2Error(f"{what}: value {bad} does not fit {s.datatype}") from None
        return _check_range(wide, s.dtype, what).reshape(s.shape)
    return np.asarray(flat, dtype=s.dtype).reshape(s.shape)


class JsonOutputs:
    """The outputs a REST request asks for (`names`, in order; none: all) and which go back as binary
    data: `binary[name]` for those listed, `binary_default` (binary_data_output) for the rest."""

    def __init__(self, names: list[str], binary: dict[str, bool], binary_default: bool):
        self.names = names
        self.binary = binary
        self.binary_default = binary_default

    def is_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


def json_signature(doc: dict) -> str:
    return signature_name(_json_params(doc, "the request"))


def decode_json_request(doc: dict, binary: bytes, sig_inputs,
                        budget: limits.Budget) -> tuple[dict[str, np.ndarray], JsonOutputs]:
    """A REST infer body: the inputs by name and the outputs it asks for. Inputs with
    parameters.binary_data_size take the next that many bytes of `binary`, in the inputs' order."""
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error("'inputs' must be a non-empty list of tensors")
    sized = []
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise V2Error(f"input {i} must be an object with a 'name'")
        what = f"input '{t['name']}'"
        if not isinstance(t.get("datatype"), str):
            raise V2Error(f"{what}: 'datatype' must be a string")
        shape = t.get("shape")
        if not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int) for d in shape):
            raise V2Error(f"{what}: 'shape' must be a list of integers")
        sized.append(Sized(t["name"], t["datatype"], shape, what))
    check_signature(sized, sig_inputs)
    out: dict[str, np.ndarray] = {}
    pos = 0
    for s, t in zip(sized, inputs, strict=True):
        what = f"input '{s.name}'"
        size = _json_params(t, what).get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise V2Error(f"{what}: binary_data_size must be a non-negative integer")
            if "data" in t:
                raise V2Error(f"{what} has both 'data' and binary_data_size")
            if pos + size > len(binary):
                raise V2Error(f"{what}: binary_data_size {size} runs past the {len(binary)} binary bytes "
                              f"after the JSON header (at offset {pos})")
            out[s.name] = from_raw(s, binary[pos:pos + size], budget, f"{what} (binary data)")
            pos += size
        elif "data" in t:
            out[s.name] = _from_json_data(s, t["data"], budget)
        else:
            raise V2Error(f"{what} has neither 'data' nor parameters.binary_data_size")
    if pos != len(binary):
        raise V2Error(f"{len(binary) - pos} binary bytes after the JSON header belong to no input")
    binary_default = _json_params(doc, "the request").get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise V2Error("parameter binary_data_output must be true or false")
    asked = doc.get("outputs", [])
    if not isinstance(asked, list):
        raise V2Error("'outputs' must be a list")
    names, binary_of = [], {}
    for i, o in enumerate(asked):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise V2Error(f"output {i} must be an object with a 'name'")
        b = _json_params(o, f"output '{o['name']}'").get("binary_data", binary_default)
        if not isinstance(b, bool):
            raise V2Error(f"output '{o['name']}': binary_data must be true or false")
        names.append(o["name"])
        binary_of[o["name"]] = b
    return out, JsonOutputs(names, binary_of, binary_default)


def _json_values(arr: np.ndarray, name: str) -> list:
    if arr.dtype == object or arr.dtype.kind in "SU":
        out = []
        for v in arr.ravel():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                raise V2Error(f"output '{name}' holds bytes that are not UTF-8, which JSON cannot carry; ask for it "
                              f"as binary data (parameters: binary_data: true)") from None
        return out
    return arr.ravel().tolist()


def encode_json_response(model: str, version: int | str, request_id, outputs: dict[str, np.ndarray],
                         order: list[str], wanted: JsonOutputs) -> tuple[bytes, int | None]:
    """The REST response body and, when any output is binary, the JSON header's length (the value of
    Inference-Header-Content-Length)."""
    doc: dict = {"model_name": model, "model_version": str(version)}
    if request_id:
        doc["id"] = request_id
    tensors, blobs = [], []
    for name in order:
        arr = np.asarray(outputs[name])
        datatype = datatype_of_array(arr, f"output '{name}'")
        t = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if wanted.is_binary(name):
            raw = to_raw(arr, datatype)
            t["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            t["data"] = _json_values(arr, name)
        tensors.append(t)
    doc["outputs"] = tensors
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


# ---- metadata and configuration from a SignatureDef
def _tensors(infos) -> list[dict]:
    out = []
    for name in sorted(infos):
        shape = signature_shape(infos[name])
        out.append({"name": name, "datatype": datatype_of_tf(infos[name].dtype),
                    "shape": [-1] if shape is None else shape})
    return out


def model_metadata(name: str, versions, sigdef) -> dict:
    """The v2 model metadata (REST JSON shape) of one signature; unknown rank shows as [-1]."""
    return {"name": name, "versions": [str(v) for v in versions], "platform": PLATFORM,
            "inputs": _tensors(sigdef.inputs), "outputs": _tensors(sigdef.outputs)}


def metadata_proto(meta: dict) -> pb.ModelMetadataResponse:
    resp = pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"])
    for key in ("inputs", "outputs"):
        for t in meta[key]:
            getattr(resp, key).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return resp


def server_metadata(version: str) -> dict:
    return {"name": "tfgate", "version": version, "extensions": list(EXTENSIONS)}


def _config_type(datatype: str) -> int:
    name = "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
    return pb.DataType.Value(name) if name in pb.DataType.keys() else pb.TYPE_INVALID


def model_config(name: str, sigdef, max_batch_size: int = 0, batching: bool = False) -> pb.ModelConfig:
    """Triton's model configuration of one signature. With max_batch_size > 0 and every tensor's first
    dimension open (-1), the first dimension is the batch and leaves `dims`, as in Triton; otherwise
    max_batch_size is 0 and `dims` are the whole shapes."""
    tensors = {"input": _tensors(sigdef.inputs), "output": _tensors(sigdef.outputs)}
    batched = max_batch_size > 0 and all(
        t["shape"] and t["shape"][0] == -1 for ts in tensors.values() for t in ts)
    cfg = pb.ModelConfig(name=name, platform=PLATFORM, backend="tensorflow",
                         max_batch_size=max_batch_size if batched else 0)
    for key, ts in tensors.items():
        for t in ts:
            getattr(cfg, key).add(name=t["name"], data_type=_config_type(t["datatype"]),
                                  dims=t["shape"][1:] if batched else t["shape"])
    if batching:
        cfg.dynamic_batching.SetInParent()
    return cfg

