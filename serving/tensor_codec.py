"""TensorProto <-> numpy for both servers, without TensorFlow's runtime (its protobuf modules only).

Arrays are written with typed values (`float_val`, ...) as TF Serving does, or as `tensor_content`.
Errors do not name the tensor: each server puts its own name for it (and its own status) in front.
Leaf module: imports only tfgate.serving.tensor_limits.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from . import tensor_limits as limits

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
# Where a TensorProto without tensor_content keeps its values.
_FIELD = {
    DT.DT_FLOAT: "float_val", DT.DT_DOUBLE: "double_val", DT.DT_INT32: "int_val", DT.DT_UINT8: "int_val",
    DT.DT_INT16: "int_val", DT.DT_INT8: "int_val", DT.DT_UINT16: "int_val", DT.DT_INT64: "int64_val",
    DT.DT_BOOL: "bool_val", DT.DT_STRING: "string_val", DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val", DT.DT_HALF: "half_val", DT.DT_COMPLEX64: "scomplex_val",
    DT.DT_COMPLEX128: "dcomplex_val",
}


class CodecError(ValueError):
    """A tensor this codec cannot convert (dtype, or values that do not fit it). Size and value-count
    problems raise tensor_limits.LimitError instead."""


def dtype_name(dt: int) -> str:
    return TF_NAME.get(dt, types_pb2.DataType.Name(dt).removeprefix("DT_").lower())


def dtype_of_array(arr: np.ndarray) -> int:
    if arr.dtype == object or arr.dtype.kind in "SU":
        return DT.DT_STRING
    try:
        return DT_OF[arr.dtype]
    except KeyError:
        raise CodecError(f"unsupported dtype {arr.dtype}") from None


def to_numpy(tp: tensor_pb2.TensorProto, exact_counts: bool = True) -> np.ndarray:
    """The array a TensorProto holds (tensor_content or the typed *_val fields).

    No values: zeros (empty strings). `exact_counts` (requests): otherwise exactly one value, repeated
    over the shape, or every value (tensor_limits.check_value_count). Without it (answers from a
    backend), TensorFlow's own reading: the last of fewer values repeats.
    """
    dt = tp.dtype
    npdt = NP_OF.get(dt)
    if npdt is None:
        raise CodecError(f"unsupported dtype {dtype_name(dt)}")
    shape = [d.size for d in tp.tensor_shape.dim]
    n = limits.element_count(shape)
    try:
        if dt != DT.DT_STRING and (content := tp.tensor_content):
            if len(content) != n * np.dtype(npdt).itemsize:
                raise limits.LimitError(f"shape {limits.dims_text(shape)} of {dtype_name(dt)} needs "
                                        f"{n * np.dtype(npdt).itemsize} bytes of tensor_content, got {len(content)}")
            return np.frombuffer(content, dtype=npdt).reshape(shape)
        if dt == DT.DT_STRING:
            vals = np.empty(len(tp.string_val), dtype=object)
            vals[:] = list(tp.string_val)
        elif dt == DT.DT_HALF:
            vals = np.asarray(tp.half_val, dtype=np.uint16).view(np.float16)
        elif dt in (DT.DT_COMPLEX64, DT.DT_COMPLEX128):
            raw = np.asarray(getattr(tp, _FIELD[dt]), dtype=np.float64)
            if raw.size % 2:
                raise limits.LimitError(f"{_FIELD[dt]} holds {raw.size} numbers, not (real, imaginary) pairs")
            vals = (raw[0::2] + 1j * raw[1::2]).astype(npdt)
        else:
            vals = np.asarray(getattr(tp, _FIELD[dt]), dtype=npdt)
        if exact_counts:
            limits.check_value_count(n, vals.size)
        elif vals.size > n:
            raise CodecError(f"{vals.size} values for shape {limits.dims_text(shape)}")
        if vals.size == n:
            return vals.reshape(shape)
        out = np.empty(n, dtype=npdt)
        out[:vals.size] = vals
        out[vals.size:] = vals[-1] if vals.size else (b"" if dt == DT.DT_STRING else 0)
        return out.reshape(shape)
    except limits.LimitError:
        raise
    except (ValueError, OverflowError) as e:  # values out of the dtype's range, a shape numpy refuses
        raise CodecError(f"values of {dtype_name(dt)} do not fit ({e})") from None


def to_proto(arr, as_content: bool = False) -> tensor_pb2.TensorProto:
    tp = tensor_pb2.TensorProto()
    fill_proto(tp, arr, as_content)
    return tp


def fill_proto(tp: tensor_pb2.TensorProto, arr, as_content: bool = False) -> None:
    """`to_proto` written into an empty TensorProto in place (saves building and copying one).
    Strings always go to string_val."""
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
