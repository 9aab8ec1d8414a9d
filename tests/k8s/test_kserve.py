"""k8s/kserve: the InferenceServices that run `tfgate model-server` as KServe custom predictors, offline.

Rendered with kubectl kustomize, then built strictly from the kserve SDK's own typed models (in the v2
clients' venv, .venv/oip): unknown fields, wrong types and missing required fields fail. The predictor's
ports, probes and storage agree with its model-server flags.
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
