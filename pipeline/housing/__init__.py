"""California housing: raw schema, row validation and the TF Transform preprocessing_fn."""

from __future__ import annotations

import csv
import math

import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf.descriptor import FieldDescriptor

from tfgate.v1.gateway_pb2 import HousingRecord

NAME = "housing"
# The raw columns are the fields of the API's HousingRecord, in its order: the proto is the one place
# they are written down (floats are numeric, `optional` ones may be missing, the string is the category).
_RECORD = HousingRecord.DESCRIPTOR.fields
NUMERIC_COLUMNS = [f.name for f in _RECORD if f.cpp_type == FieldDescriptor.CPPTYPE_FLOAT]
OPTIONAL_COLUMNS = {f.name for f in _RECORD if f.has_presence}
(CATEGORICAL_COLUMN,) = [f.name for f in _RECORD if f.cpp_type == FieldDescriptor.CPPTYPE_STRING]
LABEL = "median_house_value"
CSV_COLUMNS = NUMERIC_COLUMNS + [LABEL, CATEGORICAL_COLUMN]
RAW_FEATURES = NUMERIC_COLUMNS + [CATEGORICAL_COLUMN]  # what serving takes: the 9 raw columns

# The label is trained in units of $100,000; serving multiplies back to dollars.
LABEL_SCALE = 100_000.0
# Census values are capped at 500,001; anything outside (0, 1e7] is a data error, not a house.
LABEL_RANGE = (0.0, 10_000_000.0)
OCEAN_PROXIMITY_OOV_BUCKETS = 1
OCEAN_PROXIMITY_VOCAB = "ocean_proximity_vocab"

# Transformed feature names (what training reads from the TFRecords).
RATIO_FEATURES = ["rooms_per_household", "bedrooms_per_room", "population_per_household"]
DENSE_FEATURES = [f"{c}_z" for c in NUMERIC_COLUMNS] + [f"{r}_z" for r in RATIO_FEATURES]
MISSING_INDICATOR = "total_bedrooms_missing"
CATEGORY_INDEX = "ocean_proximity_index"
LABEL_XF = "label"


def raw_feature_spec() -> dict:
    spec = {c: tf.io.FixedLenFeature([], tf.float32) for c in NUMERIC_COLUMNS if c not in OPTIONAL_COLUMNS}
    spec.update({c: tf.io.VarLenFeature(tf.float32) for c in OPTIONAL_COLUMNS})
    spec[CATEGORICAL_COLUMN] = tf.io.FixedLenFeature([], tf.string)
    spec[LABEL] = tf.io.FixedLenFeature([], tf.float32)
    return spec


def parse_row(line: str) -> list[str]:
    """One CSV line → its fields (quotes honoured)."""
    return next(csv.reader([line]))


def validate_row(fields: list[str]) -> str | None:
    """Why this row cannot be used, or None when it can."""
    if len(fields) != len(CSV_COLUMNS):
        return f"expected {len(CSV_COLUMNS)} columns, found {len(fields)}"
    for name, value in zip(CSV_COLUMNS, fields, strict=True):
        value = value.strip()
        if name == CATEGORICAL_COLUMN:
            if not value:
                return f"missing required value for {name}"
            continue
        if not value:
            if name in OPTIONAL_COLUMNS:
                continue
            return f"missing required value for {name}"
        try:
            number = float(value)
        except ValueError:
            return f"non-numeric value for {name}: {value[:40]!r}"
        if not math.isfinite(number):
            return f"non-finite value for {name}: {value[:40]!r}"
        if name == LABEL and not LABEL_RANGE[0] < number <= LABEL_RANGE[1]:
            return f"{name} out of range ({LABEL_RANGE[0]:.0f}, {LABEL_RANGE[1]:.0f}]: {number}"
    return None


def normalize_row(fields: list[str]) -> str:
    """A validated row as a plain CSV line for the TFXIO CSV decoder."""
    return ",".join(_csv_field(f.strip()) for f in fields)


def _csv_field(value: str) -> str:
    """Quote a field holding a comma or quote (e.g. `"NEAR, BAY"`) so the decoder sees one field."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _z_score_of_present(sparse: tf.SparseTensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mean-impute a column with missing values; statistics come from present values only.

    Returns (imputed dense values [N], their z-scores [N], a 0/1 missing indicator [N]).
    An imputed value's z-score is exactly 0, so imputation does not shrink the variance.
    """
    mean = tft.mean(sparse.values)
    var = tft.var(sparse.values)
    batch = tf.shape(sparse, out_type=tf.int64)[0]
    values = tf.sparse.to_dense(
        tf.sparse.reset_shape(sparse, [batch, 1]), default_value=float("nan")
    )[:, 0]
    missing = tf.math.is_nan(values)
    imputed = tf.where(missing, tf.cast(mean, tf.float32), values)
    z = (imputed - mean) / tf.sqrt(var)
    return imputed, tf.cast(z, tf.float32), tf.cast(missing, tf.float32)


def preprocessing_fn(inputs: dict) -> dict:
    """Raw housing features → model features. Pure: depends only on its inputs and analyzers."""
    outputs = {}
    bedrooms, bedrooms_z, bedrooms_missing = _z_score_of_present(inputs["total_bedrooms"])
    for column in NUMERIC_COLUMNS:
        if column == "total_bedrooms":
            outputs["total_bedrooms_z"] = bedrooms_z
        else:
            outputs[f"{column}_z"] = tft.scale_to_z_score(inputs[column])
    outputs[MISSING_INDICATOR] = bedrooms_missing

    ratios = {
        "rooms_per_household": tf.math.divide_no_nan(inputs["total_rooms"], inputs["households"]),
        "bedrooms_per_room": tf.math.divide_no_nan(bedrooms, inputs["total_rooms"]),
        "population_per_household": tf.math.divide_no_nan(inputs["population"], inputs["households"]),
    }
    for name, value in ratios.items():
        outputs[f"{name}_z"] = tft.scale_to_z_score(value)

    outputs[CATEGORY_INDEX] = tft.compute_and_apply_vocabulary(
        tf.strings.strip(inputs[CATEGORICAL_COLUMN]),
        num_oov_buckets=OCEAN_PROXIMITY_OOV_BUCKETS,
        vocab_filename=OCEAN_PROXIMITY_VOCAB,
    )
    outputs[LABEL_XF] = inputs[LABEL] / LABEL_SCALE
    return outputs
