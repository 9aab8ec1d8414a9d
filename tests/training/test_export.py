"""The exported SavedModels' contract: layout, signatures, method names, warm-up, evaluation files."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tests.training.helpers import signature_defs, tensor_info
from tfgate.pipeline import fashion, housing
from tfgate.pipeline.housing.task import WARMUP_ROWS
from tfgate.pipeline.training import export

FLOAT, STRING, INT64, UINT8 = types_pb2.DT_FLOAT, types_pb2.DT_STRING, types_pb2.DT_INT64, types_pb2.DT_UINT8


@pytest.fixture(scope="module")
def housing_loaded(housing_model_base):
    return tf.saved_model.load(str(housing_model_base / "1"))


@pytest.fixture(scope="module")
def fashion_loaded(fashion_model_base):
    return tf.saved_model.load(str(fashion_model_base / "1"))


def test_version_layout(housing_model_base, fashion_model_base):
    for base, plot in ((housing_model_base, "predicted_vs_actual.png"), (fashion_model_base, "confusion_matrix.png")):
        assert sorted(os.listdir(base)) == ["1"]  # no temporary folder left behind
        extra = base / "1" / "assets.extra"
        for name in ("metrics.json", "learning_curves.png", plot, export.WARMUP_FILE):
            assert (extra / name).stat().st_size > 0, name
        assert (base / "1" / "saved_model.pb").exists()


def test_housing_signatures(housing_model_base):
    sigs = signature_defs(housing_model_base / "1")
    assert set(sigs) >= {"serving_default", "regress"}
    default = sigs["serving_default"]
    expected = {n: (STRING if n == "ocean_proximity" else FLOAT, [-1]) for n in housing.RAW_FEATURES}
    assert tensor_info(default.inputs) == expected
    assert tensor_info(default.outputs) == {"median_house_value": (FLOAT, [-1])}
    assert default.method_name == "tensorflow/serving/predict"
    regress = sigs["regress"]
    assert regress.method_name == "tensorflow/serving/regress"
    assert tensor_info(regress.inputs) == {"inputs": (STRING, [-1])}
    assert tensor_info(regress.outputs) == {"outputs": (FLOAT, [-1])}


def test_fashion_signatures(fashion_model_base):
    sigs = signature_defs(fashion_model_base / "1")
    assert set(sigs) >= {"serving_default", "classify"}
    default = sigs["serving_default"]
    assert tensor_info(default.inputs) == {"image": (UINT8, [-1, 28, 28])}
    assert tensor_info(default.outputs) == {
        "probabilities": (FLOAT, [-1, 10]),
        "class_ids": (INT64, [-1]),
        "classes": (STRING, [-1]),
        "all_classes": (STRING, [-1, 10]),
    }
    classify = sigs["classify"]
    assert classify.method_name == "tensorflow/serving/classify"
    assert tensor_info(classify.inputs) == {"inputs": (STRING, [-1])}
    assert tensor_info(classify.outputs) == {"classes": (STRING, [-1, 10]), "scores": (FLOAT, [-1, 10])}


def _warmup_logs(base) -> list:
    path = str(base / "1" / "assets.extra" / export.WARMUP_FILE)
    logs = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def _replay(loaded, log) -> dict:
    """Run one warm-up record the way TF Serving does: through the signature it names."""
    kind = log.WhichOneof("log_type")
    request = getattr(log, kind).request
    signature = loaded.signatures[request.model_spec.signature_name]
    if kind == "predict_log":
        return signature(**{k: tf.make_ndarray(v) for k, v in request.inputs.items()})
    examples = [e.SerializeToString() for e in request.input.example_list.examples]
    return signature(inputs=tf.constant(examples))


def test_housing_warmup_records_replay(housing_model_base, housing_loaded):
    logs = _warmup_logs(housing_model_base)
    kinds = {(log.WhichOneof("log_type"), getattr(log, log.WhichOneof("log_type")).request.model_spec.signature_name)
             for log in logs}  # fmt: skip
    assert kinds == {("predict_log", "serving_default"), ("regress_log", "regress")}
    for log in logs:
        out = _replay(housing_loaded, log)
        values = next(iter(out.values())).numpy()
        assert np.all(np.isfinite(values)) and values.shape[0] in (1, 3)


def test_fashion_warmup_records_replay(fashion_model_base, fashion_loaded):
    logs = _warmup_logs(fashion_model_base)
    kinds = {getattr(log, log.WhichOneof("log_type")).request.model_spec.signature_name for log in logs}
    assert kinds == {"serving_default", "classify"}
    for log in logs:
        out = _replay(fashion_loaded, log)
        assert set(out) in ({"probabilities", "class_ids", "classes", "all_classes"}, {"classes", "scores"})


def test_housing_serving_default_and_regress_agree(housing_loaded):
    rows = WARMUP_ROWS
    columns = {n: tf.constant([r[n] for r in rows]) for n in housing.RAW_FEATURES}
    dollars = housing_loaded.signatures["serving_default"](**columns)["median_house_value"].numpy()
    assert dollars.shape == (3,) and np.all((dollars > 10_000) & (dollars < 1_000_000)), dollars
    examples = [export.example(r).SerializeToString() for r in rows]
    regressed = housing_loaded.signatures["regress"](inputs=tf.constant(examples))["outputs"].numpy()
    np.testing.assert_allclose(regressed, dollars, rtol=1e-5)
    assert math.isnan(rows[1]["total_bedrooms"])  # the missing-value path is exercised


def test_fashion_serving_default_and_classify_agree(fashion_loaded):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    out = fashion_loaded.signatures["serving_default"](image=tf.constant(images))
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    ids = out["class_ids"].numpy()
    assert [c.decode() for c in out["classes"].numpy()] == [fashion.CLASS_NAMES[i] for i in ids]
    examples = [export.example({fashion.IMAGE: i.tobytes()}).SerializeToString() for i in images]
    classified = fashion_loaded.signatures["classify"](inputs=tf.constant(examples))
    np.testing.assert_allclose(classified["scores"].numpy(), probabilities, atol=1e-6)
    assert [c.decode() for c in classified["classes"].numpy()[0]] == fashion.CLASS_NAMES


def test_metrics_json(housing_model_base, fashion_model_base):
    housing_metrics = json.loads((housing_model_base / "1" / "assets.extra" / "metrics.json").read_text())
    assert housing_metrics["test"]["examples"] > 1000
    # A few epochs already beat predicting the mean (~$115,000 RMSE); the target is checked by the benchmark.
    assert 0 < housing_metrics["test"]["rmse"] < 90_000 and housing_metrics["test"]["mae"] < 70_000
    fashion_metrics = json.loads((fashion_model_base / "1" / "assets.extra" / "metrics.json").read_text())
    test = fashion_metrics["test"]
    assert test["examples"] == sum(map(sum, test["confusion_matrix"]))
    assert set(test["per_class"]) == set(fashion.CLASS_NAMES)
    assert test["accuracy"] > 0.6
