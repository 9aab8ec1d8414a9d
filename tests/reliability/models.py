"""Tiny exact SavedModels with the housing and fashion serving signatures (and half_plus, from
tests.model_server.models), so reliability runs check answers exactly and load in a second.

housing v: median_house_value = 1000 * version + median_income (NaN bedrooms allowed).
fashion v: probabilities = one-hot-ish softmax peaking at class (version % 10), shape [N, 10].
half v:    y = 0.5 x + version (make_half_plus with b=version; signatures incl. `slow`).
"""

from __future__ import annotations

import os

HOUSING_FLOATS = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
                  "population", "households", "median_income"]


def _save(module, base, version: int, signatures) -> str:
    import tensorflow as tf

    final = os.path.join(base, str(version))
    tmp = os.path.join(base, f".tmp-{version}")
    tf.saved_model.save(module, tmp, signatures=signatures)
    os.rename(tmp, final)  # publish atomically: the server never sees half a version
    return final


def make_housing(base, version: int) -> str:
    import tensorflow as tf

    spec = {n: tf.TensorSpec([None], tf.float32, name=n) for n in HOUSING_FLOATS}
    spec["ocean_proximity"] = tf.TensorSpec([None], tf.string, name="ocean_proximity")

    class Housing(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, f):
            return {"median_house_value": f["median_income"] + 1000.0 * version}

    m = Housing()
    return _save(m, base, version, {"serving_default": m.serve})


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
    return _save(m, base, version, {"serving_default": m.serve})


def make_half(base, version: int) -> str:
    from tests.model_server.models import make_half_plus

    return make_half_plus(base, version, b=float(version))

