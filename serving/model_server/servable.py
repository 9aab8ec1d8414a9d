"""One loaded SavedModel version, loaded and run the way TF Serving does it.

TensorFlow's session loader (the path of TF Serving's C++ `LoadSavedModel`, `saved_model_cli run` and
`tf.compat.v1.saved_model.loader.load`): import the MetaGraph for the tags, run the saver's restore
op, feed the asset paths to the init (main) op and run it. Requests run in that Session through
callables built from the SignatureDefs' tensor names. A SavedModel that TF Serving cannot load or
run fails here too, with TensorFlow's own status and message.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.saved_model import loader_impl

from ..status import ServingError, code_from_value, failed_precondition, invalid

log = logging.getLogger("tfgate.model_server")

INIT_OP_KEY = "__saved_model_init_op"
MAX_CALLABLES = 64  # per signature: one per distinct output filter, then fetch all and pick


def session_config(intra_op: int = 0, inter_op: int = 0, session_parallelism: int = 0,
                   gpu_memory_fraction: float = 0.0) -> config_pb2.ConfigProto:
    """The ConfigProto every version's Session gets, from TF Serving's flags of the same names:
    the specific thread flags win over --tensorflow_session_parallelism; 0 leaves TF's default.
    Ops land on a visible GPU as in TF Serving's GPU build; the fraction caps its memory."""
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=intra_op or session_parallelism,
        inter_op_parallelism_threads=inter_op or session_parallelism)
    if gpu_memory_fraction > 0:
        config.gpu_options.per_process_gpu_memory_fraction = gpu_memory_fraction
    return config


@dataclasses.dataclass
class Signature:
    name: str
    sigdef: meta_graph_pb2.SignatureDef
    input_keys: list[str]  # sorted
    input_dtypes: dict[str, int]
    output_keys: list[str]  # sorted
    input_index: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def method_name(self) -> str:
        return self.sigdef.method_name

    def __post_init__(self) -> None:
        self.input_index = {k: i for i, k in enumerate(self.input_keys)}


def load_error(exc: BaseException) -> ServingError:
    """A load failure as a status for GetModelStatus and logs."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        return ServingError(code_from_value(exc.error_code), exc.message)
    if isinstance(exc, OSError | FileNotFoundError):
        return ServingError(grpc.StatusCode.NOT_FOUND, str(exc))
    return ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")


def _tensor_name(info: meta_graph_pb2.TensorInfo, sig: str, alias: str) -> str:
    if info.WhichOneof("encoding") != "name":
        # TF Serving's Predict feeds and fetches dense tensors by name only.
        raise invalid(f"signature {sig}: tensor {alias} is not a dense tensor (encoding "
                      f"{info.WhichOneof('encoding')}); only named tensors can be fed or fetched")
    return info.name


class Servable:
    def __init__(self, name: str, version: int, path: str, tags: list[str],
                 config: config_pb2.ConfigProto | None = None):
        self.name = name
        self.version = version
        self.path = path
        self.tags = tags
        self.config = config
        self.signatures: dict[str, Signature] = {}
        self.signature_def_map = meta_graph_pb2.MetaGraphDef().signature_def  # replaced on load
        self._session: tf.compat.v1.Session | None = None
        self._callables: dict[tuple[str, tuple[str, ...]], object] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        saved = loader_impl.parse_saved_model(self.path)
        want = set(self.tags)
        if not any(set(m.meta_info_def.tags) == want for m in saved.meta_graphs):
            found = [list(m.meta_info_def.tags) for m in saved.meta_graphs]
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(want))} }}. "
                f"Available tags: {found}")
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=self.config)
        try:
            with graph.as_default():
                meta = loader_impl.SavedModelLoader(self.path).load(session, self.tags)
        except BaseException:
            session.close()
            raise
        graph.finalize()  # nothing is added after load: requests only run what is there
        self._session = session
        self.signature_def_map = meta.signature_def
        for key, sd in meta.signature_def.items():
            if key == INIT_OP_KEY:
                continue
            self.signatures[key] = Signature(
                name=key, sigdef=sd, input_keys=sorted(sd.inputs),
                input_dtypes={k: v.dtype for k, v in sd.inputs.items()}, output_keys=sorted(sd.outputs))

    def close(self) -> None:
        session, self._session = self._session, None
        self._callables.clear()
        if session is not None:
            session.close()

    def signature(self, name: str) -> Signature:
        sig = self.signatures.get(name or "serving_default")
        if sig is None:
            raise failed_precondition(f'Serving signature key "{name or "serving_default"}" not found.')
        return sig

    def _callable(self, sig: Signature, outputs: tuple[str, ...]):
        """(callable, the aliases it fetches): one per signature and output filter, up to
        MAX_CALLABLES filters per signature; past that, the all-outputs callable."""
        key = (sig.name, outputs)
        fn = self._callables.get(key)
        if fn is not None:
            return fn, outputs
        with self._lock:
            fn = self._callables.get(key)
            if fn is None:
                if self._session is None:
                    raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{self.name} version {self.version} is unloaded")
                filters = sum(k[0] == sig.name for k in self._callables)  # under the lock: no insert meanwhile
                if outputs != tuple(sig.output_keys) and filters >= MAX_CALLABLES:
                    outputs = tuple(sig.output_keys)
                    key = (sig.name, outputs)
                    fn = self._callables.get(key)
            if fn is None:
                options = config_pb2.CallableOptions(
                    feed=[_tensor_name(sig.sigdef.inputs[k], sig.name, k) for k in sig.input_keys],
                    fetch=[_tensor_name(sig.sigdef.outputs[k], sig.name, k) for k in outputs])
                # The C++ callable, as TF Serving's Session::Run: the graph decides which shapes it
                # takes (Python's Session.run would refuse a feed that differs from the placeholder).
                fn = self._session._make_callable_from_options(options)
                self._callables[key] = fn
        return fn, outputs

    def run(self, sig: Signature, inputs: dict[str, np.ndarray],
            outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the signature on inputs keyed by alias; `outputs` picks the fetched aliases (all by
        default). TensorFlow's complaints come back with its status code and message."""
        wanted = tuple(outputs) if outputs else tuple(sig.output_keys)
        fn, names = self._callable(sig, wanted)
        try:
            values = fn(*[inputs[k] for k in sig.input_keys])
        except tf.errors.OpError as e:
            raise ServingError(code_from_value(e.error_code), e.message.rstrip()) from None
        except (TypeError, ValueError) as e:
            raise invalid(str(e).split("\n")[0]) from None
        out = dict(zip(names, values, strict=True))
        return out if names == wanted else {k: out[k] for k in wanted}
