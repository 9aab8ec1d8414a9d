"""No training/serving skew: raw test rows through the exported serving_default agree with the
pipeline's transformed test rows through the in-memory Keras model, within 1e-4."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from tests.training.helpers import fashion_raw_test_images, housing_raw_test_rows
from tfgate.pipeline import fashion, housing
from tfgate.pipeline.housing import model as housing_model
from tfgate.pipeline.training import data

# Columns that identify a housing row; each *_z is an increasing function of its raw column, so
# sorting raw rows and transformed rows by the same columns puts them in the same order.
KEY_COLUMNS = ["longitude", "latitude", "housing_median_age", "total_rooms", "population", "households",
               "median_income"]  # fmt: skip


def _keras_outputs(model, inputs: dict) -> np.ndarray:
    return np.concatenate(
        [model({k: v[i : i + 1024] for k, v in inputs.items()}, training=False).numpy()
         for i in range(0, len(next(iter(inputs.values()))), 1024)]
    )  # fmt: skip


def test_housing_no_skew(housing_pipeline_dir, housing_training):
    raw = housing_raw_test_rows()
    spec = tft.TFTransformOutput(str(housing_pipeline_dir)).transformed_feature_spec()
    transformed = data.load_split(str(housing_pipeline_dir), "test", spec)
    transformed.pop(housing.LABEL_XF)
    assert len(raw["longitude"]) == len(transformed["longitude_z"]) > 1000

    raw_order = np.lexsort([raw[c] for c in reversed(KEY_COLUMNS)])
    xf_order = np.lexsort([transformed[f"{c}_z"] for c in reversed(KEY_COLUMNS)])
    raw = {k: v[raw_order] for k, v in raw.items()}
    transformed = {k: v[xf_order] for k, v in transformed.items()}
    # The alignment is right: missing bedrooms line up with the pipeline's missing indicator.
    np.testing.assert_array_equal(np.isnan(raw["total_bedrooms"]), transformed["total_bedrooms_missing"] == 1)

    loaded = tf.saved_model.load(housing_training.path)
    serve = loaded.signatures["serving_default"]
    served = serve(**{k: tf.constant(v) for k, v in raw.items()})["median_house_value"].numpy()
    inputs = {k: v.numpy() for k, v in housing_model.to_model_inputs(transformed).items()}
    direct = _keras_outputs(housing_training.model, inputs).reshape(-1)
    np.testing.assert_allclose(served / housing.LABEL_SCALE, direct, atol=1e-4, rtol=0)


def test_fashion_no_skew(fashion_pipeline_dir, fashion_training):
    raw = fashion_raw_test_images()
    spec = tft.TFTransformOutput(str(fashion_pipeline_dir)).transformed_feature_spec()
    transformed = data.load_split(str(fashion_pipeline_dir), "test", spec)
    assert len(raw) == len(transformed[fashion.IMAGE_XF])

    # Pair rows by their pixels (the transform is /255, so rounding back recovers the raw bytes).
    position = {image.tobytes(): i for i, image in enumerate(raw)}
    recovered = np.round(transformed[fashion.IMAGE_XF] * 255.0).astype(np.uint8)
    order = np.array([position[image.tobytes()] for image in recovered])

    loaded = tf.saved_model.load(fashion_training.path)
    served = loaded.signatures["serving_default"](image=tf.constant(raw[order]))["probabilities"].numpy()
    direct = _keras_outputs(fashion_training.model, {"image": transformed[fashion.IMAGE_XF]})
    np.testing.assert_allclose(served, direct, atol=1e-4, rtol=0)
