"""The housing model: Wide & Deep over the transformed features (Keras 3, never tf.keras)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgate.pipeline import housing

NUMERIC_INPUTS = housing.DENSE_FEATURES + [housing.MISSING_INDICATOR]
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

def to_model_inputs(features: dict) -> dict:
    """Transformed housing features → numeric [N, 12], location [N, 2] (z-scores), ocean_proximity [N, 1]."""
    numeric = tf.stack([tf.cast(features[name], tf.float32) for name in NUMERIC_INPUTS], axis=1)
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


def wide_deep(num_categories: int) -> keras.Model:
    """Wide & Deep: a linear part (z-scores, one-hot category, a weight per location-grid cell)
    beside an MLP on the z-scores, the location, the one-hot category and an embedding of each grid cell."""
    numeric = keras.Input(shape=(len(NUMERIC_INPUTS),), name="numeric")
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
