"""SavedModel export: the TF Transform graph and the Keras model in one tf.Module, raw features in.

Every export is checked the way TF Serving will load it: through TensorFlow's session loader (restore
op, init ops, Session::Run), each warm-up record replayed through its signature and compared with the
TF2 path. An export that fails that check is never published.

The version directory is written under a hidden temporary name inside the model base path and
renamed into place only when complete (same filesystem, so the rename is atomic): a server polling
the base path never sees a half-written version.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, saved_model_pb2

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"
TMP_PREFIX = ".tmp-"
_VERSION_RE = re.compile(r"^[0-9]+$")

# --------------------------------------------------------------------------------------------
# Versions


def existing_versions(model_base_path: str) -> list[int]:
    if not tf.io.gfile.isdir(model_base_path):
        return []
    return sorted(int(n.rstrip("/")) for n in tf.io.gfile.listdir(model_base_path) if _VERSION_RE.match(n.rstrip("/")))


def next_version(model_base_path: str) -> int:
    versions = existing_versions(model_base_path)
    return (versions[-1] + 1) if versions else 1


def temp_dir_for(model_base_path: str, version: int) -> str:
    # Hidden and non-numeric: TF Serving (and our model server) ignore it while it is being written.
    return os.path.join(model_base_path, f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")


def publish(temp_dir: str, model_base_path: str, version: int) -> str:
    final = os.path.join(model_base_path, str(version))
    if tf.io.gfile.exists(final):
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise FileExistsError(f"version {version} appeared in {model_base_path} while training")
    os.rename(temp_dir, final)
    return final


# --------------------------------------------------------------------------------------------
# Serving module


def nan_to_sparse(values: tf.Tensor) -> tf.SparseTensor:
    """Float [N] with NaN = missing → the VarLen raw feature ([N, ≤1] sparse) the transform expects."""
    present = tf.logical_not(tf.math.is_nan(values))
    rows = tf.where(present)
    return tf.SparseTensor(
        indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
        values=tf.boolean_mask(values, present),
        dense_shape=tf.stack([tf.size(values, out_type=tf.int64), tf.constant(1, tf.int64)]),
    )


class ServingModule(tf.Module):
    """The transform layer and the Keras model, tracked so that the session loader restores them.

    Keras 3 wraps each tf.Variable in a keras.Variable. On export, the wrapper writes the inner
    variable into the graph (the handle the signatures read) and then registers a second, fresh
    tf.Variable for itself; the checkpoint's restore op fills that copy. TF2's object-graph loader
    rebinds captures and never notices, but a session (TF Serving, saved_model_cli) reads the
    inner handle, which nothing restored: "Could not find variable ...". Tracking the inner
    tf.Variables themselves gives them their own checkpoint entries, restored into the handles the
    graph reads.
    """

    def __init__(self, model, tft_output, label: str):
        super().__init__()
        self.model = model
        self.model_variables = [v.value for v in model.variables]
        self.transform = tft_output.transform_features_layer()
        spec = tft_output.raw_feature_spec()
        spec.pop(label, None)
        self._raw_spec = spec


METHOD_NAMES = {"regress": REGRESS_METHOD, "classify": CLASSIFY_METHOD}


def set_method_names(export_dir: str) -> None:
    """tf.saved_model.save marks every signature as Predict; TF Serving needs regress/classify names."""
    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        proto.ParseFromString(handle.read())
    for meta_graph in proto.meta_graphs:
        for key, method in METHOD_NAMES.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    with open(path, "wb") as handle:
        handle.write(proto.SerializeToString(deterministic=True))
    _refresh_fingerprint(export_dir)


def _refresh_fingerprint(export_dir: str) -> None:
    # fingerprint.pb holds a checksum of saved_model.pb; recompute it so it matches the edited file.
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

        data = fingerprinting.CreateFingerprintDef(export_dir)
    except Exception:  # private API: if it ever moves, an outdated fingerprint is only metadata
        return
    with open(os.path.join(export_dir, "fingerprint.pb"), "wb") as handle:
        handle.write(data)


# --------------------------------------------------------------------------------------------
# Warm-up records (TF Serving reads assets.extra/tf_serving_warmup_requests at load)


def example(features: dict) -> tf.train.Example:
    """A tf.Example of raw features: floats (NaN = missing: left out), str or bytes values."""
    feature = {}
    for name, value in features.items():
        if isinstance(value, str | bytes):
            raw = value.encode() if isinstance(value, str) else value
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        elif not np.isnan(value):  # a missing VarLen value is simply absent
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def predict_log(model_name: str, inputs: dict[str, np.ndarray], signature: str = "serving_default"):
    """A warm-up record: Predict on `signature` with these input arrays."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def example_log(model_name: str, method: str, examples: list, signature: str | None = None):
    """A warm-up record: Regress or Classify (`method`) on tf.Examples, signature `method` by default."""
    from tensorflow_serving.apis import classification_pb2, prediction_log_pb2, regression_pb2

    kinds = {"regress": (regression_pb2.RegressionRequest, "regress_log", prediction_log_pb2.RegressLog),
             "classify": (classification_pb2.ClassificationRequest, "classify_log", prediction_log_pb2.ClassifyLog)}
    request_type, field, log_type = kinds[method]
    request = request_type()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature or method
    request.input.example_list.examples.extend(examples)
    return prediction_log_pb2.PredictionLog(**{field: log_type(request=request)})


def write_warmup(export_dir: str, logs: list) -> str:
    folder = os.path.join(export_dir, ASSETS_EXTRA)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


class SessionLoaderError(RuntimeError):
    """The SavedModel does not run, or runs differently, under TF Serving's loading path."""


def _request_feeds(log) -> tuple[str, dict[str, np.ndarray]]:
    """A warm-up record's signature key and its inputs, as TF Serving would feed them."""
    kind = log.WhichOneof("log_type")
    request = getattr(log, kind).request
    key = request.model_spec.signature_name or "serving_default"
    if kind == "predict_log":
        return key, {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
    examples = np.array([e.SerializeToString() for e in request.input.example_list.examples], dtype=object)
    return key, {"inputs": examples}


def check_session_loader(export_dir: str, signatures: dict, warmup: list, rtol: float = 1e-6) -> int:
    """Load export_dir as TF Serving does and replay every warm-up record through its signature.

    Each output must equal the TF2 function's within `rtol` of its largest magnitude (float32
    rounding: the session runs its own graph optimizations). Returns the number of records replayed.
    """
    from tensorflow.python.saved_model import loader_impl

    records = []  # (key, feeds, TF2 outputs), computed eagerly before entering the session's graph
    for log in warmup:
        key, feeds = _request_feeds(log)
        want = signatures[key](**{a: tf.constant(v) for a, v in feeds.items()})
        records.append((key, feeds, {n: t.numpy() for n, t in want.items()}))
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        try:
            meta = loader_impl.SavedModelLoader(export_dir).load(session, [tf.saved_model.SERVING])
        except tf.errors.OpError as e:
            raise SessionLoaderError(f"{export_dir} does not load under the session loader: {e.message}") from None
        for key, feeds, want in records:
            sigdef = meta.signature_def[key]
            names = sorted(sigdef.outputs)
            aliases = sorted(feeds)
            options = config_pb2.CallableOptions(
                feed=[sigdef.inputs[a].name for a in aliases], fetch=[sigdef.outputs[n].name for n in names]
            )
            try:  # the C++ callable, as TF Serving runs it (no Python-side shape checks)
                got = session._make_callable_from_options(options)(*[feeds[a] for a in aliases])
            except tf.errors.OpError as e:
                raise SessionLoaderError(f"signature {key} fails under the session loader: {e.message}") from None
            for name, value in zip(names, got, strict=True):
                _check_equal(f"{key}/{name}", value, want[name], rtol)
    return len(records)


def _check_equal(what: str, got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    if got.shape != want.shape or got.dtype != want.dtype:
        raise SessionLoaderError(
            f"{what}: session gives {got.dtype}{list(got.shape)}, TF2 {want.dtype}{list(want.shape)}"
        )
    if want.dtype.kind in "fc":
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if not np.allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True):
            worst = float(np.max(np.abs(got - want)))
            raise SessionLoaderError(f"{what}: session and TF2 outputs differ by up to {worst:g} (scale {scale:g})")
    elif not np.array_equal(got, want):
        raise SessionLoaderError(f"{what}: session and TF2 outputs differ")


def save(task, model, tft_output, export_dir: str, warmup: list) -> None:
    """Write `task`'s complete SavedModel (signatures, method names, warm-up) into export_dir and check
    that every warm-up record runs under the session loader exactly as on the TF2 path."""
    module = task.serving_module(model, tft_output)
    signatures = module.signatures()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    set_method_names(export_dir)
    write_warmup(export_dir, warmup)
    check_session_loader(export_dir, signatures, warmup)
