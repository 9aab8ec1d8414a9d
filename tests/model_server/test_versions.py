"""Version lifecycle on a live server: publishing under load, failed loads, config reload by file
poll and by RPC, labels, and SIGTERM drain. Tests run in file order against one server."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.model_server import models
from tests.model_server.helpers import http, predict_request, stubs, wait_for

State = get_model_status_pb2.ModelVersionStatus.State


def _config(d, hp_extra: str = "", tf1: bool = False) -> str:
    text = f'model_config_list {{\n  config {{ name: "hp" base_path: "{d / "hp"}" model_platform: "tensorflow" ' \
           f"{hp_extra} }}\n"
    if tf1:
        text += f'  config {{ name: "tf1" base_path: "{d / "tf1"}" model_platform: "tensorflow" }}\n'
    return text + "}\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory, model_server_factory):
    d = tmp_path_factory.mktemp("versions")
    models.make_half_plus(d / "hp", 1, b=2.0)
    models.make_tf1_half_plus_two(d / "tf1", 1)
    (d / "models.config").write_text(_config(d))
    server = model_server_factory(
        d, model_config=str(d / "models.config"),
        flags=["--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
               "--max_num_load_retries=1", "--load_retry_interval_micros=200000"])
    ch, pred, model = stubs(server.grpc_target)
    yield d, server, pred, model
    ch.close()


def status(model, name: str) -> dict[int, tuple[int, str]]:
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = name
    try:
        resp = model.GetModelStatus(req, timeout=10)
    except grpc.RpcError:
        return {}
    return {s.version: (s.state, s.status.error_message) for s in resp.model_version_status}


def test_new_version_published_under_load_fails_no_request(env):
    d, _, pred, model = env
    versions: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                r = pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}), timeout=30)
                v = r.model_spec.version.value
                assert r.outputs["y"].float_val[0] == {1: 3.0, 2: 4.0}[v]
                versions.append(v)
            except Exception as e:  # any failure counts against the swap
                errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(versions) > 20, what="traffic on v1")
        models.make_half_plus(d / "hp", 2, b=3.0)  # written elsewhere, renamed into place
        wait_for(lambda: status(model, "hp").get(1, (None,))[0] == State.END, what="v1 unloaded")
        n = len(versions)
        wait_for(lambda: len(versions) > n + 20, what="traffic on v2")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert versions[0] == 1 and versions[-1] == 2
    assert status(model, "hp")[2][0] == State.AVAILABLE


def test_failed_version_is_reported_and_never_replaces_a_good_one(env):
    d, _, pred, model = env
    bad = d / "hp" / "3"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(b"not a SavedModel")
    st = wait_for(lambda: (s := status(model, "hp")).get(3, (None,))[0] == State.END and s, what="v3 failed")
    assert st[3][1], "the load error is reported in the status"
    assert st[2][0] == State.AVAILABLE
    r = pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}), timeout=30)
    assert r.model_spec.version.value == 2
    shutil.rmtree(bad)
    wait_for(lambda: 3 not in status(model, "hp"), what="failed version forgotten after removal")


def test_reload_by_config_file_poll(env):
    d, server, pred, model = env
    (d / "models.config").write_text(
        _config(d, "model_version_policy { latest { num_versions: 2 } }", tf1=True))
    wait_for(lambda: status(model, "tf1").get(1, (None,))[0] == State.AVAILABLE, what="tf1 loaded")
    wait_for(lambda: status(model, "hp").get(1, (None,))[0] == State.AVAILABLE, what="hp v1 back")
    r = pred.Predict(predict_request("tf1", {"x": np.array([2.0], np.float32)}), timeout=30)
    assert r.outputs["y"].float_val[0] == 3.0
    assert http("GET", server.rest_url + "/v1/models/tf1")[0] == 200


def test_reload_by_rpc_replaces_config_and_sets_labels(env):
    d, _, pred, model = env
    cfg = model_server_config_pb2.ModelServerConfig()
    mc = cfg.model_config_list.config.add(name="hp", base_path=str(d / "hp"), model_platform="tensorflow")
    mc.model_version_policy.all.SetInParent()
    mc.version_labels["stable"] = 1
    mc.version_labels["canary"] = 2
    resp = model.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=cfg), timeout=60)
    assert resp.status.error_code == 0
    # tf1 was omitted: it is unloaded.
    wait_for(lambda: status(model, "tf1").get(1, (None,))[0] == State.END, what="tf1 unloaded")
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("tf1", {"x": np.array([2.0], np.float32)}), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    r = pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}, label="stable"), timeout=30)
    assert (r.model_spec.version.value, r.outputs["y"].float_val[0]) == (1, 3.0)
    # A label may only point at an AVAILABLE version.
    mc.version_labels["next"] = 9
    with pytest.raises(grpc.RpcError) as e:
        model.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=cfg), timeout=60)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == ("Request to assign label to version 9 of model hp, which is not currently "
                                 "available for inference")


def test_sigterm_drains_in_flight_requests_then_exits_0(env):
    _, server, pred, _ = env
    slow = predict_request("hp", {"x": np.array([1.0], np.float32), "n": np.array([3000], np.int32)},
                           version=2, signature="slow")
    result = {}

    def call():
        try:
            result["resp"] = pred.Predict(slow, timeout=60)
        except grpc.RpcError as e:
            result["err"] = e

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.4)  # the request is running
    code = server.stop()
    t.join()
    assert code == 0
    assert "err" not in result, result.get("err")
    assert result["resp"].outputs["y"].float_val[0] == 3.5
    assert "draining in-flight requests" in server.log()
