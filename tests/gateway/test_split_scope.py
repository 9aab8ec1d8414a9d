"""The traffic split applies to inference only (issue 13 §2).

A real model server serves versions 1 and 2 of a tiny model; a real gateway splits 50/50 between
them. A stock TF Serving client's GetModelStatus and GetModelMetadata through the gateway must
answer exactly as a direct call does (every version; the backend's default version) and must not
count in `tfgate_gateway_split_total`; Predict without a version is split and counted.
"""

from __future__ import annotations

import urllib.request
from collections import Counter

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfgate.serving.processes import model_config_text, start_model_server

from .helpers import Gateway
from .test_with_model_servers import FLOATS, _save_model

CALLS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split-scope")
    base = tmp / "housing"
    for v in (1, 2):
        _save_model(base, v)
    ms = start_model_server(tmp, model_config=model_config_text({"housing": str(base)}, policy="all {}"),
                            rest=False)
    yield ms
    ms.stop()


@pytest.fixture(scope="module")
def gw(server, tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("split-scope-gw"), {"models": {"housing": {
        "targets": [server.grpc_target], "labels": {"stable": 1, "canary": 2},
        "split": {"stable": 50, "canary": 50}}}})
    yield g
    g.stop()


def _split_total(g) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{g.metrics_port}/metrics", timeout=5).read().decode()
    out: Counter = Counter()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "tfgate_gateway_split_total" and s.labels["model"] == "housing":
                out[s.labels["label"]] += s.value
    return out


def _status(target: str, **spec) -> get_model_status_pb2.GetModelStatusResponse:
    req = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="housing", **spec))
    with grpc.insecure_channel(target) as ch:
        return model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(req, timeout=10)


def _metadata(target: str) -> get_model_metadata_pb2.GetModelMetadataResponse:
    req = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_pb2.ModelSpec(name="housing"),
                                                         metadata_field=["signature_def"])
    with grpc.insecure_channel(target) as ch:
        return prediction_service_pb2_grpc.PredictionServiceStub(ch).GetModelMetadata(req, timeout=10)


def test_status_and_metadata_pass_through_unsplit(gw, server):
    direct_status = _status(server.grpc_target)
    assert sorted(v.version for v in direct_status.model_version_status) == [1, 2]
    direct_meta = _metadata(server.grpc_target)
    before = _split_total(gw)
    for _ in range(CALLS):
        assert _status(gw.target) == direct_status
        assert _metadata(gw.target) == direct_meta
    assert _split_total(gw) == before
    # A gateway label still names its version for status.
    stable = _status(gw.target, version_label="stable")
    assert [v.version for v in stable.model_version_status] == [1]


def test_predict_is_split_and_counted(gw):
    import tensorflow as tf

    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="housing"))
    for name in FLOATS:
        req.inputs[name].CopyFrom(tf.make_tensor_proto(np.ones(1, np.float32)))
    req.inputs["ocean_proximity"].CopyFrom(tf.make_tensor_proto(np.array([b"INLAND"])))
    before = _split_total(gw)
    with grpc.insecure_channel(gw.target) as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        versions = Counter(stub.Predict(req, timeout=10).model_spec.version.value for _ in range(CALLS))
    after = _split_total(gw)
    # 50/50 over 40 calls: both versions appear unless a 1-in-5e11 draw.
    assert set(versions) == {1, 2}, versions
    assert sum(after.values()) - sum(before.values()) == CALLS
    assert after["stable"] - before["stable"] == versions[1]
