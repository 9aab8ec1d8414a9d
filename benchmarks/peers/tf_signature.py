"""What each peer's own documentation does with a custom TensorFlow model, shared by the three peer files:
`tf.saved_model.load(path).signatures["serving_default"]`, called eagerly with tensors made from the request,
and the answer turned back into the peer's JSON. Runs in the peers' venvs: imports nothing from tfgate."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class Signature:
    """A SavedModel's serving_default signature and its input dtypes."""

    def __init__(self, path: str):
        self.module = tf.saved_model.load(path)  # kept: the signature needs its variables alive
        self.fn = self.module.signatures["serving_default"]
        self.dtypes = {name: spec.dtype for name, spec in self.fn.structured_input_signature[1].items()}

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {name: tf.constant(value, dtype=self.dtypes[name]) for name, value in inputs.items()}
        return {name: value.numpy() for name, value in self.fn(**tensors).items()}

    def from_instances(self, instances: list) -> dict[str, np.ndarray]:
        """TF Serving's row format: a list of rows, each a {input: value} object or, with one input, the value."""
        if instances and isinstance(instances[0], dict):
            return {name: np.array([row[name] for row in instances], dtype=self.dtypes[name].as_numpy_dtype)
                    for name in self.dtypes}
        (name,) = self.dtypes
        return {name: np.array(instances, dtype=self.dtypes[name].as_numpy_dtype)}


def to_predictions(outputs: dict[str, np.ndarray]) -> list:
    """TF Serving's row-format answer: one value per row with one output, else one {output: value} per row."""
    lists = {name: (np.char.decode(value.astype(np.bytes_)) if value.dtype == object else value).tolist()
             for name, value in outputs.items()}
    if len(lists) == 1:
        return next(iter(lists.values()))
    (rows,) = {len(v) for v in lists.values()}
    return [{name: values[i] for name, values in lists.items()} for i in range(rows)]
