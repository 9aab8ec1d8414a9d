"""Sample tensors of every v2 datatype, shared by the client scripts; no tfgate import (run in .venv/oip)."""

from __future__ import annotations

import base64

import numpy as np

SAMPLES = {
    "BOOL": [True, False, True, True], "UINT8": [0, 1, 200, 255], "UINT16": [0, 1, 60000, 65535],
    "UINT32": [0, 1, 2**32 - 1, 7], "UINT64": [0, 1, 2**64 - 1, 9], "INT8": [-128, -1, 0, 127],
    "INT16": [-32768, -1, 0, 32767], "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 2**63 - 1], "FP16": [0.5, -1.0, 65504.0, 0.0],
    "FP32": [0.25, -1.5, 3.0e38, 0.0], "FP64": [0.1, -1e300, 2.5, 0.0],
    "BYTES": [b"a", b"", b"\xff\x00z", "é".encode()],
}
NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
         "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
         "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}


def arrays(utf8_only: bool = False) -> dict[str, tuple[str, np.ndarray]]:
    """name (the datatype in lower case) -> (datatype, [2, 2] array). JSON carries BYTES as text, so
    `utf8_only` swaps the non-UTF-8 element."""
    out = {}
    for datatype, values in SAMPLES.items():
        if datatype == "BYTES" and utf8_only:
            values = [v if v != b"\xff\x00z" else b"z" for v in values]
        out[datatype.lower()] = (datatype, np.array(values, dtype=NUMPY[datatype]).reshape(2, 2))
    return out


def dump(tensors: dict[str, np.ndarray]) -> dict:
    """Arrays as JSON: dtype, shape and values (bytes as base64)."""
    out = {}
    for name, arr in tensors.items():
        flat = arr.ravel().tolist()
        if arr.dtype == object:
            # kserve hands BYTES back as text once it has decoded them.
            flat = [base64.b64encode(v.encode() if isinstance(v, str) else v).decode() for v in flat]
        out[name] = {"dtype": str(arr.dtype), "shape": list(arr.shape), "values": flat}
    return out
