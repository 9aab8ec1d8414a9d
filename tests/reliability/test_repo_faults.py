"""Model repository faults while a good version serves: a corrupt saved_model.pb, a version without
the requested signature, a version directory created empty and filled later, a version removed
while serving. The good version never stops answering; status and logs say what happened."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.fixtures_servers import start_model_server
from tests.model_server.helpers import predict_request
from tfgate.serving.processes import model_config_text

from .models import make_half

AVAILABLE, END = 30, 50


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("repo") / "half"
    base.mkdir()
    make_half(base, 1)
    server = start_model_server(tmp_path_factory.mktemp("repo-ms"),
                                model_config=model_config_text({"half": str(base)}, policy="all {}"),
                                flags=["--file_system_poll_wait_seconds=1", "--max_num_load_retries=1",
                                       "--load_retry_interval_micros=100000"], rest=False)
    ch = grpc.insecure_channel(server.grpc_target)
    state = {"ok": 0, "failed": [], "stop": threading.Event()}

    def hammer():  # the good version, asked for by number, for the whole module
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        end = time.monotonic() + 300
        while not state["stop"].is_set() and time.monotonic() < end:
            try:
                y = stub.Predict(predict_request("half", {"x": np.float32([2.0])}, version=1), timeout=10)
                assert list(y.outputs["y"].float_val) == [2.0]
                state["ok"] += 1
            except (grpc.RpcError, AssertionError) as exc:
                state["failed"].append(repr(exc)[:300])
            time.sleep(0.01)

    th = threading.Thread(target=hammer, daemon=True)
    th.start()
    yield base, server, ch, state
    state["stop"].set()
    th.join(15)
    ch.close()
    server.stop()


def _status(ch, version: int | None = None):
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "half"
    if version is not None:
        req.model_spec.version.value = version
    return model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(req, timeout=5).model_version_status


def _wait(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    return False


def _predict(ch, version: int, signature: str = ""):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
    return stub.Predict(predict_request("half", {"x": np.float32([2.0])}, version=version, signature=signature),
                        timeout=10)


def test_corrupt_saved_model_pb(repo):
    base, server, ch, state = repo
    shutil.copytree(base / "1", base / ".tmp-2")
    (base / ".tmp-2" / "saved_model.pb").write_bytes(b"\x08\x01this is not a SavedModel" * 10)
    (base / ".tmp-2").rename(base / "2")
    assert _wait(lambda: any(v.version == 2 and v.state == END and v.status.error_message
                             for v in _status(ch, 2))), server.log()[-3000:]
    v2 = _status(ch, 2)[0]
    assert v2.status.error_code != 0 and v2.status.error_message
    assert "Loading servable: {name: half version: 2} failed" in server.log()
    assert [v.state for v in _status(ch, 1)] == [AVAILABLE]
    with pytest.raises(grpc.RpcError) as info:
        _predict(ch, 2)
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE), info.value
    assert state["failed"] == []


def test_version_without_the_signature(repo, tmp_path):
    import tensorflow as tf

    base, server, ch, state = repo

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def f(self, x):
            return {"z": x}

    m = Other()
    tf.saved_model.save(m, str(tmp_path / "3"), signatures={"other": m.f})
    shutil.move(str(tmp_path / "3"), str(base / "3"))
    assert _wait(lambda: [v.state for v in _status(ch, 3)] == [AVAILABLE]), server.log()[-3000:]
    with pytest.raises(grpc.RpcError) as info:
        _predict(ch, 3)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'Serving signature key "serving_default" not found' in info.value.details()
    assert _predict(ch, 3, signature="other").outputs["z"].float_val == [2.0]
    assert state["failed"] == []


def test_empty_version_dir_filled_later(repo):
    base, server, ch, state = repo
    (base / "4").mkdir()
    time.sleep(2.5)  # two polls: an empty folder is not a version
    with pytest.raises(grpc.RpcError) as info:
        _status(ch, 4)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    shutil.copytree(base / "1" / "variables", base / "4" / "variables")
    shutil.copy(base / "1" / "saved_model.pb", base / "4" / "saved_model.pb")  # last, as README says
    assert _wait(lambda: [v.state for v in _status(ch, 4)] == [AVAILABLE]), server.log()[-3000:]
    assert _predict(ch, 4).outputs["y"].float_val == [2.0]
    assert state["failed"] == []


def test_version_removed_while_serving(repo):
    base, server, ch, state = repo
    stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
    codes: list[str] = []
    stop = threading.Event()

    def ask_v4():
        while not stop.is_set() and len(codes) < 5000:
            try:
                stub.Predict(predict_request("half", {"x": np.float32([2.0])}, version=4), timeout=10)
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)

    th = threading.Thread(target=ask_v4, daemon=True)
    th.start()
    time.sleep(0.5)
    shutil.rmtree(base / "4")
    assert _wait(lambda: all(v.state == END for v in _status(ch, 4))), server.log()[-3000:]
    time.sleep(0.5)
    stop.set()
    th.join(15)
    assert "Unloading servable version {name: half version: 4}" in server.log()
    # Requests for the removed version: served until it is unloaded, then NOT_FOUND; nothing else.
    assert set(codes) <= {"OK", "NOT_FOUND"} and codes[0] == "OK" and codes[-1] == "NOT_FOUND", set(codes)
    assert [v.state for v in _status(ch, 1)] == [AVAILABLE]
    assert state["ok"] > 0 and state["failed"] == []
