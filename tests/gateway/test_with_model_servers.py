"""Two real `tfgate model-server` replicas behind the gateway, serving a tiny exact SavedModel.

The model has the housing signature (9 raw inputs -> median_house_value), so the typed API,
the pass-through and the canary split can all be checked against exact answers:
value = median_income * 1000 * version + (0 if total_bedrooms is NaN else 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tfgate.serving import processes
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .helpers import REPO, Gateway

FLOATS = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
          "households", "median_income"]


def _save_model(base, version: int) -> None:
    import tensorflow as tf

    spec = {n: tf.TensorSpec([None], tf.float32, name=n) for n in FLOATS}
    spec["ocean_proximity"] = tf.TensorSpec([None], tf.string, name="ocean_proximity")

    class M(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, f):
            beds = tf.where(tf.math.is_nan(f["total_bedrooms"]), 0.0, 1.0)
            return {"median_house_value": f["median_income"] * 1000.0 * version + beds}

    m = M()
    tf.saved_model.save(m, str(base / str(version)), signatures={"serving_default": m.serve})


def ModelServer(tmp, config_file) -> processes.ModelServer:
    """A replica started by the one launcher; ready once its models are loaded (health SERVING)."""
    return processes.start_model_server(tmp, model_config=str(config_file), rest=False,
                                        flags=["--grpc_shutdown_grace_seconds=2"], timeout=120)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    if subprocess.run([sys.executable, "-m", "tfgate.clients.cli", "model-server", "--help"], cwd=REPO,
                      capture_output=True).returncode != 0:
        pytest.skip("tfgate model-server not available")
    tmp = tmp_path_factory.mktemp("ms")
    base = tmp / "housing"
    for v in (1, 2):
        _save_model(base, v)
    cfg = tmp / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "housing" base_path: "{base}" model_platform: '
                   '"tensorflow" model_version_policy { all {} } } }\n')
    servers = [ModelServer(tmp, cfg) for _ in range(2)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def gw(replicas, tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("gw-ms"), {"models": {"housing": {
        "targets": [r.target for r in replicas], "labels": {"stable": 1, "canary": 2},
        "split": {"stable": 90, "canary": 10}, "sticky_key": "x-user",
        "shadow": {"label": "canary", "percent": 100}}}})
    yield g
    g.stop()


def records(n, seed=0):
    rng = np.random.default_rng(seed)
    return [pb.HousingRecord(longitude=-120, latitude=36, housing_median_age=20, total_rooms=1000,
                             total_bedrooms=None if i % 3 == 0 else 200.0, population=500, households=100,
                             median_income=float(rng.uniform(1, 10)), ocean_proximity="INLAND")
            for i in range(n)]


def direct_predict(target, recs, version):
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="housing"))
    req.model_spec.version.value = version
    for name in FLOATS:
        vals = [getattr(r, name) if name != "total_bedrooms" or r.HasField(name) else float("nan")
                for r in recs]
        req.inputs[name].CopyFrom(_tp(np.array(vals, np.float32)))
    req.inputs["ocean_proximity"].CopyFrom(_tp(np.array([r.ocean_proximity.encode() for r in recs])))
    with grpc.insecure_channel(target) as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=10)
    return resp


def _tp(arr):
    import tensorflow as tf

    return tf.make_tensor_proto(arr)


def test_typed_answers_equal_direct_serving_default(gw, replicas):
    recs = records(7)
    with gw.channel() as ch:
        out = pb_grpc.InferenceGatewayStub(ch).PredictHousing(
            pb.PredictHousingRequest(records=recs, model=pb.ModelRef(label="stable")), timeout=10)
    direct = direct_predict(replicas[0].target, recs, 1)
    import tensorflow as tf

    expect = tf.make_ndarray(direct.outputs["median_house_value"])
    assert out.served_by.version == 1 and out.served_by.label == "stable"
    np.testing.assert_array_equal(np.array(out.median_house_values, np.float32), expect)


def test_stock_tf_serving_client_through_the_gateway(gw, replicas):
    recs = records(3, seed=1)
    direct = direct_predict(replicas[1].target, recs, 2)
    via = direct_predict(gw.target, recs, 2)
    assert via.outputs["median_house_value"] == direct.outputs["median_house_value"]
    assert via.model_spec.version.value == 2


def test_canary_split_within_three_points_and_sticky(gw):
    req = pb.PredictHousingRequest(records=records(1))
    with gw.channel() as ch:
        stub = pb_grpc.InferenceGatewayStub(ch)
        with ThreadPoolExecutor(8) as pool:
            versions = Counter(pool.map(lambda _: stub.PredictHousing(req, timeout=10).served_by.version,
                                        range(2000)))
        sticky = {stub.PredictHousing(req, metadata=(("x-user", "alice"),), timeout=10).served_by.version
                  for _ in range(20)}
    assert abs(versions[2] / 2000 * 100 - 10) <= 3, versions
    assert len(sticky) == 1


def test_killing_a_replica_mid_run_loses_no_request(tmp_path, replicas):
    victim_cfg = replicas[0].config_path
    victim = ModelServer(tmp_path, victim_cfg)
    g = Gateway(tmp_path, {"models": {"housing": {"targets": [victim.target, replicas[1].target]}}})
    try:
        req = pb.PredictHousingRequest(records=records(2))
        with g.channel() as ch:
            stub = pb_grpc.InferenceGatewayStub(ch)
            results = []

            def one(i):
                if i == 100:
                    victim.proc.send_signal(signal.SIGKILL)
                return stub.PredictHousing(req, timeout=10).median_house_values

            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(one, range(400)))
        assert len(results) == 400 and all(len(r) == 2 for r in results)
    finally:
        victim.stop()
        assert g.stop() == 0


def test_graceful_shutdown_under_load_drops_nothing(tmp_path, replicas):
    g = Gateway(tmp_path, {"shutdown": {"readiness_seconds": 1.0, "grace_seconds": 10},
                           "models": {"housing": {"targets": [r.target for r in replicas]}}})
    req = pb.PredictHousingRequest(records=records(2))
    errors, ok = [], [0]
    serving = threading.Event()
    serving.set()
    with g.channel() as ch:
        stub = pb_grpc.InferenceGatewayStub(ch)

        def watch():
            for r in health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=30):
                if r.status != 1:
                    serving.clear()
                    return

        def load():
            while serving.is_set():  # a client stops sending once the gateway reports NOT_SERVING
                try:
                    stub.PredictHousing(req, timeout=10)
                    ok[0] += 1
                except grpc.RpcError as exc:
                    errors.append(exc.code())

        threading.Thread(target=watch, daemon=True).start()
        threads = [threading.Thread(target=load) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        g.terminate()
        for t in threads:
            t.join(30)
    assert g.stop() == 0
    assert not errors and ok[0] > 20, (errors, ok)
    assert os.path.exists(g.log_path) and '"msg": "stopped"' in g.log()


def _shadow_counts(g) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{g.metrics_port}/metrics", timeout=5).read().decode()
    out = Counter()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "tfgate_gateway_shadow_total" and s.labels["model"] == "housing":
                out[s.labels["result"]] += s.value
    return out


def _settled(g) -> dict[str, float]:
    """Shadow counts once earlier tests' shadow copies have finished."""
    last = _shadow_counts(g)
    while True:
        time.sleep(0.5)
        now = _shadow_counts(g)
        if now == last:
            return now
        last = now


def test_shadow_copies_are_compared_and_counted(gw):
    # Shadow is version 2 (canary); the model answers differently per version, so a primary on
    # stable must count a mismatch and one on canary a match. Callers get the primary's answer.
    before = _settled(gw)
    recs = records(2, seed=5)
    with gw.channel() as ch:
        stub = pb_grpc.InferenceGatewayStub(ch)
        for label, n in (("stable", 5), ("canary", 3)):
            for _ in range(n):
                out = stub.PredictHousing(pb.PredictHousingRequest(records=recs, model=pb.ModelRef(label=label)),
                                          timeout=10)
                assert out.served_by.label == label
                version = 1 if label == "stable" else 2
                assert out.median_house_values[1] == pytest.approx(  # record 1 has bedrooms: +1
                    recs[1].median_income * 1000 * version + 1, rel=1e-6)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        after = _shadow_counts(gw)
        if sum(after.values()) - sum(before.values()) >= 8:
            break
        time.sleep(0.1)
    delta = {k: after[k] - before[k] for k in ("match", "mismatch", "error", "dropped")}
    assert delta == {"match": 3, "mismatch": 5, "error": 0, "dropped": 0}, delta


def test_generic_predict_checks_inputs_against_the_signature(gw):
    from tfgate.v1 import tensor_pb2

    def t(arr, dtype=tensor_pb2.DATA_TYPE_FLOAT32):
        return tensor_pb2.Tensor(dtype=dtype, shape=list(arr.shape), content=arr.tobytes())

    inputs = {n: t(np.full(2, 2.0, np.float32)) for n in FLOATS}
    inputs["ocean_proximity"] = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_STRING, shape=[2],
                                                  string_values=[b"INLAND"] * 2)
    with gw.channel() as ch:
        stub = pb_grpc.InferenceGatewayStub(ch)
        ref = pb.ModelRef(name="housing", label="canary")
        out = stub.Predict(pb.PredictRequest(model=ref, inputs=inputs), timeout=10)
        got = np.frombuffer(out.outputs["median_house_value"].content, "<f4")
        np.testing.assert_array_equal(got, [2.0 * 1000 * 2 + 1] * 2)
        bad = {
            "inputs[median_income].dtype: the model expects DT_FLOAT, got DT_DOUBLE":
                {**inputs, "median_income": t(np.full(2, 2.0), tensor_pb2.DATA_TYPE_FLOAT64)},
            "inputs[population].shape": {**inputs, "population": t(np.full((2, 1), 2.0, np.float32))},
            "inputs[extra]: signature 'serving_default' has no input": {**inputs, "extra": inputs["latitude"]},
            "inputs: missing households": {k: v for k, v in inputs.items() if k != "households"},
        }
        for expect, given in bad.items():
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(pb.PredictRequest(model=ref, inputs=given), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details().startswith(expect), err.value.details()
