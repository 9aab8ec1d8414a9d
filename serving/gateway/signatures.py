"""Input checks for the generic Predict against the model's signature, so a wrong input name,
dtype or shape is an INVALID_ARGUMENT that names the input (TF Serving's own message for a dtype
mismatch is "Expects arg[0] to be uint8 ..."). Signatures come from GetModelMetadata and are
cached per model, version or label, and signature name. A request that fails a cached signature
refreshes it once first, so a rollout that changes the signature does not reject good calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from ..tfs_protos import PREDICTION_SERVICE, method_path
from . import wire

METADATA_PATH = method_path(PREDICTION_SERVICE, "GetModelMetadata")
TTL_SECONDS = 60.0
REFRESH_AFTER_SECONDS = 1.0  # a failing request may refresh an entry at most this often


@dataclass
class Input:
    dtype: int
    shape: list[int] | None  # None: unknown rank; -1: any size


@dataclass
class Entry:
    inputs: dict[str, Input] | None  # None: the signature could not be read; checks are skipped
    fetched: float


def parse(raw: bytes, signature_name: str) -> dict[str, Input] | None:
    resp = get_model_metadata_pb2.GetModelMetadataResponse.FromString(raw)
    if "signature_def" not in resp.metadata:
        return None
    sdm = get_model_metadata_pb2.SignatureDefMap()
    if not resp.metadata["signature_def"].Unpack(sdm) or signature_name not in sdm.signature_def:
        return None
    out = {}
    for name, info in sdm.signature_def[signature_name].inputs.items():
        shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
        out[name] = Input(info.dtype, shape)
    return out


def problems(inputs: dict[str, Input], given: dict[str, tuple[int, list[int]]], signature_name: str) -> str | None:
    """The first problem with `given` (name -> (TF dtype, shape)), naming the input, or None."""
    for name, (dtype, shape) in given.items():
        want = inputs.get(name)
        if want is None:
            return (f"inputs[{name}]: signature {signature_name!r} has no input {name!r} "
                    f"(inputs: {', '.join(sorted(inputs))})")
        if want.dtype != dtype:
            return (f"inputs[{name}].dtype: the model expects {types_pb2.DataType.Name(want.dtype)}, "
                    f"got {types_pb2.DataType.Name(dtype)}")
        if want.shape is not None and (len(want.shape) != len(shape) or any(
                w >= 0 and w != s for w, s in zip(want.shape, shape, strict=True))):
            return (f"inputs[{name}].shape: the model expects {['?' if w < 0 else w for w in want.shape]}, "
                    f"got {list(shape)}")
    missing = sorted(set(inputs) - set(given))
    if missing:
        return f"inputs: missing {', '.join(missing)} (signature {signature_name!r})"
    return None


class Cache:
    def __init__(self):
        self._entries: dict[tuple, Entry] = {}

    async def check(self, pool, spec: wire.ModelSpec, given: dict, metadata, deadline: float) -> str | None:
        sig = spec.signature_name or "serving_default"
        key = (pool.model, spec.version, spec.label, sig)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or now - entry.fetched > TTL_SECONDS:
            entry = await self._fetch(key, pool, spec, sig, metadata, deadline)
        if entry.inputs is None:
            return None
        problem = problems(entry.inputs, given, sig)
        if problem and now - entry.fetched > REFRESH_AFTER_SECONDS:
            entry = await self._fetch(key, pool, spec, sig, metadata, deadline)
            problem = problems(entry.inputs, given, sig) if entry.inputs is not None else None
        return problem

    async def _fetch(self, key, pool, spec, sig, metadata, deadline) -> Entry:
        from .backends import BackendError

        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        req_bytes = wire.replace_model_spec(req.SerializeToString(), wire.ModelSpec(
            name=spec.name, version=spec.version, label=spec.label, signature_name=sig))
        try:
            raw, _ = await pool.call(METADATA_PATH, req_bytes, metadata, deadline)
            inputs = parse(raw, sig)
        except BackendError:
            # Unknown version/label, backend down, no metadata support: the Predict call itself
            # will report it. Not cached, so the next request asks again.
            return Entry(None, time.monotonic())
        except Exception:  # an unreadable answer: skip the checks rather than fail the call
            inputs = None
        entry = self._entries[key] = Entry(inputs, time.monotonic())
        return entry
