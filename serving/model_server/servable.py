"""One loaded SavedModel version: its SignatureDefs (read from the SavedModel proto, which keeps
method names) and its callable signatures (from `tf.saved_model.load`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.saved_model import loader_impl

from . import tensors
from .errors import ServingError, failed_precondition, invalid

try:  # tf.constant minus its dispatch layers: half the cost per input
    from tensorflow.python.eager import context as _tf_context
    from tensorflow.python.framework.constant_op import convert_to_eager_tensor as _to_tensor

    def _eager(value):
        return _to_tensor(value, _tf_context.context())
except ImportError:  # pragma: no cover - a TensorFlow without these internals
    _eager = tf.constant

log = logging.getLogger("tfgate.model_server")

INIT_OP_KEY = "__saved_model_init_op"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


@dataclasses.dataclass
class Signature:
    name: str
    sigdef: meta_graph_pb2.SignatureDef
    fn: object
    input_keys: list[str]  # sorted
    input_dtypes: dict[str, int]
    output_keys: list[str]  # sorted
    # Read from `sigdef` once (proto access is slow on the request path): alias -> declared dims
    # (-1 unknown) or None for unknown rank, and alias -> position in input_keys.
    input_dims: dict[str, list[int] | None] = dataclasses.field(default_factory=dict)
    input_index: dict[str, int] = dataclasses.field(default_factory=dict)
    # Fast call: the function's flat argument order and, per argument, (DataType, dims or None);
    # None when the function's inputs are not a plain set of named tensors.
    flat_order: list[str] | None = None
    flat_specs: list[tuple[int, tuple | None]] | None = None

    @property
    def method_name(self) -> str:
        return self.sigdef.method_name

    def __post_init__(self) -> None:
        self.input_index = {k: i for i, k in enumerate(self.input_keys)}
        for k, v in self.sigdef.inputs.items():
            ts = v.tensor_shape
            self.input_dims[k] = None if ts.unknown_rank else [d.size for d in ts.dim]
        self.flat_order, self.flat_specs = _flat_signature(self.fn)


def _flat_signature(fn):
    """The positional order in which `fn._call_flat` takes the keyword inputs, with each input's
    dtype and shape, so a call can skip TF's per-call argument binding; (None, None) if unsure."""
    try:
        args, kwargs = fn.structured_input_signature
        order = list(fn.function_type.parameters)
        if args or sorted(order) != sorted(kwargs) or len(fn.inputs) != len(order) + len(fn.captured_inputs):
            return None, None
        specs = []
        for k in order:
            spec = kwargs[k]
            if type(spec) is not tf.TensorSpec:
                return None, None
            dims = None if spec.shape.rank is None else tuple(spec.shape.as_list())
            specs.append((spec.dtype.as_datatype_enum, dims))
        return order, specs
    except Exception:  # not a restored ConcreteFunction of this shape: use the normal call
        return None, None


def _fits(arr: np.ndarray, spec: tuple[int, tuple | None]) -> bool:
    """What the signature's TensorSpec would accept unchanged (same dtype, compatible shape)."""
    dt = tensors.DT_OF.get(arr.dtype)
    if dt is None:
        dt = tensors.DT.DT_STRING if arr.dtype == object or arr.dtype.kind in "SU" else -1
    if dt != spec[0]:
        return False
    dims = spec[1]
    if dims is None:
        return True
    shape = arr.shape
    if len(shape) != len(dims):
        return False
    for w, g in zip(dims, shape, strict=True):
        if w is not None and w != g:
            return False
    return True


def load_error(exc: BaseException) -> ServingError:
    """A load failure as a status for GetModelStatus and logs."""
    import grpc

    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        from .errors import code_from_value

        return ServingError(code_from_value(exc.error_code), exc.message)
    if isinstance(exc, OSError | FileNotFoundError):
        return ServingError(grpc.StatusCode.NOT_FOUND, str(exc))
    return ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")


class Servable:
    def __init__(self, name: str, version: int, path: str, tags: list[str]):
        self.name = name
        self.version = version
        self.path = path
        self.tags = tags
        self.signatures: dict[str, Signature] = {}
        self.signature_def_map = meta_graph_pb2.MetaGraphDef().signature_def  # replaced on load
        self._loaded = None

    def load(self) -> None:
        saved = loader_impl.parse_saved_model(self.path)
        want = set(self.tags)
        metas = [m for m in saved.meta_graphs if set(m.meta_info_def.tags) == want]
        if not metas:
            found = [list(m.meta_info_def.tags) for m in saved.meta_graphs]
            raise ServingError(
                __import__("grpc").StatusCode.NOT_FOUND,
                f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(want))} }}. "
                f"Available tags: {found}")
        meta = metas[0]
        self._loaded = tf.saved_model.load(self.path, tags=self.tags)
        fns = self._loaded.signatures
        self.signature_def_map = meta.signature_def
        for key, sd in meta.signature_def.items():
            if key == INIT_OP_KEY or key not in fns:
                continue
            self.signatures[key] = Signature(
                name=key, sigdef=sd, fn=fns[key],
                input_keys=sorted(sd.inputs), input_dtypes={k: v.dtype for k, v in sd.inputs.items()},
                output_keys=sorted(sd.outputs))

    def signature(self, name: str) -> Signature:
        sig = self.signatures.get(name or "serving_default")
        if sig is None:
            raise failed_precondition(f'Serving signature key "{name or "serving_default"}" not found.')
        return sig

    def run(self, sig: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature; TF's complaints about the request's shapes/values are INVALID_ARGUMENT."""
        try:
            order = sig.flat_order
            if order is not None and len(inputs) == len(order) and all(
                    k in inputs and _fits(inputs[k], spec) for k, spec in zip(order, sig.flat_specs, strict=True)):
                # Inputs match the TensorSpecs exactly: what the keyword call would pass, minus
                # its binding and casting (a third of a small model's call time).
                fn = sig.fn
                out = fn._call_flat([_eager(inputs[k]) for k in order], fn.captured_inputs)
            else:
                out = sig.fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise invalid(e.message.split("\n")[0]) from None
        except tf.errors.OpError as e:
            from .errors import code_from_value

            raise ServingError(code_from_value(e.error_code), e.message.split("\n")[0]) from None
        except (TypeError, ValueError) as e:
            raise invalid(str(e).split("\n")[0]) from None
        return {k: v.numpy() for k, v in out.items()}

    # Warm-up: TF Serving's format is a TFRecord file of PredictionLog protos.
    def warmup(self, iterations: int) -> int:
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        from . import inference

        records = []
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records.append(raw)
            if len(records) > MAX_WARMUP_RECORDS:
                raise invalid(f"Number of warmup records exceeeds the maximum ({MAX_WARMUP_RECORDS}) at "
                              f"{path}")
        if not records:
            raise invalid(f"Warmup file has no records: {path}")
        t0 = time.monotonic()
        for raw in records:
            plog = prediction_log_pb2.PredictionLog.FromString(raw)
            kind = plog.WhichOneof("log_type")
            for _ in range(max(1, iterations)):
                if kind == "predict_log":
                    inference.predict_sync(self, plog.predict_log.request)
                elif kind == "classify_log":
                    inference.classify_sync(self, plog.classify_log.request)
                elif kind == "regress_log":
                    inference.regress_sync(self, plog.regress_log.request)
                elif kind == "multi_inference_log":
                    inference.multi_inference_sync(self, plog.multi_inference_log.request)
                else:
                    raise invalid(f"Unsupported log_type for warmup: {kind}")
        log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d. "
                 "Elapsed time (microseconds): %d.", path, len(records), int((time.monotonic() - t0) * 1e6))
        return len(records)
