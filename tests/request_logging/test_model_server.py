"""Request logging in real `tfgate model-server` processes (`logging_config` in --model_config_file):
every answered request on disk after SIGTERM, sampling, load with and without logging, drift and a
warm-up file from real traffic."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from tests.conftest import TFGATE
from tests.model_server.helpers import http, metric
from tfgate.serving import request_log, tensor_codec

from .helpers import CATEGORICAL, NUMERIC, housing_columns, housing_rows

MODEL = "housing"


def logging_config(name: str, base, prefix=None, rate: float = 1.0) -> str:
    """A ModelServerConfig text with `logging_config` as TF Serving spells it."""
    logging = ""
    if prefix is not None:
        logging = (f'    logging_config {{\n      log_collector_config {{ type: "" filename_prefix: "{prefix}" }}\n'
                   f"      sampling_config {{ sampling_rate: {rate} }}\n    }}\n")
    return (f'model_config_list {{\n  config {{\n    name: "{name}"\n    base_path: "{base}"\n'
            f'    model_platform: "tensorflow"\n{logging}  }}\n}}\n')


def _requests(rows: list[list[str]], batch: int = 1, income_factor: float = 1.0, ocean: str | None = None):
    columns = housing_columns(rows)
    columns["median_income"] = columns["median_income"] * income_factor
    out = []
    for start in range(0, len(rows), batch):
        req = predict_pb2.PredictRequest()
        req.model_spec.name = MODEL
        for c in NUMERIC:
            tensor_codec.fill_proto(req.inputs[c], columns[c][start:start + batch].astype(np.float32))
        values = columns[CATEGORICAL][start:start + batch]
        tensor_codec.fill_proto(req.inputs[CATEGORICAL],
                                np.array([(ocean or v).encode() for v in values], dtype=object))
        out.append(req)
    return out


async def _send(target: str, requests: list, concurrency: int) -> tuple[int, int]:
    """(answered OK, failed) for `requests` sent with `concurrency` in flight."""
    ok = failed = 0
    queue = list(reversed(requests))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def worker():
            nonlocal ok, failed
            while queue:
                req = queue.pop()
                try:
                    await stub.Predict(req, timeout=60)
                    ok += 1
                except grpc.aio.AioRpcError:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed


def send(target: str, requests: list, concurrency: int = 8) -> tuple[int, int]:
    return asyncio.run(_send(target, requests, concurrency))


def records(prefix) -> list[prediction_log_pb2.PredictionLog]:
    files, partial = request_log.log_files([str(prefix)])
    assert partial == [], "a file was left half-written"
    return [prediction_log_pb2.PredictionLog.FromString(r) for f in files for r in request_log.read_tfrecords(f)]


def bad_request() -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = MODEL
    tensor_codec.fill_proto(req.inputs["median_incme"], np.array([1.0], np.float32))
    return req


@pytest.fixture(scope="module")
def splits():
    return housing_rows()


def test_every_answered_request_is_on_disk_after_sigterm(model_server_factory, housing_model_base, splits, tmp_path):
    prefix = tmp_path / "logs" / MODEL
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    server = model_server_factory(model_config=logging_config(MODEL, housing_model_base, prefix),
                                  flags=[f"--monitoring_config_file={monitoring}"])
    good = _requests(splits["test"][:600], batch=2)
    ok, failed = send(server.grpc_target, good + [bad_request()] * 20, concurrency=16)
    assert (ok, failed) == (300, 20)
    status, body = http("POST", f"{server.rest_url}/v1/models/{MODEL}:predict",
                        {"instances": [{c: 1.0 for c in NUMERIC} | {CATEGORICAL: "INLAND"}]})
    assert status == 200, body
    status, text = http("GET", f"{server.rest_url}/metrics")
    assert metric(text, "tfgate_request_log_records_total", model_name=MODEL, outcome="dropped") == 0
    assert server.stop() == 0  # SIGTERM right after the last answer: the writer must still finish
    logged = records(prefix)
    assert len(logged) == 321
    outcomes = [request_log.read_extras(r)["status"] for r in logged]
    assert outcomes.count("OK") == 301 and outcomes.count("INVALID_ARGUMENT") == 20
    version = int(sorted(p.name for p in housing_model_base.iterdir() if p.name.isdigit())[-1])
    ok_records = [r for r in logged if request_log.read_extras(r)["status"] == "OK"]
    for r in ok_records:
        meta = r.log_metadata
        assert (meta.model_spec.name, meta.model_spec.version.value) == (MODEL, version)
        assert meta.model_spec.signature_name == "serving_default"
        assert r.predict_log.response.outputs["median_house_value"].float_val
        assert request_log.read_extras(r)["latency_us"] > 0
    sent = sorted(tuple(req.inputs["median_income"].float_val) for req in good)
    assert sorted(tuple(r.predict_log.request.inputs["median_income"].float_val) for r in ok_records
                  if len(r.predict_log.request.inputs["median_income"].float_val) == 2) == sent


def test_sampling_rate_on_a_real_server(model_server_factory, housing_model_base, splits, tmp_path):
    prefix = tmp_path / "logs" / MODEL
    server = model_server_factory(model_config=logging_config(MODEL, housing_model_base, prefix, rate=0.25))
    n = 1200
    assert send(server.grpc_target, _requests(splits["test"][:n]), concurrency=8) == (n, 0)
    server.stop()
    sd = (n * 0.25 * 0.75) ** 0.5
    assert abs(len(records(prefix)) - n * 0.25) < 5 * sd


def test_load_at_c32_same_errors_with_and_without_logging(model_server_factory, housing_model_base, splits,
                                                          tmp_path):
    prefix = tmp_path / "logs" / MODEL
    with_logging = model_server_factory(model_config=logging_config(MODEL, housing_model_base, prefix))
    without = model_server_factory(model_config=logging_config(MODEL, housing_model_base))
    load = _requests(splits["test"][:1600]) + [bad_request()] * 40
    np.random.default_rng(0).shuffle(load)
    assert send(without.grpc_target, load, concurrency=32) == (1600, 40)
    assert send(with_logging.grpc_target, load, concurrency=32) == (1600, 40)
    with_logging.stop()
    assert len(records(prefix)) == 1640


def test_bad_logging_config_is_refused_at_start(tmp_path, housing_model_base):
    from tfgate.serving.processes import model_server

    server = model_server(tmp_path, model_config=logging_config(MODEL, housing_model_base, tmp_path / "x", rate=2))
    with pytest.raises(RuntimeError, match="sampling_rate must be in"):
        server.start(timeout=120)


def _drift(stats_dir, prefix, out) -> subprocess.CompletedProcess:
    return subprocess.run([*TFGATE, "drift", "--stats", str(stats_dir), "--logs", str(prefix), "-o", str(out),
                           "--format", "json"], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("case", "drifted"), [("unchanged", []), ("income x3", ["median_income"]),
                                               ("unseen ocean_proximity", [CATEGORICAL])])
def test_drift_of_served_traffic(case, drifted, model_server_factory, housing_model_base, housing_pipeline_dir,
                                 splits, tmp_path):
    """The test split served through the model server, against the pipeline's own training statistics."""
    prefix = tmp_path / "logs" / MODEL
    server = model_server_factory(model_config=logging_config(MODEL, housing_model_base, prefix))
    kwargs = {"income x3": {"income_factor": 3.0}, "unseen ocean_proximity": {"ocean": "ON THE MOON"}}.get(case, {})
    requests = _requests(splits["test"], batch=16, **kwargs)
    assert send(server.grpc_target, requests)[1] == 0
    server.stop()
    result = _drift(housing_pipeline_dir, prefix, tmp_path / "drift")
    assert result.returncode == (1 if drifted else 0), result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == len(splits["test"]) and report["drifted"] == drifted


def test_warmup_file_from_real_traffic_loads(model_server_factory, housing_model_base, splits, tmp_path):
    prefix = tmp_path / "logs" / MODEL
    server = model_server_factory(model_config=logging_config(MODEL, housing_model_base, prefix))
    send(server.grpc_target, _requests(splits["test"][:50], batch=5))
    server.stop()
    base = tmp_path / "models" / MODEL
    version = sorted((p for p in housing_model_base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))[-1]
    shutil.copytree(version, base / version.name)
    warm = base / version.name / "assets.extra" / "tf_serving_warmup_requests"
    result = subprocess.run([*TFGATE, "logs", "to-warmup", str(prefix), "-o", str(warm), "--max-records", "7"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = model_server_factory(model_name=MODEL, model_base_path=base)
    log = loaded.log_path.read_text()
    assert "Number of warmup records read: 7." in log
    loaded.stop()
