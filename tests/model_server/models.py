"""Small SavedModels made by the tests: y = 0.5 x + b in TF2 style and TF1 (SavedModelBuilder) style.

Signatures (TF2, `half_plus`): `serving_default` x float [N] -> y; `classify` (method
tensorflow/serving/classify) on serialized tf.Example with float feature x -> classes ["y","x"],
scores [[y, x]]; `regress` (tensorflow/serving/regress) -> outputs = y; `echo_bytes` s string [N] ->
s_bytes (the same bytes) and n_chars int64.
"""

from __future__ import annotations

import os
from pathlib import Path

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
