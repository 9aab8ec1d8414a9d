"""The real gateway in front of a real `tfgate model-server` replica: a rewritten bearer-token file
takes effect while the gateway runs, and a request larger than gRPC's 256 KiB retry buffer is still
retried on another replica when the first one is down."""

from __future__ import annotations

import time
import urllib.request

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.model_server import models
from tests.model_server.helpers import metric, out, predict_request

from .helpers import Gateway, free_port


@pytest.fixture(scope="module")
def replica(tmp_path_factory, model_server_factory):
    """One model server with hp version 1: y = 0.5 x + 2."""
    d = tmp_path_factory.mktemp("gw-replica")
    models.make_half_plus(d / "hp", 1, b=2.0)
    return model_server_factory(d, model_name="hp", model_base_path=d / "hp", rest=False)


def predict(gw: Gateway, x: np.ndarray, token: str | None):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with gw.channel() as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        return stub.Predict(predict_request("hp", {"x": x}), metadata=metadata, timeout=30)


def code_of(gw: Gateway, token: str) -> grpc.StatusCode:
    try:
        predict(gw, np.array([2.0], np.float32), token)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_rewritten_token_file_replaces_the_tokens_while_running(tmp_path, replica):
    tokens = tmp_path / "tokens"
    tokens.write_text("old-token\n")
    gw = Gateway(tmp_path, {"auth": {"tokens_file": str(tokens)},
                            "models": {"hp": {"targets": [replica.grpc_target]}}})
    try:
        assert code_of(gw, "old-token") == grpc.StatusCode.OK
        assert code_of(gw, "new-token") == grpc.StatusCode.UNAUTHENTICATED

        tokens.write_text("# rotated\nnew-token\n")
        deadline = time.monotonic() + 30  # the file is re-checked every 2 s
        while code_of(gw, "new-token") != grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "the rewritten token file was never picked up"
            time.sleep(0.2)
        assert code_of(gw, "old-token") == grpc.StatusCode.UNAUTHENTICATED
        assert list(predict(gw, np.array([2.0], np.float32), "new-token").outputs["y"].float_val) == [3.0]
    finally:
        assert gw.stop() == 0


def test_request_over_256_kib_is_retried_on_the_next_replica(tmp_path, replica):
    down = f"127.0.0.1:{free_port()}"  # nothing listens: UNAVAILABLE at once
    gw = Gateway(tmp_path, {"models": {"hp": {"targets": [down, replica.grpc_target]}}})
    try:
        x = np.arange(100_000, dtype=np.float32)
        assert predict_request("hp", {"x": x}).ByteSize() > 256 * 1024
        # The gateway starts its rotation at a random replica and alternates, so one of the first
        # two requests goes to the replica that is down and has to be retried.
        for _ in range(3):
            np.testing.assert_array_equal(out(predict(gw, x, None), "y"), 0.5 * x + 2)
        text = urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5).read().decode()
        assert metric(text, "tfgate_gateway_retries_total", model="hp") >= 1
        assert metric(text, "tfgate_gateway_requests_total", model="hp", code="OK") == 3
    finally:
        assert gw.stop() == 0

