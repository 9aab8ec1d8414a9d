"""Small SavedModels made by the tests: y = 0.5 x + b in TF2 style and TF1 (SavedModelBuilder) style.

Signatures (TF2, `half_plus`): `serving_default` x float [N] -> y; `classify` (method
tensorflow/serving/classify) on serialized tf.Example with float feature x -> classes ["y","x"],
scores [[y, x]]; `regress` (tensorflow/serving/regress) -> outputs = y; `echo_bytes` s string [N] ->
s_bytes (the same bytes) and n_chars int64.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


class _HalfPlus(tf.Module):
    def __init__(self, b: float):
        super().__init__()
        self.b = tf.Variable(b, dtype=tf.float32)

    def _y(self, x):
        return 0.5 * x + self.b

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self._y(x)}

    def _parse(self, inputs):
        return tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = self._parse(inputs)
        n = tf.shape(x)[0]
        classes = tf.tile(tf.constant([["y", "x"]]), [n, 1])
        return {"classes": classes, "scores": tf.stack([self._y(x), x], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._y(self._parse(inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    def echo_bytes(self, s):
        return {"s_bytes": s, "n_chars": tf.cast(tf.strings.length(s), tf.int64)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                  tf.TensorSpec([None], tf.float32, name="b")])
    def two_inputs(self, a, b):
        return {"sum": a + b, "diff": a - b}


    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.int32, name="n")])
    def slow(self, x, n):
        """Busy work for about max(n) x 200x200 matmuls: to observe deadlines, drains and full queues."""
        m = tf.ones([200, 200]) / 200.0

        def body(i, acc):
            return i + 1, tf.matmul(acc, m)

        _, acc = tf.while_loop(lambda i, _: i < tf.reduce_max(n), body, (0, m))
        return {"y": self._y(x) + 0.0 * tf.reduce_sum(acc)}


def _set_method_names(path: str, names: dict[str, str]) -> None:
    """TF2's saver writes every signature as predict; TF Serving's classify/regress want their own
    method names, so patch them into saved_model.pb."""
    sm = loader_impl.parse_saved_model(path)
    for key, method in names.items():
        sm.meta_graphs[0].signature_def[key].method_name = method
    Path(path, "saved_model.pb").write_bytes(sm.SerializeToString())


def write_warmup(path: str, xs: list[list[float]], model_name: str = "half_plus") -> None:
    extra = Path(path, "assets.extra")
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as w:
        for x in xs:
            req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name))
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(x, dtype=tf.float32))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            w.write(log.SerializeToString())


def make_half_plus(base: str | os.PathLike, version: int, b: float = 2.0, warmup: int = 0) -> str:
    """Write version `version` of y = 0.5 x + b under `base`, atomically (temp dir, then rename)."""
    m = _HalfPlus(b)
    final = os.path.join(base, str(version))
    tmp = os.path.join(base, f".tmp-{version}")
    tf.saved_model.save(m, tmp, signatures={
        "serving_default": m.predict, "classify": m.classify, "regress": m.regress,
        "echo_bytes": m.echo_bytes, "two_inputs": m.two_inputs, "slow": m.slow})
    _set_method_names(tmp, {"classify": CLASSIFY, "regress": REGRESS})
    if warmup:
        write_warmup(tmp, [[float(i)] for i in range(warmup)])
    os.rename(tmp, final)
    return final


def make_tf1_half_plus_two(base: str | os.PathLike, version: int = 1) -> str:
    """A TF1-style SavedModel like TF Serving's own half_plus_two test model (graph + Session,
    SavedModelBuilder, signature_def_utils), signatures serving_default, classify_x_to_y,
    regress_x_to_y."""
    v1 = tf.compat.v1
    path = os.path.join(base, str(version))
    with tf.Graph().as_default():
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        x_ex = v1.io.parse_example(serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})["x"]
        y_ex = tf.add(tf.multiply(a, x_ex), b, name="y_ex")
        x = v1.placeholder(tf.float32, [None], name="x")
        y = tf.add(tf.multiply(a, x), b, name="y")
        sdu = v1.saved_model.signature_def_utils
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.builder.SavedModelBuilder(path)
            builder.add_meta_graph_and_variables(
                sess, [v1.saved_model.tag_constants.SERVING],
                signature_def_map={
                    "serving_default": sdu.predict_signature_def({"x": x}, {"y": y}),
                    "classify_x_to_y": sdu.classification_signature_def(
                        serialized, classes=None, scores=y_ex),
                    "regress_x_to_y": sdu.regression_signature_def(serialized, y_ex),
                },
                main_op=None, strip_default_attrs=True)
            builder.save()
    return path


def make_tf1_unknown_shapes(base: str | os.PathLike, version: int = 1, c: float = 3.0) -> str:
    """y = 0.5 x + c as TF 1.0 wrote SavedModels (like TF Serving's saved_model_half_plus_three): a
    GraphDef of producer 17 whose placeholders carry an empty shape (read as "unknown" by graphs
    that old) and signature inputs that declare no shape. Signatures serving_default (x -> y),
    classify_x_to_y and regress_x_to_y (serialized tf.Example with float feature x)."""
    from tensorflow.core.framework import tensor_shape_pb2

    v1 = tf.compat.v1
    path = os.path.join(base, str(version))
    with tf.Graph().as_default():
        a = v1.Variable(0.5, name="a")
        cv = v1.Variable(c, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example")
        x_ex = v1.io.parse_example(serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})["x"]
        y_ex = tf.add(tf.multiply(a, x_ex), cv, name="y_ex")
        x = v1.placeholder(tf.float32, name="x")
        y = tf.add(tf.multiply(a, x), cv, name="y")
        sdu = v1.saved_model.signature_def_utils
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING], signature_def_map={
                "serving_default": sdu.predict_signature_def({"x": x}, {"y": y}),
                "classify_x_to_y": sdu.classification_signature_def(serialized, classes=None, scores=y_ex),
                "regress_x_to_y": sdu.regression_signature_def(serialized, y_ex),
            }, strip_default_attrs=True)
            builder.save()
    sm = loader_impl.parse_saved_model(path)
    meta = sm.meta_graphs[0]
    meta.graph_def.versions.producer = 17
    for node in meta.graph_def.node:
        if node.op == "Placeholder":
            node.attr["shape"].shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
            node.attr["_output_shapes"].list.shape[0].CopyFrom(tensor_shape_pb2.TensorShapeProto())
    for sd in meta.signature_def.values():
        for info in sd.inputs.values():
            info.ClearField("tensor_shape")
    Path(path, "saved_model.pb").write_bytes(sm.SerializeToString())
    return path


def make_trailing_one(base: str | os.PathLike, version: int = 1) -> str:
    """TF Serving's half_plus_two as Keras users export it: input x declared [?,1], y = 0.5 x + 2."""

    class _M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": 0.5 * x + 2.0}

    m = _M()
    path = os.path.join(base, str(version))
    tf.saved_model.save(m, path, signatures={"serving_default": m.predict})
    return path


def _keras_dense():
    import keras

    model = keras.Sequential([keras.Input((3,), name="features"), keras.layers.Dense(1, name="out")])
    model.layers[-1].set_weights([np.array([[1.0], [2.0], [3.0]], np.float32), np.array([0.5], np.float32)])
    return model


def make_keras_export(base: str | os.PathLike, version: int = 1) -> str:
    """A Keras 3 `model.export()` archive: y = x·[1,2,3] + 0.5 (signature keys from Keras)."""
    path = os.path.join(base, str(version))
    _keras_dense().export(path, verbose=False)
    return path


def make_keras_untracked(base: str | os.PathLike, version: int = 1, warmup: bool = False) -> str:
    """The pattern TF Serving cannot run: a tf.Module that holds a Keras 3 model and nothing else.
    TF2's loader serves it; a session (TF Serving, saved_model_cli) finds its variables unrestored."""
    model = _keras_dense()

    class _Holder(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
        def serve(self, features):
            return {"y": self.model(features)}

    m = _Holder()
    path = os.path.join(base, str(version))
    tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
    if warmup:
        extra = Path(path, "assets.extra")
        extra.mkdir()
        req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="untracked"))
        req.inputs["features"].CopyFrom(tf.make_tensor_proto(np.ones([1, 3], np.float32)))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
        with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as w:
            w.write(log.SerializeToString())
    return path
