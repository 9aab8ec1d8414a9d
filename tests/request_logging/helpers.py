"""Shared helpers: requests and responses as the servers log them, and the bundled data as columns."""

from __future__ import annotations

import csv
import gzip
import threading

import numpy as np
from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2

from tests.conftest import FASHION_DIR, HOUSING_CSV
from tfgate.serving import tensor_codec

NUMERIC = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
           "households", "median_income"]
CATEGORICAL = "ocean_proximity"


def predict_pair(model: str, inputs: dict, outputs: dict, version: int = 1, signature: str = "serving_default"):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    for k, v in inputs.items():
        tensor_codec.fill_proto(req.inputs[k], np.asarray(v))
    resp = predict_pb2.PredictResponse()
    resp.model_spec.name = model
    resp.model_spec.version.value = version
    resp.model_spec.signature_name = signature
    for k, v in outputs.items():
        tensor_codec.fill_proto(resp.outputs[k], np.asarray(v))
    return req, resp


def regress_pair(model: str, rows: list[dict], values: list[float], version: int = 1):
    req = regression_pb2.RegressionRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = "regress"
    for row in rows:
        ex = req.input.example_list.examples.add()
        for k, v in row.items():
            if isinstance(v, str):
                ex.features.feature[k].bytes_list.value.append(v.encode())
            elif not np.isnan(v):
                ex.features.feature[k].float_list.value.append(v)
    resp = regression_pb2.RegressionResponse()
    resp.model_spec.name = model
    resp.model_spec.version.value = version
    for v in values:
        resp.result.regressions.add().value = v
    return req, resp


def classify_pair(model: str, images: np.ndarray, classes: list[int], version: int = 1):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = "classify"
    for image in images:
        req.input.example_list.examples.add().features.feature["image"].bytes_list.value.append(image.tobytes())
    resp = classification_pb2.ClassificationResponse()
    resp.model_spec.name = model
    resp.model_spec.version.value = version
    for best in classes:
        c = resp.result.classifications.add()
        for i in range(10):
            cls = c.classes.add()
            cls.label = f"class {i}"
            cls.score = 0.9 if i == best else 0.01
    return req, resp


class Blocking:
    """A message whose serialization waits for `release`: holds the writer thread where we want it."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        self.started.set()
        self.release.wait(30)
        return b""


# ---------------------------------------------------------------------------------------------
# The bundled data, split as the pipeline splits it.


def housing_rows() -> dict[str, list[list[str]]]:
    """{split: CSV fields} for the valid rows of data/housing, by the pipeline's own split rule."""
    from tfgate.pipeline import beam_pipeline, housing

    out: dict[str, list] = {"train": [], "eval": [], "test": []}
    with open(HOUSING_CSV, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert header == housing.CSV_COLUMNS
        for fields in reader:
            if housing.validate_row(fields) is None:
                out[beam_pipeline.housing_split(housing.normalize_row(fields))].append(fields)
    return out


def housing_columns(rows: list[list[str]]) -> dict:
    from tfgate.pipeline import housing

    index = {c: i for i, c in enumerate(housing.CSV_COLUMNS)}
    columns = {c: np.array([float(r[index[c]]) if r[index[c]].strip() else np.nan for r in rows]) for c in NUMERIC}
    columns[CATEGORICAL] = np.array([r[index[CATEGORICAL]] for r in rows], dtype=object)
    return columns


def fashion_images(source: str) -> np.ndarray:
    """uint8 [N, 28, 28] from the bundled IDX file of `source` ("train" or "t10k")."""
    with gzip.open(FASHION_DIR / f"{source}-images-idx3-ubyte.gz") as handle:
        data = handle.read()
    count = int.from_bytes(data[4:8], "big")
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, 28, 28)
