"""TF Serving's `half_plus_two` test model, rebuilt: y = 0.5 x + 2, input `x` [?, 1] float32, output `y`,
signature `serving_default`. Tiny on purpose: a server's own cost per request is all that shows."""

from __future__ import annotations

from pathlib import Path


def make_half_plus_two(base: str | Path, version: int = 1) -> Path:
    """Write version `version` under `base` (a model base path) unless it is there; returns its folder."""
    import tensorflow as tf

    path = Path(base) / str(version)
    if (path / "saved_model.pb").exists():
        return path

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 0.5 * x + 2.0}

    module = HalfPlusTwo()
    tmp = path.with_name(f".tmp-{version}")
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    tmp.rename(path)  # the server never sees half a version
    return path
