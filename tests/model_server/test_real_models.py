"""The trained tfgate models (session fixtures `housing_model_base`, `fashion_model_base`) served by
one model server: Predict on raw features, Regress/Classify on tf.Example, REST, and the models' own
warm-up records replayed as client requests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from tests.model_server.helpers import http, predict_request, stubs
from tfgate.serving.processes import model_config_text

HOUSING_ROW = {
    "longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
    "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_server_factory, housing_model_base, fashion_model_base):
    config = model_config_text({"housing": str(housing_model_base), "fashion": str(fashion_model_base)})
    s = model_server_factory(tmp_path_factory.mktemp("real"), model_config=config, flags=["--enable_batching"])
    ch, pred, model = stubs(s.grpc_target)
    yield s, pred
    ch.close()


def _warmup_logs(base) -> list:
    latest = max((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    path = latest / "assets.extra" / "tf_serving_warmup_requests"
    return [prediction_log_pb2.PredictionLog.FromString(r)
            for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]


def _housing_inputs(n: int, missing_bedrooms: bool = False) -> dict:
    inputs = {k: np.full(n, v, np.float32) for k, v in HOUSING_ROW.items()}
    if missing_bedrooms:
        inputs["total_bedrooms"][0] = np.nan
    inputs["ocean_proximity"] = np.array([b"NEAR BAY"] * n, object)
    return inputs


def test_housing_predict_and_regress(server, housing_model_base):
    s, pred = server
    r = pred.Predict(predict_request("housing", _housing_inputs(2, missing_bedrooms=True)), timeout=60)
    values = tf.make_ndarray(r.outputs["median_house_value"])
    assert values.shape == (2,) and all(math.isfinite(v) for v in values)
    for log in _warmup_logs(housing_model_base):
        kind = log.WhichOneof("log_type")
        if kind == "regress_log":
            resp = pred.Regress(log.regress_log.request, timeout=60)
            assert len(resp.result.regressions) == len(log.regress_log.request.input.example_list.examples)
        elif kind == "predict_log":
            resp = pred.Predict(log.predict_log.request, timeout=60)
            assert "median_house_value" in resp.outputs
    body = {"instances": [{k: float(v) for k, v in HOUSING_ROW.items()} | {"ocean_proximity": "INLAND"}]}
    status, out = http("POST", s.rest_url + "/v1/models/housing:predict", body)
    assert status == 200 and len(out["predictions"]) == 1 and math.isfinite(out["predictions"][0])


def test_fashion_predict_and_classify(server, fashion_model_base):
    s, pred = server
    images = np.zeros([3, 28, 28], np.uint8)
    images[1, 10:18, 10:18] = 255
    r = pred.Predict(predict_request("fashion", {"image": images}), timeout=60)
    probs = tf.make_ndarray(r.outputs["probabilities"])
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    ids = tf.make_ndarray(r.outputs["class_ids"])
    assert ids.dtype == np.int64 and list(ids) == list(probs.argmax(axis=1))
    assert len(r.outputs["classes"].string_val) == 3
    for log in _warmup_logs(fashion_model_base):
        if log.WhichOneof("log_type") == "classify_log":
            resp = pred.Classify(log.classify_log.request, timeout=60)
            for c in resp.result.classifications:
                assert math.isclose(sum(k.score for k in c.classes), 1.0, abs_tol=1e-4)
    status, out = http("POST", s.rest_url + "/v1/models/fashion:predict",
                       {"inputs": {"image": images[:1].tolist()}})
    assert status == 200 and len(out["outputs"]["probabilities"][0]) == 10


def test_real_models_metadata_and_warmup(server):
    s, pred = server
    for name, method in (("housing", "tensorflow/serving/regress"), ("fashion", "tensorflow/serving/classify")):
        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        req.model_spec.name = name
        sdm = get_model_metadata_pb2.SignatureDefMap()
        pred.GetModelMetadata(req, timeout=60).metadata["signature_def"].Unpack(sdm)
        assert "serving_default" in sdm.signature_def
        assert method in {sd.method_name for sd in sdm.signature_def.values()}
    assert s.log().count("Number of warmup records read") == 2
