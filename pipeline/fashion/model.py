"""The Fashion-MNIST models: a small CNN (the default) and an MLP (Keras 3, never tf.keras)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgate.pipeline import fashion


def to_model_inputs(features: dict) -> dict:
    return {"image": tf.reshape(tf.cast(features[fashion.IMAGE_XF], tf.float32), [-1, 28, 28])}


def cnn() -> keras.Model:
    """Two conv blocks (conv → batch norm → ReLU → max-pool), dropout, a dense layer, softmax.
    Batch norm steadies training on the small bundled subset, where runs otherwise vary by seed; its
    momentum of 0.9 (Keras: 0.99) lets the inference statistics settle within a short run too."""
    image = keras.Input(shape=(28, 28), name="image")
    x = keras.layers.Reshape((28, 28, 1))(image)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5)(x)
    probabilities = keras.layers.Dense(len(fashion.CLASS_NAMES), activation="softmax", name="probabilities")(x)
    return keras.Model({"image": image}, probabilities, name="fashion_cnn")


def mlp() -> keras.Model:
    image = keras.Input(shape=(28, 28), name="image")
    x = keras.layers.Flatten()(image)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    probabilities = keras.layers.Dense(len(fashion.CLASS_NAMES), activation="softmax", name="probabilities")(x)
    return keras.Model({"image": image}, probabilities, name="fashion_mlp")
