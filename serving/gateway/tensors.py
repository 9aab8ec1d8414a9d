"""tfgate.v1.Tensor <-> tensorflow.TensorProto, with errors that name the tensor, and the size bound on
a request's tensors (typed API and TF Serving pass-through) checked before anything is decoded.
TensorProto <-> numpy is the shared codec's (tfgate.serving.tensor_codec)."""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, inference_pb2, predict_pb2, regression_pb2

from tfgate.v1 import tensor_pb2 as gw

from .. import tensor_codec as codec
from .. import tensor_limits as limits

# tfgate dtype -> (numpy little-endian dtype, TF dtype)
_TYPES = {
    gw.DATA_TYPE_FLOAT32: (np.dtype("<f4"), types_pb2.DT_FLOAT),
    gw.DATA_TYPE_FLOAT64: (np.dtype("<f8"), types_pb2.DT_DOUBLE),
    gw.DATA_TYPE_INT8: (np.dtype("i1"), types_pb2.DT_INT8),
    gw.DATA_TYPE_INT16: (np.dtype("<i2"), types_pb2.DT_INT16),
    gw.DATA_TYPE_INT32: (np.dtype("<i4"), types_pb2.DT_INT32),
    gw.DATA_TYPE_INT64: (np.dtype("<i8"), types_pb2.DT_INT64),
    gw.DATA_TYPE_UINT8: (np.dtype("u1"), types_pb2.DT_UINT8),
    gw.DATA_TYPE_UINT16: (np.dtype("<u2"), types_pb2.DT_UINT16),
    gw.DATA_TYPE_UINT32: (np.dtype("<u4"), types_pb2.DT_UINT32),
    gw.DATA_TYPE_UINT64: (np.dtype("<u8"), types_pb2.DT_UINT64),
    gw.DATA_TYPE_BOOL: (np.dtype("?"), types_pb2.DT_BOOL),
    gw.DATA_TYPE_FLOAT16: (np.dtype("<f2"), types_pb2.DT_HALF),
    gw.DATA_TYPE_STRING: (np.dtype(object), types_pb2.DT_STRING),
}
_FROM_TF = {tf: (gwt, npt) for gwt, (npt, tf) in _TYPES.items()}


class TensorError(ValueError):
    """Bad tensor; the message names the field."""


def request_budget(model: str, max_bytes: int) -> limits.Budget:
    """What one request to `model` may decode to (config `models.<name>.max_tensor_bytes`)."""
    return limits.Budget(max_bytes, f"gateway models.{model}.max_tensor_bytes")


def to_tensor_proto(t: gw.Tensor, field: str, budget: limits.Budget | None = None) -> tensor_pb2.TensorProto:
    if t.dtype not in _TYPES:
        raise TensorError(f"{field}.dtype: unsupported or unspecified dtype {t.dtype}")
    np_dtype, tf_dtype = _TYPES[t.dtype]
    if any(d < 0 for d in t.shape):
        raise TensorError(f"{field}.shape: dimensions must be >= 0, got {list(t.shape)}")
    try:
        count = limits.element_count(t.shape)  # exact: numpy's int64 product wraps at [2^62, 4]
        if budget is not None:
            content = sum(map(len, t.string_values)) if t.dtype == gw.DATA_TYPE_STRING else 0
            budget.take(limits.tensor_bytes(tf_dtype, count, content),
                        f"shape {limits.dims_text(t.shape)} of {limits.dtype_text(tf_dtype)}")
    except limits.LimitError as exc:
        raise TensorError(f"{field}: {exc}") from None
    proto = tensor_pb2.TensorProto(
        dtype=tf_dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in t.shape]),
    )
    if t.dtype == gw.DATA_TYPE_STRING:
        if t.content:
            raise TensorError(f"{field}.content: must be empty for DATA_TYPE_STRING (use string_values)")
        if len(t.string_values) != count:
            raise TensorError(f"{field}.string_values: shape {list(t.shape)} needs {count} values, "
                              f"got {len(t.string_values)}")
        proto.string_val.extend(t.string_values)
        return proto
    if t.string_values:
        raise TensorError(f"{field}.string_values: only for DATA_TYPE_STRING")
    if len(t.content) != count * np_dtype.itemsize:
        raise TensorError(f"{field}.content: shape {list(t.shape)} of {np_dtype.name} needs "
                          f"{count * np_dtype.itemsize} bytes, got {len(t.content)}")
    proto.tensor_content = t.content
    return proto


def to_numpy(p: tensor_pb2.TensorProto) -> np.ndarray:
    """A TensorProto as produced by TF Serving (tensor_content or the typed *_val fields)."""
    try:
        return codec.to_numpy(p, exact_counts=False)
    except (codec.CodecError, limits.LimitError) as exc:
        raise TensorError(str(exc)) from None


def from_tensor_proto(p: tensor_pb2.TensorProto) -> gw.Tensor:
    gwt, np_dtype = _FROM_TF[p.dtype] if p.dtype in _FROM_TF else (None, None)
    if gwt is None:
        raise TensorError(f"unsupported TF dtype {p.dtype}")
    shape = [d.size for d in p.tensor_shape.dim]
    if p.dtype != types_pb2.DT_STRING and p.tensor_content:
        return gw.Tensor(dtype=gwt, shape=shape, content=p.tensor_content)
    arr = to_numpy(p)
    if p.dtype == types_pb2.DT_STRING:
        return gw.Tensor(dtype=gwt, shape=shape, string_values=list(arr.reshape(-1)))
    return gw.Tensor(dtype=gwt, shape=shape, content=np.ascontiguousarray(arr, dtype=np_dtype).tobytes())


_PASSTHROUGH = {"Predict": predict_pb2.PredictRequest, "Classify": classification_pb2.ClassificationRequest,
                "Regress": regression_pb2.RegressionRequest, "MultiInference": inference_pb2.MultiInferenceRequest}


def passthrough_problem(method: str, body: bytes, budget: limits.Budget) -> str | None:
    """Why a TF Serving request must not reach a backend (its tensors would decode to more than
    `budget`, or their values do not fit their shapes), or None. The bytes forwarded stay as sent;
    they are only parsed here, with the stock classes: about 1 us for a small Predict, where walking
    the wire format in Python takes about 20."""
    cls = _PASSTHROUGH.get(method)
    if cls is None:
        return None
    try:
        req = cls.FromString(body)
    except DecodeError:
        return None  # the backend answers with its own parse error, as before
    field = "input"
    try:
        if method == "Predict":
            for alias in sorted(req.inputs):
                field = f"inputs[{alias}]"
                limits.check_tensor_proto(req.inputs[alias], budget)
        else:
            limits.check_examples(req.input, budget)
    except limits.LimitError as exc:
        return f"{field}: {exc}"
    return None
