"""Gateway benchmark, cases (d) pass-through Predict and (e) typed PredictHousing, beside direct
calls to the model server in the same run. Writes benchmarks/results/gateway.json.

Targets (issue 5): at concurrency 1 the pass-through adds <= 0.5 ms to p50; at concurrency 64
it keeps >= 80% of the direct QPS. Uses a tiny housing-signature SavedModel so the model's own
cost does not hide the gateway's.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.gateway.helpers import Gateway  # noqa: E402
from tests.gateway.test_with_model_servers import (  # noqa: E402
    FLOATS,
    ModelServer,
    _save_model,
    _tp,
    records,
)


def predict_request(n: int) -> bytes:
    import numpy as np
    from tensorflow_serving.apis import model_pb2, predict_pb2

    recs = records(n)
    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="housing"))
    for name in FLOATS:
        req.inputs[name].CopyFrom(_tp(np.array([getattr(r, name) for r in recs], np.float32)))
    req.inputs["ocean_proximity"].CopyFrom(_tp(np.array([b"INLAND"] * n)))
    return req.SerializeToString()


def latency_p50(call, payload, n=300) -> float:
    for _ in range(20):
        call(payload, timeout=10)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call(payload, timeout=10)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def qps(call, payload, concurrency=64, total=3000) -> float:
    sent = done = 0
    t0 = time.perf_counter()
    futures = []
    while done < total:
        while sent < total and len(futures) < concurrency:
            futures.append(call.future(payload, timeout=30))
            sent += 1
        futures.pop(0).result()
        done += 1
    return total / (time.perf_counter() - t0)


def main() -> None:
    from tfgate.v1 import gateway_pb2 as pb

    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    _save_model(tmp / "housing", 1)
    cfg = tmp / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "housing" base_path: "{tmp / "housing"}" '
                   'model_platform: "tensorflow" } }\n')
    ms = ModelServer(tmp, cfg)
    gw = Gateway(tmp, {"log_level": "warning", "models": {"housing": {"targets": [ms.target]}}})
    out = {}
    try:
        path = "/tensorflow.serving.PredictionService/Predict"
        payload = predict_request(8)
        typed = pb.PredictHousingRequest(records=records(8)).SerializeToString()
        with grpc.insecure_channel(ms.target) as d, grpc.insecure_channel(gw.target) as g:
            direct, via = d.unary_unary(path), g.unary_unary(path)
            typed_call = g.unary_unary("/tfgate.v1.InferenceGateway/PredictHousing")
            out["d_c1_p50_ms"] = {"direct": latency_p50(direct, payload), "gateway": latency_p50(via, payload)}
            out["d_c64_qps"] = {"direct": qps(direct, payload), "gateway": qps(via, payload)}
            out["e_housing_c1_p50_ms"] = latency_p50(typed_call, typed)
            out["e_housing_c64_qps"] = qps(typed_call, typed)
    finally:
        gw.stop()
        ms.stop()
    d1, d64 = out["d_c1_p50_ms"], out["d_c64_qps"]
    out["added_p50_ms"] = d1["gateway"] - d1["direct"]
    out["qps_ratio"] = d64["gateway"] / d64["direct"]
    out["targets_met"] = {"added_p50<=0.5ms": out["added_p50_ms"] <= 0.5, "qps_ratio>=0.8": out["qps_ratio"] >= 0.8}
    dest = REPO / "benchmarks" / "results" / "gateway.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
