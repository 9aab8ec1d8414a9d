"""How many bytes a client's tensors take once decoded, worked out before decoding them (issue 13).

A TensorProto declares its shape apart from its values, and TensorFlow fills a shape from a single
value, so a request of a few bytes can claim any amount of memory (a first dimension of 10^9 took a
model server to 23 GB and the OOM killer). The model server and the gateway both size a request's
tensors here, from shapes, dtypes and value counts alone, and refuse it before allocating anything.
"""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import types_pb2 as DT

MAX_MESSAGE_BYTES = 2**31 - 1  # protobuf's ceiling; TF Serving's default gRPC and REST request limits
MAX_RANK = 254  # TensorFlow's TensorShape::MaxDimensions()
# A tf.string element is a tensorflow::tstring (24 bytes) plus its content; numpy's object arrays hold
# an 8-byte pointer per element. The larger fixed cost is the one counted.
STRING_ELEMENT_BYTES = 24
ITEMSIZE = {
    DT.DT_FLOAT: 4, DT.DT_DOUBLE: 8, DT.DT_INT32: 4, DT.DT_UINT8: 1, DT.DT_INT16: 2, DT.DT_INT8: 1,
    DT.DT_COMPLEX64: 8, DT.DT_INT64: 8, DT.DT_BOOL: 1, DT.DT_QINT8: 1, DT.DT_QUINT8: 1, DT.DT_QINT32: 4,
    DT.DT_BFLOAT16: 2, DT.DT_QINT16: 2, DT.DT_QUINT16: 2, DT.DT_UINT16: 2, DT.DT_COMPLEX128: 16,
    DT.DT_HALF: 2, DT.DT_UINT32: 4, DT.DT_UINT64: 8,
}
# Where a TensorProto without tensor_content keeps its values, and how many numbers make one element.
VALUE_FIELD = {
    DT.DT_FLOAT: ("float_val", 1), DT.DT_DOUBLE: ("double_val", 1), DT.DT_INT32: ("int_val", 1),
    DT.DT_UINT8: ("int_val", 1), DT.DT_INT16: ("int_val", 1), DT.DT_INT8: ("int_val", 1),
    DT.DT_QINT8: ("int_val", 1), DT.DT_QUINT8: ("int_val", 1), DT.DT_QINT32: ("int_val", 1),
    DT.DT_QINT16: ("int_val", 1), DT.DT_QUINT16: ("int_val", 1), DT.DT_UINT16: ("int_val", 1),
    DT.DT_STRING: ("string_val", 1), DT.DT_COMPLEX64: ("scomplex_val", 2), DT.DT_INT64: ("int64_val", 1),
    DT.DT_BOOL: ("bool_val", 1), DT.DT_BFLOAT16: ("half_val", 1), DT.DT_HALF: ("half_val", 1),
    DT.DT_COMPLEX128: ("dcomplex_val", 2), DT.DT_UINT32: ("uint32_val", 1), DT.DT_UINT64: ("uint64_val", 1),
}


class LimitError(ValueError):
    """A tensor the request cannot have. `oversize`: too many bytes (else malformed). The message
    does not name the tensor: callers put their own name for it in front."""

    def __init__(self, message: str, oversize: bool = False):
        super().__init__(message)
        self.oversize = oversize


def dims_text(dims) -> str:
    return "[" + ",".join(map(str, dims)) + "]"


def dtype_text(dtype: int) -> str:
    try:
        return DT.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:
        return f"dtype {dtype}"


def element_count(dims) -> int:
    if len(dims) > MAX_RANK:
        raise LimitError(f"shape has {len(dims)} dimensions, more than {MAX_RANK}")
    if any(d < 0 for d in dims):
        raise LimitError(f"shape {dims_text(dims)} has a negative dimension")
    return math.prod(dims)  # Python ints: [2^62, 2^62] is a size to compare, not an overflow


def tensor_bytes(dtype: int, count: int, content: int = 0) -> int:
    """Bytes of `count` elements once decoded; `content`: the string bytes of a DT_STRING tensor."""
    if dtype == DT.DT_STRING:
        return count * STRING_ELEMENT_BYTES + content
    return count * ITEMSIZE.get(dtype, 8)


def check_value_count(count: int, sent: int) -> None:
    """None (zeros), exactly one (TensorFlow repeats it over the shape) or every value. TensorFlow
    itself also repeats the last of a few values and drops extra ones; those are refused here."""
    if sent not in (0, 1, count):
        raise LimitError(f"{sent} values were sent for {count} elements; send {count}, exactly one "
                         f"(repeated to fill the shape) or none (zeros)")


class Budget:
    """The bytes one request's tensors may take together once decoded."""

    def __init__(self, limit: int, setting: str, used: int = 0, held: str = "the request's other inputs"):
        self.limit = limit
        self.setting = setting  # what sets the limit, for the message
        self.used = used  # bytes the request already holds (REST: its parsed JSON)
        self.held = held

    def take(self, nbytes: int, what: str) -> None:
        """`what` describes the tensor (`shape [3] of float`); refuses once the total passes the limit."""
        self.used += nbytes
        if self.used > self.limit:
            others = self.used - nbytes
            total = f" ({self.used} with {self.held})" if others else ""
            raise LimitError(f"{what} takes {nbytes} bytes{total}, over the limit of {self.limit} bytes "
                             f"for a request's tensors ({self.setting})", oversize=True)


def check_tensor_proto(tp, budget: Budget) -> int:
    """Size a TensorProto against `budget` and check its values fit its shape, without decoding it.
    Returns the element count."""
    dims = [d.size for d in tp.tensor_shape.dim]
    count = element_count(dims)
    dtype = tp.dtype
    desc = f"shape {dims_text(dims)} of {dtype_text(dtype)}"
    field, per = VALUE_FIELD.get(dtype, (None, 1))
    if dtype != DT.DT_STRING and tp.tensor_content:
        budget.take(tensor_bytes(dtype, count), desc)
        want = count * ITEMSIZE.get(dtype, 0)
        if len(tp.tensor_content) != want:
            raise LimitError(f"{desc} needs {want} bytes of tensor_content, got {len(tp.tensor_content)}")
        return count
    values = getattr(tp, field) if field else ()
    content = 0
    if dtype == DT.DT_STRING and values:
        # The values sent, plus the last one again for each element it fills.
        content = sum(map(len, values)) + max(0, count - len(values)) * len(values[-1])
    budget.take(tensor_bytes(dtype, count, content), desc)
    if len(values) % per:
        raise LimitError(f"{field} holds {len(values)} numbers; a {dtype_text(dtype)} element takes {per} "
                         f"(real, imaginary)")
    check_value_count(count, len(values) // per)
    return count


def check_examples(inp, budget: Budget) -> int:
    """Size the string tensor a Classify/Regress/MultiInference `input` becomes (one serialized
    tf.Example per element, each prefixed with the context) before building it. Returns the count."""
    which = inp.WhichOneof("kind")
    if which == "example_list":
        examples, context = inp.example_list.examples, 0
    elif which == "example_list_with_context":
        examples = inp.example_list_with_context.examples
        context = inp.example_list_with_context.context.ByteSize()
    else:
        return 0
    n = len(examples)
    # Each element: the context again, then its example; all examples together are at most `inp`.
    content = n * context + inp.ByteSize()
    ctx = f", each with the {context}-byte context," if context else ""
    budget.take(tensor_bytes(DT.DT_STRING, n, content), f"{n} examples{ctx} as a string tensor")
    return n


def array_bytes(arr: np.ndarray) -> int:
    """Bytes of a decoded array as `tensor_bytes` counts them (strings: per element plus content)."""
    if arr.dtype == object:
        return arr.size * STRING_ELEMENT_BYTES + sum(len(v) for v in arr.ravel() if isinstance(v, bytes))
    return arr.nbytes
