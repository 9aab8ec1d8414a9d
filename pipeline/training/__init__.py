"""Training and SavedModel export: Keras 3 on tf.data over the pipeline's TFRecords.

Heavy imports (TensorFlow, Keras, TF Transform) happen when `train` is first called, so importing
this package is cheap.
"""

from __future__ import annotations

from tfgate.pipeline.training.errors import TrainingInputError


def train(*args, **kwargs):
    """See pipeline.training.trainer.train."""
    from tfgate.pipeline.training import trainer

    return trainer.train(*args, **kwargs)


__all__ = ["TrainingInputError", "train"]
