"""The tiny exact SavedModels the reliability runs serve: every answer can be checked against the version
that says it produced it, and each loads in a second.

half v:    y = 0.5 x + version; signatures `serving_default` (x) and `slow` (x, n: about max(n) matmuls of
           200x200 of busy work, so that the servers, not the load generator, are the bottleneck).
housing v: median_house_value = 1000 * version + median_income, on the housing serving signature
           (9 raw columns; NaN bedrooms allowed).
(tests/reliability/models.py builds a `half` with more signatures, for fuzzing, and a fashion model.)
"""

from __future__ import annotations

import os


def save(module, base, version: int, signatures) -> str:
    """Write `module` as version `version` under `base`, published atomically (the server never sees
    half a version)."""
    import tensorflow as tf

    final = os.path.join(base, str(version))
    tmp = os.path.join(base, f".tmp-{version}")
    tf.saved_model.save(module, tmp, signatures=signatures)
    os.rename(tmp, final)
    return final


def make_half(base, version: int) -> str:
    import tensorflow as tf

    class Half(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": 0.5 * x + float(version)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.int32, name="n")])
        def slow(self, x, n):
            m = tf.ones([200, 200]) / 200.0
            _, acc = tf.while_loop(lambda i, _: i < tf.reduce_max(n), lambda i, acc: (i + 1, tf.matmul(acc, m)),
                                   (0, m))
            return {"y": 0.5 * x + float(version) + 0.0 * tf.reduce_sum(acc)}

    m = Half()
    return save(m, base, version, {"serving_default": m.predict, "slow": m.slow})


def make_housing(base, version: int) -> str:
    import tensorflow as tf

    from tfgate.pipeline import housing

    spec = {n: tf.TensorSpec([None], tf.float32, name=n) for n in housing.NUMERIC_COLUMNS}
    spec[housing.CATEGORICAL_COLUMN] = tf.TensorSpec([None], tf.string, name=housing.CATEGORICAL_COLUMN)

    class Housing(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, f):
            return {"median_house_value": f["median_income"] + 1000.0 * version}

    m = Housing()
    return save(m, base, version, {"serving_default": m.serve})
