"""TensorProto <-> numpy, without TensorFlow in the hot path.

Responses carry typed values (`float_val`, ...) as TF Serving does, or `tensor_content` with
--enable_serialization_as_tensor_content.
"""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from .errors import invalid

DT = types_pb2
NP_OF = {
    DT.DT_FLOAT: np.float32, DT.DT_DOUBLE: np.float64, DT.DT_INT32: np.int32, DT.DT_UINT8: np.uint8,
    DT.DT_INT16: np.int16, DT.DT_INT8: np.int8, DT.DT_STRING: object, DT.DT_COMPLEX64: np.complex64,
    DT.DT_INT64: np.int64, DT.DT_BOOL: np.bool_, DT.DT_UINT16: np.uint16, DT.DT_HALF: np.float16,
    DT.DT_UINT32: np.uint32, DT.DT_UINT64: np.uint64, DT.DT_COMPLEX128: np.complex128,
}
DT_OF = {np.dtype(v): k for k, v in NP_OF.items() if v is not object}
# TensorFlow's DataTypeString names, used in its error messages.
TF_NAME = {
    DT.DT_FLOAT: "float", DT.DT_DOUBLE: "double", DT.DT_INT32: "int32", DT.DT_UINT8: "uint8",
    DT.DT_INT16: "int16", DT.DT_INT8: "int8", DT.DT_STRING: "string", DT.DT_COMPLEX64: "complex64",
    DT.DT_INT64: "int64", DT.DT_BOOL: "bool", DT.DT_BFLOAT16: "bfloat16", DT.DT_UINT16: "uint16",
    DT.DT_HALF: "half", DT.DT_UINT32: "uint32", DT.DT_UINT64: "uint64", DT.DT_COMPLEX128: "complex128",
}
_FIELD = {
    DT.DT_FLOAT: "float_val", DT.DT_DOUBLE: "double_val", DT.DT_INT32: "int_val", DT.DT_UINT8: "int_val",
    DT.DT_INT16: "int_val", DT.DT_INT8: "int_val", DT.DT_UINT16: "int_val", DT.DT_INT64: "int64_val",
    DT.DT_BOOL: "bool_val", DT.DT_STRING: "string_val", DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val", DT.DT_HALF: "half_val", DT.DT_COMPLEX64: "scomplex_val",
    DT.DT_COMPLEX128: "dcomplex_val",
}


def dtype_name(dt: int) -> str:
    return TF_NAME.get(dt, types_pb2.DataType.Name(dt).removeprefix("DT_").lower())


def dtype_of_array(arr: np.ndarray) -> int:
    if arr.dtype == object or arr.dtype.kind in "SU":
        return DT.DT_STRING
    try:
        return DT_OF[arr.dtype]
    except KeyError:
        raise invalid(f"unsupported dtype {arr.dtype}") from None


def to_numpy(tp: tensor_pb2.TensorProto, alias: str = "") -> np.ndarray:
    """Decode a request tensor; a malformed one is the client's mistake (INVALID_ARGUMENT)."""
    dt = tp.dtype
    npdt = NP_OF.get(dt)
    if npdt is None:
        raise invalid(f"tensor parsing error: {alias}")
    shape = [d.size for d in tp.tensor_shape.dim]
    if any(s < 0 for s in shape):
        raise invalid(f"tensor parsing error: {alias}")
    n = math.prod(shape)  # Python ints: no overflow, and ~10x cheaper than np.prod for short lists
    try:
        if dt != DT.DT_STRING and (content := tp.tensor_content):
            arr = np.frombuffer(content, dtype=npdt)
            if arr.size != n:
                raise ValueError
            return arr.reshape(shape)
        if dt == DT.DT_STRING:
            vals = np.empty(len(tp.string_val), dtype=object)
            vals[:] = list(tp.string_val)
        elif dt == DT.DT_HALF:
            vals = np.asarray(tp.half_val, dtype=np.uint16).view(np.float16)
        elif dt in (DT.DT_COMPLEX64, DT.DT_COMPLEX128):
            raw = np.asarray(getattr(tp, _FIELD[dt]), dtype=np.float64)
            vals = (raw[0::2] + 1j * raw[1::2]).astype(npdt)
        else:
            vals = np.asarray(getattr(tp, _FIELD[dt]), dtype=npdt)
        if vals.size == n:
            return vals.reshape(shape)
        if vals.size == 0:
            out = np.empty(n, dtype=npdt)
            out[:] = b"" if dt == DT.DT_STRING else 0
            return out.reshape(shape)
        if vals.size < n:  # TensorFlow repeats the last value to fill the shape
            out = np.empty(n, dtype=npdt)
            out[: vals.size] = vals
            out[vals.size:] = vals[-1]
            return out.reshape(shape)
        raise ValueError
    except (ValueError, OverflowError):
        raise invalid(f"tensor parsing error: {alias}") from None


def to_proto(arr, as_content: bool = False) -> tensor_pb2.TensorProto:
    tp = tensor_pb2.TensorProto()
    fill_proto(tp, arr, as_content)
    return tp


def fill_proto(tp: tensor_pb2.TensorProto, arr, as_content: bool = False) -> None:
    """`to_proto` written into an empty TensorProto in place (saves building and copying one)."""
    arr = np.asarray(arr)
    dt = dtype_of_array(arr)
    tp.dtype = dt
    dims = tp.tensor_shape.dim
    for s in arr.shape:
        dims.add().size = s
    flat = arr.ravel()
    if dt == DT.DT_STRING:
        tp.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif as_content:
        tp.tensor_content = np.ascontiguousarray(arr).tobytes()
    elif dt == DT.DT_HALF:
        tp.half_val.extend(flat.view(np.uint16).tolist())
    elif dt in (DT.DT_COMPLEX64, DT.DT_COMPLEX128):
        getattr(tp, _FIELD[dt]).extend(np.column_stack([flat.real, flat.imag]).ravel().tolist())
    else:
        getattr(tp, _FIELD[dt]).extend(flat.tolist())
