"""Training the Fashion-MNIST model: defaults, loss and metrics, plots, the exported signatures, warm-up."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfgate.pipeline import fashion
from tfgate.pipeline.fashion import model
from tfgate.pipeline.training import data, evaluate, export
from tfgate.pipeline.training.task import Defaults, Task


class FashionServing(export.ServingModule):
    """serving_default: uint8 images [N, 28, 28] → probabilities, the top class (id and name) and every
    class name (`all_classes`, [N, 10]: callers read the names from the model, not from a list of their
    own); classify: serialized tf.Examples of the raw image bytes → classes and scores."""

    def __init__(self, keras_model, tft_output):
        super().__init__(keras_model, tft_output, fashion.LABEL)
        self.class_names = tf.constant(fashion.CLASS_NAMES)

    def _probabilities(self, raw: dict) -> tf.Tensor:
        return self.model(model.to_model_inputs(self.transform(raw)), training=False)

    def _names_per_row(self, rows: tf.Tensor) -> tf.Tensor:
        return tf.tile(self.class_names[tf.newaxis, :], [tf.shape(rows)[0], 1])

    def signatures(self) -> dict:
        def serve(image):
            # The same raw bytes the pipeline stored, so uint8 images go through the same transform.
            probabilities = self._probabilities({fashion.IMAGE: fashion.pixels_to_raw_bytes(image)})
            class_ids = tf.argmax(probabilities, axis=1, output_type=tf.int64)
            return {
                "probabilities": probabilities,
                "class_ids": class_ids,
                "classes": tf.gather(self.class_names, class_ids),
                "all_classes": self._names_per_row(probabilities),
            }

        def classify(inputs):
            scores = self._probabilities(tf.io.parse_example(inputs, self._raw_spec))
            return {"classes": self._names_per_row(scores), "scores": scores}

        self.serve = tf.function(serve, input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name="image")])
        self.classify = tf.function(classify, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        return {
            "serving_default": self.serve.get_concrete_function(),
            "classify": self.classify.get_concrete_function(),
        }


class FashionTask(Task):
    name = fashion.NAME
    label_key = fashion.LABEL_XF
    required_features = (fashion.IMAGE_XF, fashion.LABEL_XF)
    model_kinds = ("cnn", "mlp")
    metric = "accuracy"
    report_metrics = (("accuracy", "accuracy"),)
    defaults = Defaults(epochs=40, batch_size=64, patience=10, learning_rate=1e-3, weight_decay=1e-4, augment=True)

    def to_model_inputs(self, features: dict) -> dict:
        return model.to_model_inputs(features)

    def augmentation(self):
        return data.shift_and_flip(fashion.IMAGE_XF, max_shift=2)

    def build_model(self, kind: str, tft_output):
        return model.cnn() if kind == "cnn" else model.mlp()

    def loss(self, labels, probabilities):
        """Per-example cross-entropy of the true class."""
        import keras

        return keras.losses.sparse_categorical_crossentropy(keras.ops.reshape(labels, [-1]), probabilities)

    def keras_metric(self):
        import keras

        return keras.metrics.SparseCategoricalAccuracy(name=self.metric)

    def batch_hits(self, labels, probabilities):
        hits = tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int64), tf.cast(labels, tf.int64))
        return tf.reduce_sum(tf.cast(hits, tf.float32))

    def test_metrics(self, outputs, labels, features: dict) -> tuple[dict, dict]:
        metrics = evaluate.classification_metrics(outputs, labels, fashion.CLASS_NAMES)
        images = np.round(features[fashion.IMAGE_XF][:3] * 255.0).astype(np.uint8)  # warm-up takes three
        return metrics, {"images": images}

    def table_rows(self, test: dict) -> list[tuple[str, str]]:
        rows = [("test accuracy", f"{test['accuracy']:.4f}"), ("test examples", f"{test['examples']:,}")]
        for name, scores in test["per_class"].items():
            rows.append((name, f"precision {scores['precision']:.3f} · recall {scores['recall']:.3f}"))
        return rows

    def plots(self, folder: str, test: dict, arrays: dict) -> list[str]:
        path = os.path.join(folder, "confusion_matrix.png")
        evaluate.plot_confusion(np.array(test["confusion_matrix"]), test["class_names"], path)
        return [path]

    def serving_module(self, keras_model, tft_output):
        return FashionServing(keras_model, tft_output)

    def warmup_logs(self, model_name: str, arrays: dict) -> list:
        """Predict on serving_default and Classify, batch sizes 1 and 3, on test images."""
        images = arrays.get("images")
        if images is None or len(images) == 0:
            images = np.zeros([3, 28, 28], np.uint8)
        images = images[:3].astype(np.uint8)
        logs = [export.predict_log(model_name, {fashion.IMAGE: batch}) for batch in (images[:1], images)]
        for batch in (images[:1], images):
            examples = [export.example({fashion.IMAGE: i.tobytes()}) for i in batch]
            logs.append(export.example_log(model_name, "classify", examples))
        return logs


FASHION = FashionTask()
