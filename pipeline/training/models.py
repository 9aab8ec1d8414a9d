"""A dataset's Keras model, compiled for training (Keras 3; never tf.keras: importing
tensorflow_transform flips tf.keras to Keras 2). The architectures live with their datasets
(`tfgate.pipeline.<dataset>.model`)."""

from __future__ import annotations

import keras


def build(task, kind: str, tft_output, *, learning_rate=1e-3, weight_decay: float = 0.0) -> keras.Model:
    """`task`'s model of `kind`, compiled with its loss and metric (call inside the distribution
    strategy's scope). `learning_rate` is a float or a keras LearningRateSchedule; a `weight_decay`
    above 0 selects AdamW (decoupled weight decay) instead of Adam."""
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model = task.build_model(kind, tft_output)
    model.compile(optimizer=optimizer, loss=task.loss, metrics=[task.keras_metric()])
    return model
