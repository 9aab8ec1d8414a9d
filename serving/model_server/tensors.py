"""The model server's request tensors: the shared codec (tfgate.serving.tensor_codec) and size bound
(tensor_limits) with TF Serving's checks and words, as INVALID_ARGUMENT errors that name the input.

Responses carry typed values (`float_val`, ...) as TF Serving does, or `tensor_content` with
--enable_serialization_as_tensor_content.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2

from .. import tensor_codec as codec
from .. import tensor_limits as limits
from ..status import ServingError, invalid

SETTING = "--max_request_tensor_bytes"


def _refuse(alias: str, e: limits.LimitError) -> ServingError:
    # TF Serving's own words for a malformed tensor come first, then what is wrong with it.
    return invalid(f"input {alias}: {e}" if e.oversize else f"tensor parsing error: {alias}: {e}")


def check_request(inputs, max_bytes: int) -> None:
    """Refuse a Predict whose input tensors would take more than `max_bytes` once decoded (declared
    elements x dtype size, strings with their content), or whose values do not fit their shapes,
    before any tensor is decoded."""
    budget = limits.Budget(max_bytes, SETTING)
    for alias in sorted(inputs):
        try:
            limits.check_tensor_proto(inputs[alias], budget)
        except limits.LimitError as e:
            raise _refuse(alias, e) from None


def check_examples(inp, max_bytes: int) -> None:
    """The same for the string tensor a Classify/Regress/MultiInference `input` becomes."""
    try:
        limits.check_examples(inp, limits.Budget(max_bytes, SETTING))
    except limits.LimitError as e:
        raise invalid(f"input: {e}") from None


def to_numpy(tp: tensor_pb2.TensorProto, alias: str = "") -> np.ndarray:
    """Decode a request tensor; a malformed one is the client's mistake (INVALID_ARGUMENT).
    Sizes are checked before this (`check_request`); the value count rule is enforced here too."""
    try:
        return codec.to_numpy(tp, exact_counts=True)
    except limits.LimitError as e:
        raise _refuse(alias, e) from None
    except codec.CodecError:
        raise invalid(f"tensor parsing error: {alias}") from None


def fill_proto(tp: tensor_pb2.TensorProto, arr, as_content: bool = False) -> None:
    """An output written into a response tensor; a dtype TensorProto cannot carry is INVALID_ARGUMENT."""
    try:
        codec.fill_proto(tp, arr, as_content)
    except codec.CodecError as e:
        raise invalid(str(e)) from None


def to_proto(arr, as_content: bool = False) -> tensor_pb2.TensorProto:
    tp = tensor_pb2.TensorProto()
    fill_proto(tp, arr, as_content)
    return tp
