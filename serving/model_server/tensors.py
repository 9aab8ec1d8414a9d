"""TensorProto <-> numpy, without TensorFlow in the hot path.

Responses carry typed values (`float_val`, ...) as TF Serving does, or `tensor_content` with
--enable_serialization_as_tensor_content.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from .. import tensor_limits as limits
from .errors import ServingError, invalid

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


def _refuse(alias: str, e: limits.LimitError) -> ServingError:
    # TF Serving's own words for a malformed tensor come first, then what is wrong with it.
    return invalid(f"input {alias}: {e}" if e.oversize else f"tensor parsing error: {alias}: {e}")


def check_request(inputs, max_bytes: int) -> None:
    """Refuse a Predict whose input tensors would take more than `max_bytes` once decoded (declared
    elements x dtype size, strings with their content), or whose values do not fit their shapes,
    before any tensor is decoded."""
    budget = limits.Budget(max_bytes, "--max_request_tensor_bytes")
    for alias in sorted(inputs):
        try:
            limits.check_tensor_proto(inputs[alias], budget)
        except limits.LimitError as e:
            raise _refuse(alias, e) from None


def check_examples(inp, max_bytes: int) -> None:
    """The same for the string tensor a Classify/Regress/MultiInference `input` becomes."""
    try:
        limits.check_examples(inp, limits.Budget(max_bytes, "--max_request_tensor_bytes"))
    except limits.LimitError as e:
        raise invalid(f"input: {e}") from None


def to_numpy(tp: tensor_pb2.TensorProto, alias: str = "") -> np.ndarray:
    """Decode a request tensor; a malformed one is the client's mistake (INVALID_ARGUMENT).
    Sizes are checked before this (`check_request`); the value count rule is enforced here too."""
    dt = tp.dtype
    npdt = NP_OF.get(dt)
    if npdt is None:
        raise invalid(f"tensor parsing error: {alias}")
    shape = [d.size for d in tp.tensor_shape.dim]
    try:
        n = limits.element_count(shape)
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
        limits.check_value_count(n, vals.size)
        if vals.size == n:
            return vals.reshape(shape)
        # None: zeros (empty strings); one: TensorFlow repeats it over the shape.
        out = np.empty(n, dtype=npdt)
        out[:] = vals[0] if vals.size else (b"" if dt == DT.DT_STRING else 0)
        return out.reshape(shape)
    except limits.LimitError as e:
        raise _refuse(alias, e) from None
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
