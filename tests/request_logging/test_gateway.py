"""Request logging in the real gateway (`models.<name>.logging` in its YAML), in front of a model server
that does not log: typed calls logged as the backend Predict they became, pass-through calls as
forwarded, failures with their status, every record on disk after SIGTERM, with one or two workers."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc, regression_pb2

from tests.gateway.helpers import Gateway
from tfgate.serving import request_log, tensor_codec
from tfgate.serving.gateway import config as gateway_config
from tfgate.serving.processes import model_config_text
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .helpers import CATEGORICAL, NUMERIC, housing_columns, housing_rows


@pytest.fixture(scope="module")
def backend(tmp_path_factory, model_server_factory, housing_model_base):
    config = model_config_text({"housing": str(housing_model_base)})
    server = model_server_factory(tmp_path_factory.mktemp("gw-log-ms"), model_config=config, rest=False)
    version = int(max((p.name for p in housing_model_base.iterdir() if p.name.isdigit()), key=int))
    return server.grpc_target, version


@pytest.fixture(scope="module")
def rows():
    return housing_rows()["test"][:40]


def _records(prefix) -> list[prediction_log_pb2.PredictionLog]:
    files, partial = request_log.log_files([str(prefix)])
    assert partial == []
    return [prediction_log_pb2.PredictionLog.FromString(r) for f in files for r in request_log.read_tfrecords(f)]


def _housing_records(rows) -> list[pb.HousingRecord]:
    columns = housing_columns(rows)
    out = []
    for i in range(len(rows)):
        values = {c: float(columns[c][i]) for c in NUMERIC if not np.isnan(columns[c][i])}
        out.append(pb.HousingRecord(**values, ocean_proximity=columns[CATEGORICAL][i]))
    return out


def test_gateway_logs_typed_and_pass_through_calls(tmp_path, backend, rows):
    target, version = backend
    prefix = tmp_path / "logs" / "housing"
    gw = Gateway(tmp_path, {"models": {"housing": {"targets": [target],
                                                   "logging": {"filename_prefix": str(prefix)}}}})
    with gw.channel() as channel:
        typed = pb_grpc.InferenceGatewayStub(channel)
        tfs = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        records = _housing_records(rows)
        for i in range(0, 40, 8):
            typed.PredictHousing(pb.PredictHousingRequest(records=records[i:i + 8]), timeout=60)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "housing"
        columns = housing_columns(rows[:3])
        for c in NUMERIC:
            tensor_codec.fill_proto(req.inputs[c], columns[c].astype(np.float32))
        tensor_codec.fill_proto(req.inputs[CATEGORICAL], np.array([v.encode() for v in columns[CATEGORICAL]]))
        tfs.Predict(req, timeout=60)
        regress = regression_pb2.RegressionRequest()
        regress.model_spec.name = "housing"
        regress.model_spec.signature_name = "regress"
        example = regress.input.example_list.examples.add()
        for c in NUMERIC:
            example.features.feature[c].float_list.value.append(float(columns[c][0]))
        example.features.feature[CATEGORICAL].bytes_list.value.append(columns[CATEGORICAL][0].encode())
        tfs.Regress(regress, timeout=60)
        with pytest.raises(grpc.RpcError) as err:  # the backend refuses it: logged with its status
            typed.PredictHousing(pb.PredictHousingRequest(records=records[:1], model=pb.ModelRef(version=99)),
                                 timeout=60)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert gw.stop() == 0
    logged = _records(prefix)
    kinds = [r.WhichOneof("log_type") for r in logged]
    assert kinds.count("predict_log") == 7 and kinds.count("regress_log") == 1
    ok = [r for r in logged if request_log.read_extras(r)["status"] == "OK"]
    assert len(ok) == 7
    for r in ok:
        assert (r.log_metadata.model_spec.name, r.log_metadata.model_spec.version.value) == ("housing", version)
        assert request_log.read_extras(r)["origin"] == "gateway"
    typed_logs = [r.predict_log for r in ok if r.WhichOneof("log_type") == "predict_log"][:5]
    # the typed call as the backend Predict it became: the 9 raw columns, float32 tensors
    first = typed_logs[0].request
    assert set(first.inputs) == set(NUMERIC) | {CATEGORICAL}
    sent = tensor_codec.to_numpy(first.inputs["median_income"])
    np.testing.assert_array_equal(sent, housing_columns(rows[:8])["median_income"].astype(np.float32))
    assert typed_logs[0].response.outputs["median_house_value"].ByteSize() > 0
    failed = [r for r in logged if request_log.read_extras(r)["status"] == "NOT_FOUND"]
    assert len(failed) == 1 and not failed[0].predict_log.HasField("response")
    assert failed[0].predict_log.request.model_spec.version.value == 99


def test_two_workers_lose_nothing_across_sigterm(tmp_path, backend, rows):
    target, _ = backend
    prefix = tmp_path / "logs" / "housing"
    gw = Gateway(tmp_path, {"models": {"housing": {"targets": [target], "logging": {
        "filename_prefix": str(prefix), "sampling_rate": 1.0}}}}, workers=2)
    records = _housing_records(rows)
    sent = 0
    for _ in range(6):  # new channels: connections spread over both workers
        with gw.channel() as channel:
            typed = pb_grpc.InferenceGatewayStub(channel)
            for i in range(0, 40, 4):
                typed.PredictHousing(pb.PredictHousingRequest(records=records[i:i + 4]), timeout=60)
                sent += 1
    assert gw.stop() == 0
    assert len(_records(prefix)) == sent  # each worker finished its own files (named with its pid)


def test_logging_config_fields_and_errors(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("listen: 127.0.0.1:9000\nmodels: {housing: {targets: ['127.0.0.1:8500'], "
                    "logging: {filename_prefix: /tmp/x/housing}}}\n")
    cfg = gateway_config.load(path, environ={"TFGATE_GATEWAY__MODELS__HOUSING__LOGGING__SAMPLING_RATE": "0.25",
                                             "TFGATE_GATEWAY__REQUEST_LOG__MAX_FILE_SECONDS": "30"})
    assert cfg.models["housing"].logging.sampling_rate == 0.25 and cfg.request_log.max_file_seconds == 30
    assert gateway_config.load(path, environ={}).models["housing"].logging.sampling_rate == 1.0
    with pytest.raises(gateway_config.ConfigError, match=r"models\.housing\.logging\.sampling_rate"):
        gateway_config.load(path, environ={"TFGATE_GATEWAY__MODELS__HOUSING__LOGGING__SAMPLING_RATE": "2"})
    with pytest.raises(gateway_config.ConfigError, match="request_log: max_file_bytes"):
        gateway_config.load(path, environ={"TFGATE_GATEWAY__REQUEST_LOG__QUEUE_RECORDS": "0"})
