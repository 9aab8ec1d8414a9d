"""The floor servers serving_bench.py measures beside the real ones: an echo that answers Predict
without work, and a proxy that forwards the bytes untouched."""

import grpc
from tensorflow_serving.apis import predict_pb2

from benchmarks.serving_bench import start_floor

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def test_echo_answers_and_proxy_forwards(tmp_path):
    echo = start_floor("echo", tmp_path)
    try:
        proxy = start_floor("proxy", tmp_path, echo.grpc)
        try:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "housing"
            for target in (echo.grpc, proxy.grpc):
                with grpc.insecure_channel(target) as channel:
                    call = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
                    raw = call(request.SerializeToString(), timeout=10)
                    assert predict_pb2.PredictResponse.FromString(raw).model_spec.name == "m"
        finally:
            assert proxy.stop() == 0
    finally:
        assert echo.stop() == 0
