"""Small helpers shared by the training tests: reading a SavedModel's signatures and raw test rows."""

from __future__ import annotations

import math
import os

import numpy as np
from tensorflow.core.protobuf import saved_model_pb2

from tfgate.pipeline import beam_pipeline, fashion, housing

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def signature_defs(version_dir) -> dict:
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    return dict(proto.meta_graphs[0].signature_def)


def tensor_info(infos) -> dict:
    """{name: (dtype enum, [dims])} of a signature's inputs or outputs (-1 = any)."""
    return {k: (v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in infos.items()}


def housing_raw_test_rows() -> dict:
    """The raw CSV rows the pipeline put in the test split, as serving_default inputs (NaN = missing)."""
    columns = {name: [] for name in housing.RAW_FEATURES}
    with open(os.path.join(REPO, "data", "housing", "housing.csv"), encoding="utf-8") as handle:
        next(handle)  # header
        for raw_line in handle:
            fields = housing.parse_row(raw_line.rstrip("\r\n"))
            if housing.validate_row(fields) is not None:
                continue
            line = housing.normalize_row(fields)
            if beam_pipeline.housing_split(line) != "test":
                continue
            row = dict(zip(housing.CSV_COLUMNS, housing.parse_row(line), strict=True))
            for name in housing.NUMERIC_COLUMNS:
                columns[name].append(float(row[name]) if row[name] else math.nan)
            columns[housing.CATEGORICAL_COLUMN].append(row[housing.CATEGORICAL_COLUMN])
    out = {n: np.array(v, np.float32) for n, v in columns.items() if n != housing.CATEGORICAL_COLUMN}
    out[housing.CATEGORICAL_COLUMN] = np.array(columns[housing.CATEGORICAL_COLUMN], dtype=object)
    return out


def fashion_raw_test_images() -> np.ndarray:
    """The t10k images (the pipeline's test split) as uint8 [N, 28, 28]."""
    images_file, labels_file = fashion.SOURCE_FILES["t10k"]
    folder = os.path.join(REPO, "data", "fashion-mnist")
    images = [
        np.frombuffer(image, np.uint8).reshape(28, 28)
        for _, image, _, reason in fashion.read_pairs(
            os.path.join(folder, images_file), os.path.join(folder, labels_file)
        )
        if reason is None
    ]
    return np.stack(images)
