"""The model server loads and runs SavedModels the way TF Serving does (TensorFlow's session loader):
Keras 3 `model.export()` archives and TF1 SavedModels of TF 1.0's era serve; the Keras pattern TF
Serving cannot run fails here too, with TensorFlow's status and message; the graph, not the
signature's declared shape, decides which input shapes it takes (gRPC and REST, batching on)."""

from __future__ import annotations

import re

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.model_server import models
from tests.model_server.helpers import (
    classify_request,
    examples,
    http,
    out,
    predict_request,
    regress_request,
    stubs,
    wait_for,
)
from tfgate.serving.processes import model_config_text

State = get_model_status_pb2.ModelVersionStatus.State
MISSING_VARIABLE = re.compile(r"^Could not find variable \S*out/(kernel|bias)\. ")  # the Dense layer's, unrestored


@pytest.fixture(scope="module")
def env(tmp_path_factory, model_server_factory):
    d = tmp_path_factory.mktemp("session-path")
    models.make_keras_export(d / "kexport")
    models.make_keras_untracked(d / "untracked")
    models.make_tf1_unknown_shapes(d / "tf1old")
    models.make_trailing_one(d / "trailing")
    entries = {n: str(d / n) for n in ("kexport", "untracked", "tf1old", "trailing")}
    server = model_server_factory(workdir=d / "run", model_config=model_config_text(entries),
                                  flags=["--enable_batching", "--max_num_load_retries=0"])
    _, pred, model = stubs(server.grpc_target)
    return d, server, pred, model, entries


def _reload(model, entries: dict[str, str]) -> None:
    """HandleReloadConfigRequest with exactly these {name: base_path} models."""
    cfg = model_server_config_pb2.ModelServerConfig()
    for name, path in entries.items():
        cfg.model_config_list.config.add(name=name, base_path=path, model_platform="tensorflow")
    resp = model.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=cfg), timeout=120)
    assert resp.status.error_code == 0, resp.status.error_message


def test_keras_export_archive_serves(env):
    _, server, pred, _, _ = env
    x = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 0.0]], np.float32)
    r = pred.Predict(predict_request("kexport", {"features": x}), timeout=30)
    np.testing.assert_allclose(out(r, "output_0"), [[6.5], [4.5]])
    status, body = http("POST", server.rest_url + "/v1/models/kexport:predict", {"instances": x.tolist()})
    assert status == 200 and body == {"predictions": [[6.5], [4.5]]}


def test_untracked_keras_variables_fail_as_in_tf_serving(env):
    """TF Serving loads this version (restore and init ops succeed) and fails every request."""
    _, server, pred, model, _ = env
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "untracked"
    assert model.GetModelStatus(req, timeout=30).model_version_status[0].state == State.AVAILABLE
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("untracked", {"features": np.ones([1, 3], np.float32)}), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert MISSING_VARIABLE.search(e.value.details()), e.value.details()
    status, body = http("POST", server.rest_url + "/v1/models/untracked:predict", {"instances": [[1.0, 1.0, 1.0]]})
    assert status == 400 and MISSING_VARIABLE.search(body["error"]), body


def test_untracked_keras_with_warmup_is_refused_at_load(env):
    """With warm-up records, TF Serving runs them at load: the version ends with the reason."""
    d, _, _, model, entries = env
    models.make_keras_untracked(d / "untracked_warm", warmup=True)
    _reload(model, {**entries, "untracked_warm": str(d / "untracked_warm")})

    def ended():
        req = get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = "untracked_warm"
        try:
            st = model.GetModelStatus(req, timeout=30).model_version_status[0]
        except grpc.RpcError:
            return None
        return st if st.state == State.END else None

    st = wait_for(ended, what="untracked_warm load ended")
    assert st.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert MISSING_VARIABLE.search(st.status.error_message), st.status.error_message


def test_tf1_savedmodel_of_tf_1_0_serves(env):
    _, server, pred, _, _ = env
    r = pred.Predict(predict_request("tf1old", {"x": np.array([[1.0], [2.0]], np.float32)}), timeout=30)
    np.testing.assert_allclose(out(r, "y"), [[3.5], [4.0]])
    r = pred.Classify(classify_request("tf1old", examples("x", [2.0]), signature="classify_x_to_y"), timeout=30)
    assert r.result.classifications[0].classes[0].score == 4.0
    r = pred.Regress(regress_request("tf1old", examples("x", [2.0, 4.0]), signature="regress_x_to_y"), timeout=30)
    assert [x.value for x in r.result.regressions] == [4.0, 5.0]
    # Unknown rank: any shape goes, a scalar included.
    status, body = http("POST", server.rest_url + "/v1/models/tf1old:predict", {"inputs": 2.0})
    assert status == 200 and body == {"outputs": 4.0}


def test_tf1_savedmodel_added_by_reload(env):
    d, _, pred, model, entries = env
    models.make_tf1_unknown_shapes(d / "tf1late", c=1.0)
    _reload(model, {**entries, "tf1late": str(d / "tf1late")})

    def predicted():
        try:
            return pred.Predict(predict_request("tf1late", {"x": np.array([4.0], np.float32)}), timeout=30)
        except grpc.RpcError:
            return None

    assert out(wait_for(predicted, what="tf1late served"), "y").tolist() == [3.0]
    r = pred.Regress(regress_request("tf1late", examples("x", [2.0]), signature="regress_x_to_y"), timeout=30)
    assert r.result.regressions[0].value == 2.0


def test_rank_1_instances_on_a_trailing_1_input(env):
    """TF Serving's REST documentation call on half_plus_two ([?,1]): the graph takes [3]."""
    _, server, pred, _, _ = env
    url = server.rest_url + "/v1/models/trailing:predict"
    assert http("POST", url, {"instances": [1.0, 2.0, 5.0]}) == (200, {"predictions": [2.5, 3.0, 4.5]})
    assert http("POST", url, {"inputs": [1.0, 2.0, 5.0]}) == (200, {"outputs": [2.5, 3.0, 4.5]})
    assert http("POST", url, {"instances": [[1.0], [2.0]]}) == (200, {"predictions": [[2.5], [3.0]]})
    r = pred.Predict(predict_request("trailing", {"x": np.array([1.0], np.float32)}), timeout=30)
    assert out(r, "y").tolist() == [2.5]


def test_shape_the_graph_refuses_is_invalid_argument_with_tensorflows_message(env):
    _, server, pred, _, _ = env
    # A [2,3] matrix times a [3,1] kernel is fine; [2,2] is not: the MatMul says so.
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("kexport", {"features": np.ones([2, 2], np.float32)}), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Matrix size-incompatible" in e.value.details(), e.value.details()
    status, body = http("POST", server.rest_url + "/v1/models/kexport:predict", {"instances": [[1.0, 2.0]]})
    assert status == 400 and "Matrix size-incompatible" in body["error"], body
    # The server is unharmed.
    r = pred.Predict(predict_request("kexport", {"features": np.ones([1, 3], np.float32)}), timeout=30)
    assert out(r, "output_0").tolist() == [[6.5]]


def test_batch_mates_with_other_trailing_shapes_do_not_fail_each_other(env):
    """Batching concatenates along the first dimension only: [1] and [1,1] requests to one model and
    requests another model's graph refuses run side by side, each with its own answer."""
    import concurrent.futures as cf

    _, _, pred, _, _ = env

    def call(i):
        if i % 3 == 0:
            return out(pred.Predict(predict_request("trailing", {"x": np.array([float(i)], np.float32)}),
                                    timeout=30), "y").tolist()
        if i % 3 == 1:
            return out(pred.Predict(predict_request("trailing", {"x": np.array([[float(i)]], np.float32)}),
                                    timeout=30), "y").tolist()
        try:
            pred.Predict(predict_request("kexport", {"features": np.ones([1, 2], np.float32)}), timeout=30)
        except grpc.RpcError as e:
            return e.code()
        return "no error"

    with cf.ThreadPoolExecutor(12) as ex:
        got = list(ex.map(call, range(36)))
    for i, g in enumerate(got):
        want = [0.5 * i + 2] if i % 3 == 0 else [[0.5 * i + 2]] if i % 3 == 1 else grpc.StatusCode.INVALID_ARGUMENT
        assert g == want, (i, g)
