"""Tiny exact SavedModels for tests/reliability: the benchmark's housing model, a fashion model, and a
`half` with every signature of tests.model_server.models (for fuzzing), so runs check answers exactly
and load in a second.

housing v: median_house_value = 1000 * version + median_income (NaN bedrooms allowed).
fashion v: probabilities = one-hot-ish softmax peaking at class (version % 10), shape [N, 10].
half v:    y = 0.5 x + version (make_half_plus with b=version; signatures incl. `slow`).
"""

from __future__ import annotations

from benchmarks.reliability.models import make_housing, save

__all__ = ["make_fashion", "make_half", "make_housing"]


def make_fashion(base, version: int) -> str:
    import tensorflow as tf

    class Fashion(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name="image")])
        def serve(self, image):
            n = tf.shape(image)[0]
            mean = tf.reduce_mean(tf.cast(image, tf.float32), axis=[1, 2]) / 255.0
            logits = 4.0 * tf.one_hot(tf.fill([n], version % 10), 10) + mean[:, None]
            return {"probabilities": tf.nn.softmax(logits)}

    m = Fashion()
    return save(m, base, version, {"serving_default": m.serve})


def make_half(base, version: int) -> str:
    from tests.model_server.models import make_half_plus

    return make_half_plus(base, version, b=float(version))
