"""numpy arrays <-> `tfgate.v1.Tensor` (dtype + shape + little-endian bytes), no TensorFlow needed.

Example:
    >>> t = to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> from_tensor(t).shape
    (2, 3)
"""

from __future__ import annotations

import numpy as np

from tfgate.v1 import tensor_pb2

from .errors import InvalidArgument

_BY_KIND: dict[str, int] = {
    "f2": tensor_pb2.DATA_TYPE_FLOAT16, "f4": tensor_pb2.DATA_TYPE_FLOAT32, "f8": tensor_pb2.DATA_TYPE_FLOAT64,
    "i1": tensor_pb2.DATA_TYPE_INT8, "i2": tensor_pb2.DATA_TYPE_INT16, "i4": tensor_pb2.DATA_TYPE_INT32,
    "i8": tensor_pb2.DATA_TYPE_INT64, "u1": tensor_pb2.DATA_TYPE_UINT8, "u2": tensor_pb2.DATA_TYPE_UINT16,
    "u4": tensor_pb2.DATA_TYPE_UINT32, "u8": tensor_pb2.DATA_TYPE_UINT64, "b1": tensor_pb2.DATA_TYPE_BOOL,
}
_NUMPY: dict[int, np.dtype] = {code: np.dtype(kind).newbyteorder("<") for kind, code in _BY_KIND.items()}


def to_tensor(value, name: str = "tensor") -> tensor_pb2.Tensor:
    """A numpy array (or anything `np.asarray` takes) as a `tfgate.v1.Tensor`. str/bytes arrays become
    DATA_TYPE_STRING (str encoded as UTF-8).

    Example:
        >>> to_tensor(np.array(["INLAND", "NEAR BAY"])).dtype == tensor_pb2.DATA_TYPE_STRING
        True
    """
    arr = np.asarray(value)
    if arr.dtype.kind in "USO":
        flat = [v.encode() if isinstance(v, str) else v for v in arr.reshape(-1).tolist()]
        if not all(isinstance(v, bytes) for v in flat):
            raise InvalidArgument(f"inputs[{name}]: object arrays must hold only str or bytes")
        return tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_STRING, shape=arr.shape, string_values=flat)
    key = f"{arr.dtype.kind}{arr.dtype.itemsize}"
    if key not in _BY_KIND:
        raise InvalidArgument(f"inputs[{name}]: dtype {arr.dtype} is not supported")
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return tensor_pb2.Tensor(dtype=_BY_KIND[key], shape=arr.shape, content=little.tobytes())


def from_tensor(t: tensor_pb2.Tensor) -> np.ndarray:
    """A `tfgate.v1.Tensor` as a writable numpy array (strings as an object array of bytes).

    Example:
        >>> from_tensor(to_tensor(np.array([1, 2], np.int64))).tolist()
        [1, 2]
    """
    shape = tuple(t.shape)
    if t.dtype == tensor_pb2.DATA_TYPE_STRING:
        out = np.empty(len(t.string_values), dtype=object)
        out[:] = list(t.string_values)
        return out.reshape(shape)
    if t.dtype not in _NUMPY:
        raise InvalidArgument(f"tensor dtype {t.dtype} is not supported")
    # astype(native) copies: callers get a writable array in the machine's byte order.
    arr = np.frombuffer(t.content, dtype=_NUMPY[t.dtype]).reshape(shape)
    return arr.astype(arr.dtype.newbyteorder("="))
