"""k8s/kserve: the InferenceServices that run `tfgate model-server` as KServe custom predictors, offline.

Rendered with kubectl kustomize, then built strictly from the kserve SDK's own typed models (in the v2
clients' venv, .venv/oip): unknown fields, wrong types and missing required fields fail. The predictor's
ports, probes and storage agree with its model-server flags, and its args start a real model server whose
probes pass and which answers v2 inference on the port KServe routes to.
"""

from __future__ import annotations

import pytest
import yaml

from tests.k8s.conftest import K8S, kustomize
from tests.oip.conftest import OIP_PYTHON, run_client


@pytest.fixture(scope="module")
def isvc_text() -> str:
    return kustomize(K8S / "kserve")


def test_inferenceservices_match_kserve_models(isvc_text, tmp_path):
    assert OIP_PYTHON.exists(), f"{OIP_PYTHON} missing: run `make install` (it builds the v2 clients' venv)"
    path = tmp_path / "isvc.yaml"
    path.write_text(isvc_text)
    assert run_client(OIP_PYTHON, "kserve_schema.py", path) == {"checked": 2}
    # The check can fail: a misspelt field is refused.
    path.write_text(isvc_text.replace("readinessProbe", "readinesProbe", 1))
    with pytest.raises(AssertionError, match="unknown field 'readinesProbe' for V1Container"):
        run_client(OIP_PYTHON, "kserve_schema.py", path)


def _flags(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").partition("=")[::2] for a in args)


def test_predictors_expose_the_model_servers_v2_ports(isvc_text):
    services = {d["metadata"]["name"]: d for d in yaml.safe_load_all(isvc_text)}
    assert set(services) == {"housing", "fashion"}
    for name, isvc in services.items():
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        (c,) = isvc["spec"]["predictor"]["containers"]
        assert c["name"] == "kserve-container" and c["command"] == ["tfgate", "model-server"]
        flags = _flags(c["args"])
        assert flags["model_name"] == name and flags["model_base_path"] == "/mnt/models"
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["STORAGE_URI"] == f"pvc://model-store/{name}"  # the PVC of k8s/base
        (port,) = c["ports"]
        # KServe routes to the one port: http1 = REST (/v2/...), h2c = gRPC (inference.GRPCInferenceService).
        want = {"http1": flags["rest_api_port"], "h2c": flags["port"]}[port["name"]]
        assert str(port["containerPort"]) == want
        for probe in (c["readinessProbe"], c["livenessProbe"]):
            if port["name"] == "http1":
                assert probe["httpGet"]["port"] == port["containerPort"]
                assert probe["httpGet"]["path"] in ("/v2/health/ready", "/v2/health/live")
            else:
                assert probe["grpc"]["port"] == port["containerPort"]
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}


@pytest.mark.timeout(300)
def test_predictor_args_start_a_v2_model_server(isvc_text, tmp_path):
    """Each predictor's args as rendered (ports moved to free loopback ones, /mnt/models to a stand-in
    model) start `tfgate model-server`; its probes pass and v2 inference answers on the port KServe routes to."""
    import json
    import urllib.request

    import grpc
    import numpy as np
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.model_server.models import make_half_plus
    from tfgate.inference import open_inference_grpc_pb2 as pb
    from tfgate.inference import open_inference_grpc_pb2_grpc as pb_grpc
    from tfgate.serving.processes import ModelServer, free_port, tfgate_command

    make_half_plus(tmp_path / "stand-in", 1)  # y = 0.5 x + 2 under every predictor's model name
    for isvc in yaml.safe_load_all(isvc_text):
        (c,) = isvc["spec"]["predictor"]["containers"]
        ports = {"port": free_port(), "rest_api_port": free_port()}
        args = []
        for a in c["args"]:
            name, _, value = a.removeprefix("--").partition("=")
            value = str(ports.get(name, value)).replace("/mnt/models", str(tmp_path / "stand-in"))
            args.append(f"--{name}={value}")
        server = ModelServer([*tfgate_command(), "model-server", *args, "--bind_address=127.0.0.1"],
                             tmp_path / f"{isvc['metadata']['name']}.log", ports["port"], ports["rest_api_port"])
        server.start(timeout=180)
        try:
            (port,) = c["ports"]
            model = _flags(c["args"])["model_name"]
            if port["name"] == "http1":
                for probe in (c["readinessProbe"], c["livenessProbe"]):
                    with urllib.request.urlopen(f"{server.rest_url}{probe['httpGet']['path']}", timeout=10) as r:
                        assert r.status == 200
                body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [2, 4]}]})
                req = urllib.request.Request(f"{server.rest_url}/v2/models/{model}/infer", data=body.encode())
                with urllib.request.urlopen(req, timeout=30) as r:
                    assert json.loads(r.read())["outputs"][0]["data"] == [3.0, 4.0]
            else:
                with grpc.insecure_channel(server.grpc_target) as ch:
                    health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
                    assert health.status == health_pb2.HealthCheckResponse.SERVING
                    req = pb.ModelInferRequest(model_name=model)
                    req.inputs.add(name="x", datatype="FP32", shape=[2])
                    req.raw_input_contents.append(np.array([2, 4], np.float32).tobytes())
                    resp = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=30)
                    assert np.frombuffer(resp.raw_output_contents[0], np.float32).tolist() == [3.0, 4.0]
        finally:
            assert server.stop() == 0, server.log()[-3000:]
