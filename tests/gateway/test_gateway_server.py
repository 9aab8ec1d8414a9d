"""The real gateway process on loopback, against backends that hang or are down.

Covers what needs no model: auth, error codes naming fields, deadlines, the concurrency limit,
retries and ejection, pass-through routing errors, request ids, health, reflection, metrics.
"""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc
from tfgate.v1 import tensor_pb2

from .helpers import BlackHole, Gateway, free_port

ALL = (("authorization", "Bearer all-models-token"),)
HOUSING_ONLY = (("authorization", "Bearer housing-token"),)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw")
    hole = BlackHole()
    tokens = tmp / "tokens"
    tokens.write_text("all-models-token\nhousing-token housing,slow\n")
    hang = f"127.0.0.1:{hole.port}"
    g = Gateway(tmp, {
        "max_concurrent_requests": 2,
        "auth": {"tokens_file": str(tokens)},
        "backend": {"ejection": {"consecutive_failures": 2, "min_seconds": 30}},
        "models": {
            "housing": {"targets": [hang], "deadline_ms": 20000, "max_records": 4},
            "fashion": {"targets": [hang], "class_names": [f"c{i}" for i in range(10)]},  # top_k checked up front
            "slow": {"targets": [hang], "deadline_ms": 300},
            "down": {"targets": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]},
        },
    })
    yield g
    assert g.stop() == 0
    hole.close()


@pytest.fixture(scope="module")
def stub(gw):
    with gw.channel() as ch:
        yield pb_grpc.InferenceGatewayStub(ch)


def code_of(fn, req, metadata=ALL, timeout=5.0):
    try:
        fn(req, metadata=metadata, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def record(**kw):
    base = dict(longitude=-122.2, latitude=37.8, housing_median_age=30, total_rooms=900, population=400,
                households=150, median_income=4.2, ocean_proximity="NEAR BAY")
    return pb.HousingRecord(**{**base, **kw})


def test_auth(stub):
    req = pb.GetModelRequest(name="fashion")
    assert code_of(stub.GetModel, req, metadata=())[0] == grpc.StatusCode.UNAUTHENTICATED
    bad = (("authorization", "Bearer all-models-tokeN"),)
    assert code_of(stub.GetModel, req, metadata=bad)[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details = code_of(stub.GetModel, req, metadata=HOUSING_ONLY)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "fashion" in details
    listed = stub.ListModels(pb.ListModelsRequest(), metadata=HOUSING_ONLY, timeout=5)
    assert [m.name for m in listed.models] == ["housing", "slow"]


@pytest.mark.parametrize("method, req, field", [
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name="nope")), "model 'nope'"),
    ("GetModel", pb.GetModelRequest(name="nope"), "model 'nope'"),
])
def test_unknown_model_is_not_found(stub, method, req, field):
    code, details = code_of(getattr(stub, method), req)
    assert code == grpc.StatusCode.NOT_FOUND and field in details


def _image(**kw):
    return pb.Image(**kw)


@pytest.mark.parametrize("method, req, field", [
    ("PredictHousing", pb.PredictHousingRequest(), "records:"),
    ("PredictHousing", pb.PredictHousingRequest(records=[record()] * 5), "max_records (4)"),
    ("PredictHousing", pb.PredictHousingRequest(records=[record(), record(median_income=float("nan"))]),
     "records[1].median_income"),
    ("PredictHousing", pb.PredictHousingRequest(records=[record(ocean_proximity="")]),
     "records[0].ocean_proximity"),
    ("PredictHousing", pb.PredictHousingRequest(records=[record()], model=pb.ModelRef(version=-1)),
     "model.version"),
    ("ClassifyFashion", pb.ClassifyFashionRequest(images=[_image(pixels=bytes(784)),
                                                          _image(pixels=bytes(783))]), "images[1].pixels"),
    ("ClassifyFashion", pb.ClassifyFashionRequest(images=[_image(encoded=b"GIF89a....")]),
     "images[0].encoded: not a PNG or JPEG"),
    ("ClassifyFashion", pb.ClassifyFashionRequest(images=[_image(encoded=b"\x89PNG\r\n\x1a\nbroken")]),
     "images[0].encoded: cannot decode"),
    ("ClassifyFashion", pb.ClassifyFashionRequest(images=[_image()]), "images[0]"),
    ("ClassifyFashion", pb.ClassifyFashionRequest(images=[_image(pixels=bytes(784))], top_k=11), "top_k"),
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name="housing")), "inputs:"),
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name="housing"), inputs={"x": tensor_pb2.Tensor(
        dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[2, 2], content=bytes(12))}), "inputs[x].content"),
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name="housing"), inputs={"s": tensor_pb2.Tensor(
        dtype=tensor_pb2.DATA_TYPE_STRING, shape=[3], string_values=[b"a"])}), "inputs[s].string_values"),
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name="housing"), inputs={"x": tensor_pb2.Tensor(
        shape=[1], content=bytes(4))}), "inputs[x].dtype"),
    ("Predict", pb.PredictRequest(model=pb.ModelRef(name=""), inputs={}), "model.name"),
])
def test_client_mistakes_are_invalid_argument_naming_the_field(stub, method, req, field):
    code, details = code_of(getattr(stub, method), req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert field in details


def test_slow_backend_is_bounded_by_model_deadline_and_caller_deadline(stub):
    req = pb.PredictHousingRequest(records=[record()], model=pb.ModelRef(name="slow"))
    t0 = time.monotonic()
    code, _ = code_of(stub.PredictHousing, req, timeout=None)
    took = time.monotonic() - t0
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and 0.25 < took < 2.0
    t0 = time.monotonic()
    code, _ = code_of(stub.PredictHousing, pb.PredictHousingRequest(records=[record()]), timeout=0.4)
    took = time.monotonic() - t0
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and took < 2.0


def test_concurrency_limit_is_resource_exhausted(stub):
    req = pb.PredictHousingRequest(records=[record()])
    hanging = [stub.PredictHousing.future(req, metadata=ALL, timeout=2.5) for _ in range(2)]
    time.sleep(0.5)
    code, details = code_of(stub.PredictHousing, req)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "concurrency limit" in details
    for f in hanging:
        assert f.exception().code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Capacity comes back once they finish.
    assert code_of(stub.GetModel, pb.GetModelRequest(name="housing"))[0] == grpc.StatusCode.OK


def test_all_replicas_down_is_unavailable_after_retries_and_they_are_ejected(gw, stub):
    req = pb.PredictHousingRequest(records=[record()], model=pb.ModelRef(name="down"))
    t0 = time.monotonic()
    code, details = code_of(stub.PredictHousing, req, timeout=10)
    assert code == grpc.StatusCode.UNAVAILABLE and "4 attempts" in details
    assert time.monotonic() - t0 < 5.0  # retries back off briefly; they do not wait out the 10 s deadline
    model = stub.GetModel(pb.GetModelRequest(name="down"), metadata=ALL, timeout=5).model
    assert model.healthy_targets == 0 and not model.versions
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5).read().decode()
    assert 'tfgate_gateway_retries_total{model="down"} 3.0' in text
    assert 'tfgate_gateway_backend_ejections_total{model="down"' in text


def test_passthrough_with_a_stock_tf_serving_client(gw):
    with gw.channel() as ch:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        status = model_service_pb2_grpc.ModelServiceStub(ch)
        req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="nope"))
        with pytest.raises(grpc.RpcError) as err:
            predict.Predict(req, metadata=ALL, timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "model_spec.name" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            status.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), metadata=ALL, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            predict.Predict(req, metadata=(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        raw = ch.unary_unary("/tensorflow.serving.PredictionService/Predict")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff\xff", metadata=ALL, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_request_id_echoed_and_logged_without_token(gw, stub):
    _, call = stub.GetModel.with_call(pb.GetModelRequest(name="housing"),
                                      metadata=(*ALL, ("x-request-id", "rid-12345")), timeout=5)
    assert ("x-request-id", "rid-12345") in call.trailing_metadata()
    _, call = stub.GetModel.with_call(pb.GetModelRequest(name="housing"), metadata=ALL, timeout=5)
    assert len(dict(call.trailing_metadata())["x-request-id"]) == 32
    time.sleep(0.2)
    log = gw.log_path.read_text()
    assert '"request_id": "rid-12345"' in log
    assert "all-models-token" not in log and "housing-token" not in log


def test_health_reflection_and_metrics(gw):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with gw.channel() as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for name in ("", "tfgate.v1.InferenceGateway", "tensorflow.serving.PredictionService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == 1
        db = ProtoReflectionDescriptorDatabase(ch)
        assert {"tfgate.v1.InferenceGateway", "tensorflow.serving.PredictionService",
                "tensorflow.serving.ModelService", "grpc.health.v1.Health"} <= set(db.get_services())
        methods = DescriptorPool(db).FindServiceByName("tfgate.v1.InferenceGateway").methods_by_name
        assert set(methods) == {"PredictHousing", "ClassifyFashion", "Predict", "ListModels", "GetModel"}
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5).read().decode()
    assert ('tfgate_gateway_requests_total{code="INVALID_ARGUMENT",method="ClassifyFashion",'
            'model="fashion"}') in text
    assert "tfgate_gateway_request_seconds_bucket" in text and "tfgate_gateway_in_flight" in text
