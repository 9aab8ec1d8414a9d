"""Each preprocessing_fn on its own: analyze + transform on tiny inputs whose answers are known."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from tfgate.pipeline import beam_pipeline, fashion, housing


def analyze_and_transform(preprocessing_fn, feature_spec: dict, rows: list[dict], tmp_path) -> list[dict]:
    """Run the real TFT analyze + transform with Beam's local runner; return transformed rows."""
    metadata = tft.DatasetMetadata.from_feature_spec(feature_spec)
    out = tmp_path / "rows"
    with beam.Pipeline(options=beam_pipeline.pipeline_options([])) as p:
        with tft_beam.Context(temp_dir=str(tmp_path / "tft")):
            data = p | beam.Create(rows, reshuffle=False)
            (transformed, _), _ = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
            _ = (
                transformed
                | beam.Map(lambda row: json.dumps({k: np.asarray(v).tolist() for k, v in row.items()}))
                | beam.io.WriteToText(str(out), shard_name_template="")
            )
    return [json.loads(line) for line in out.read_text().splitlines()]


HOUSING_ROWS = [
    # longitude, latitude, age, rooms, bedrooms (None = missing), population, households, income, value, ocean
    (-122.0, 37.0, 10.0, 100.0, 10.0, 300.0, 50.0, 2.0, 100000.0, "INLAND"),
    (-121.0, 38.0, 20.0, 200.0, None, 400.0, 80.0, 4.0, 200000.0, "INLAND"),
    (-120.0, 39.0, 30.0, 300.0, 30.0, 500.0, 150.0, 6.0, 300000.0, "NEAR BAY"),
    (-119.0, 40.0, 40.0, 400.0, 20.0, 600.0, 100.0, 8.0, 400000.0, "INLAND"),
]


def housing_instance(row) -> dict:
    instance = dict(zip(housing.CSV_COLUMNS[:9], row[:9], strict=True))
    instance[housing.CATEGORICAL_COLUMN] = row[9].encode()
    bedrooms = instance.pop("total_bedrooms")
    instance["total_bedrooms"] = [] if bedrooms is None else [bedrooms]
    return instance


@pytest.fixture(scope="module")
def housing_transformed(tmp_path_factory):
    rows = [housing_instance(r) for r in HOUSING_ROWS]
    return analyze_and_transform(
        housing.preprocessing_fn, housing.raw_feature_spec(), rows, tmp_path_factory.mktemp("housing-unit")
    )


def z(values):
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean()) / values.std()  # population std, as tft.scale_to_z_score


def column(rows, name):
    return np.array([r[name] for r in rows], dtype=np.float64)


def test_housing_numeric_columns_are_exact_z_scores(housing_transformed):
    for index, name in enumerate(housing.NUMERIC_COLUMNS):
        if name == "total_bedrooms":
            continue
        expected = z([r[index] for r in HOUSING_ROWS])
        np.testing.assert_allclose(column(housing_transformed, f"{name}_z"), expected, rtol=1e-5, atol=1e-6)


def test_housing_missing_bedrooms_imputed_with_mean_of_present_values(housing_transformed):
    # Present values 10, 30, 20: mean 20, population variance 200/3. The missing row gets the mean,
    # whose z-score is exactly 0; the statistics are not pulled towards the imputed value.
    std = np.sqrt(200.0 / 3.0)
    np.testing.assert_allclose(
        column(housing_transformed, "total_bedrooms_z"), [-10 / std, 0.0, 10 / std, 0.0], atol=1e-6
    )
    assert column(housing_transformed, housing.MISSING_INDICATOR).tolist() == [0.0, 1.0, 0.0, 0.0]
    # bedrooms_per_room uses the imputed 20 for the missing row: 10/100, 20/200, 30/300, 20/400.
    np.testing.assert_allclose(
        column(housing_transformed, "bedrooms_per_room_z"), z([0.1, 0.1, 0.1, 0.05]), atol=1e-5
    )


def test_housing_ratio_features(housing_transformed):
    np.testing.assert_allclose(
        column(housing_transformed, "rooms_per_household_z"), z([2.0, 2.5, 2.0, 4.0]), atol=1e-5
    )
    np.testing.assert_allclose(
        column(housing_transformed, "population_per_household_z"), z([6.0, 5.0, 500 / 150, 6.0]), atol=1e-5
    )


def test_housing_vocabulary_and_label(housing_transformed):
    # Most frequent first: INLAND (3) → 0, NEAR BAY (1) → 1.
    assert [r[housing.CATEGORY_INDEX] for r in housing_transformed] == [0, 0, 1, 0]
    np.testing.assert_allclose(column(housing_transformed, housing.LABEL_XF), [1.0, 2.0, 3.0, 4.0], atol=1e-6)


def test_housing_unknown_category_goes_to_oov_bucket(tmp_path):
    rows = [housing_instance(r) for r in HOUSING_ROWS]
    transform_dir = tmp_path / "tft_out"
    metadata = tft.DatasetMetadata.from_feature_spec(housing.raw_feature_spec())
    with beam.Pipeline(options=beam_pipeline.pipeline_options([])) as p:
        with tft_beam.Context(temp_dir=str(tmp_path / "tft")):
            transform_fn = (p | beam.Create(rows), metadata) | tft_beam.AnalyzeDataset(housing.preprocessing_fn)
            _ = transform_fn | tft_beam.WriteTransformFn(str(transform_dir))
    layer = tft.TFTransformOutput(str(transform_dir)).transform_features_layer()
    raw = {name: tf.constant([1.0]) for name in housing.NUMERIC_COLUMNS if name != "total_bedrooms"}
    raw["total_bedrooms"] = tf.sparse.from_dense(tf.constant([[5.0]]))
    raw[housing.CATEGORICAL_COLUMN] = tf.constant([b"ON THE MOON"])
    out = layer(raw)
    assert int(out[housing.CATEGORY_INDEX][0]) == 2  # vocabulary of 2 + the one OOV bucket


def test_fashion_pixels_scaled_to_unit_interval(tmp_path):
    image = bytes(range(256)) * 3 + bytes(784 - 768)
    rows = [{fashion.IMAGE: image, fashion.LABEL: 7}, {fashion.IMAGE: bytes([255]) * 784, fashion.LABEL: 0}]
    out = analyze_and_transform(fashion.preprocessing_fn, fashion.raw_feature_spec(), rows, tmp_path)
    first = np.array(out[0][fashion.IMAGE_XF], dtype=np.float32)
    assert first.shape == (28, 28)
    expected = np.frombuffer(image, dtype=np.uint8).reshape(28, 28).astype(np.float32) / 255.0
    np.testing.assert_allclose(first, expected, atol=1e-7)
    assert np.all(np.array(out[1][fashion.IMAGE_XF]) == 1.0)
    assert [r[fashion.LABEL_XF] for r in out] == [7, 0]


def test_pixels_to_raw_bytes_inverts_decode_raw():
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    raw = fashion.pixels_to_raw_bytes(tf.constant(pixels)).numpy()
    assert [bytes(r) for r in raw] == [p.tobytes() for p in pixels]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (["1"] * 9, "expected 10 columns, found 9"),
        (["-122", "37", "x", "1", "1", "1", "1", "1", "100000", "INLAND"], "non-numeric value for housing_median_age"),
        (["-122", "37", "1", "1", "1", "1", "1", "1", "", "INLAND"], "missing required value for median_house_value"),
        (["-122", "37", "1", "1", "1", "1", "1", "1", "-5", "INLAND"], "median_house_value out of range"),
        (["-122", "37", "1", "1", "1", "1", "1", "nan", "100000", "INLAND"], "non-finite value for median_income"),
        (["-122", "37", "1", "1", "1", "1", "1", "1", "100000", ""], "missing required value for ocean_proximity"),
    ],
)
def test_housing_validation_reasons(fields, reason):
    assert reason in housing.validate_row(fields)


def test_housing_validation_accepts_missing_bedrooms():
    assert housing.validate_row(["-122", "37", "1", "1", "", "1", "1", "1", "100000", "INLAND"]) is None
