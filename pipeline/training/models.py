"""Keras 3 models (never tf.keras: importing tensorflow_transform flips tf.keras to Keras 2).

Each dataset has a `to_model_inputs` function, the one place where transformed features become
model inputs. Training (tf.data), evaluation and the exported signatures all call it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgate.pipeline import fashion, housing

HOUSING_NUMERIC = housing.DENSE_FEATURES + [housing.MISSING_INDICATOR]
LOCATION = ["longitude_z", "latitude_z"]
LABEL_CAP = 500_001.0 / housing.LABEL_SCALE
# Grids over the location z-scores (California fits in ±2.5): fine cells of 0.2 standard deviations
# (~0.4 degrees) learn local prices, coarse cells of 0.5 share them where data is thin, and TILINGS
# grids of 0.1 (~0.2 degrees), each shifted by a further fifth of a cell, together tell apart
# neighbourhoods a few km across (tile coding: a point's cells overlap differently with each neighbour's).
FINE_GRID = [round(-2.5 + 0.2 * i, 2) for i in range(26)]
COARSE_GRID = [round(-2.5 + 0.5 * i, 2) for i in range(11)]
TILE_STEP, TILINGS = 0.1, 4
TILE_GRIDS = [
    [round(-2.5 + TILE_STEP * (i - (t + 1) / (TILINGS + 1)), 3) for i in range(int(round(5 / TILE_STEP)) + 1)]
    for t in range(TILINGS)
]
MODEL_KINDS = {"housing": ("wide-deep",), "fashion": ("cnn", "mlp")}
DEFAULT_MODEL = {"housing": "wide-deep", "fashion": "cnn"}


def housing_inputs(features: dict) -> dict:
    """Transformed housing features → numeric [N, 12], location [N, 2] (z-scores), ocean_proximity [N, 1]."""
    numeric = tf.stack([tf.cast(features[name], tf.float32) for name in HOUSING_NUMERIC], axis=1)
    location = tf.stack([tf.cast(features[name], tf.float32) for name in LOCATION], axis=1)
    category = tf.reshape(tf.cast(features[housing.CATEGORY_INDEX], tf.int64), [-1, 1])
    return {"numeric": numeric, "location": location, "ocean_proximity": category}


class GridCell(keras.layers.Layer):
    """(longitude z, latitude z) → one cell index of a fixed grid: the wide part's location cross."""

    def __init__(self, boundaries, **kwargs):
        super().__init__(**kwargs)
        self.boundaries = [float(b) for b in boundaries]

    def call(self, location):
        bins = len(self.boundaries) + 1
        cells = keras.ops.digitize(location, self.boundaries)
        return keras.ops.expand_dims(cells[:, 0] * bins + cells[:, 1], -1)

    def get_config(self):
        return {**super().get_config(), "boundaries": self.boundaries}


def fashion_inputs(features: dict) -> dict:
    return {"image": tf.reshape(tf.cast(features[fashion.IMAGE_XF], tf.float32), [-1, 28, 28])}


def housing_wide_deep(num_categories: int) -> keras.Model:
    """Wide & Deep: a linear part (z-scores, one-hot category, a weight per location-grid cell)
    beside an MLP on the z-scores, the location, the one-hot category and an embedding of each grid cell."""
    numeric = keras.Input(shape=(len(HOUSING_NUMERIC),), name="numeric")
    location = keras.Input(shape=(len(LOCATION),), name="location")
    category = keras.Input(shape=(1,), dtype="int64", name="ocean_proximity")
    one_hot = keras.layers.CategoryEncoding(num_tokens=num_categories, output_mode="one_hot")(category)
    cell_weights, cell_vectors = [], []
    grids = [("fine", FINE_GRID), ("coarse", COARSE_GRID), *((f"tile{t}", g) for t, g in enumerate(TILE_GRIDS))]
    for name, grid in grids:
        cell = GridCell(grid, name=f"{name}_cell")(location)
        cells = (len(grid) + 1) ** 2
        weight = keras.layers.Embedding(cells, 1, name=f"{name}_cell_weight")(cell)
        vector = keras.layers.Embedding(cells, 8, name=f"{name}_cell_embedding")(cell)
        cell_weights.append(keras.layers.Flatten()(weight))
        cell_vectors.append(keras.layers.Flatten()(vector))
    # Counts such as rooms and population are heavy-tailed (z-scores up to ~30): asinh tames the tail.
    squashed = keras.layers.Activation(keras.ops.arcsinh, name="asinh")(numeric)
    wide = keras.layers.Concatenate(name="wide")([numeric, squashed, one_hot, *cell_weights])
    deep = keras.layers.Concatenate()([numeric, squashed, location, one_hot, *cell_vectors])
    for units in (128, 64, 32):
        deep = keras.layers.Dense(units, activation="relu")(deep)
        deep = keras.layers.Dropout(0.1)(deep)
    merged = keras.layers.Concatenate(name="wide_and_deep")([wide, deep])
    value = keras.layers.Dense(1)(merged)
    # The census caps values at $500,001, so no true label lies above it: neither should a prediction.
    value = keras.layers.Activation(lambda v: keras.ops.minimum(v, LABEL_CAP), name="value")(value)
    inputs = {"numeric": numeric, "location": location, "ocean_proximity": category}
    return keras.Model(inputs, value, name="housing_wide_deep")


def fashion_cnn() -> keras.Model:
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


def fashion_mlp() -> keras.Model:
    image = keras.Input(shape=(28, 28), name="image")
    x = keras.layers.Flatten()(image)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    probabilities = keras.layers.Dense(len(fashion.CLASS_NAMES), activation="softmax", name="probabilities")(x)
    return keras.Model({"image": image}, probabilities, name="fashion_mlp")


def fashion_loss(labels, probabilities):
    """Per-example cross-entropy of the true class."""
    return keras.losses.sparse_categorical_crossentropy(keras.ops.reshape(labels, [-1]), probabilities)


def housing_loss(labels, predictions):
    """Per-example squared error (the label in $100,000)."""
    labels = keras.ops.cast(keras.ops.reshape(labels, [-1]), "float32")
    return keras.ops.square(keras.ops.reshape(predictions, [-1]) - labels)


LOSSES = {"housing": housing_loss, "fashion": fashion_loss}


def build(dataset: str, kind: str, num_categories: int = 0, *, learning_rate=1e-3, weight_decay: float = 0.0):
    """A compiled model for `dataset` (call inside the distribution strategy's scope).

    `learning_rate` is a float or a keras LearningRateSchedule; a `weight_decay` above 0 selects AdamW
    (decoupled weight decay) instead of Adam.
    """
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    if dataset == "housing":
        model = housing_wide_deep(num_categories)
        metric = keras.metrics.RootMeanSquaredError(name="rmse")
    else:
        model = fashion_cnn() if kind == "cnn" else fashion_mlp()
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer, loss=LOSSES[dataset], metrics=[metric])
    return model
