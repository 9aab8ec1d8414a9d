"""Config files in the manifests load with the programs that read them: the gateway's YAML plus
each overlay's env overrides through the gateway's own loader, every models.config (the GCS
one included) as TF Serving's ModelServerConfig."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from tests.k8s.conftest import config_map_files


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu"])
def test_gateway_config_loads_with_the_deployment_env(rendered, target, tmp_path):
    from tfgate.serving.gateway import config

    path = tmp_path / "gateway.yaml"
    path.write_text(config_map_files(rendered[target], "gateway-config")["gateway.yaml"])
    dep = rendered.find(target, "Deployment", "tfgate-gateway")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["gateway", "--config", "/etc/tfgate/" + path.name]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = {}
    for e in c.get("env", []):
        value = e["value"]
        if value.startswith(mounts["secrets"] + "/"):  # a file from the Secret: stand-in content
            local = tmp_path / value.rsplit("/", 1)[1]
            local.write_text("stand-in-token\n")
            value = str(local)
        env[e["name"]] = value
    cfg = config.load(path, environ=env)
    assert cfg.listen.endswith(":9000") and cfg.metrics_listen.endswith(":9090")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 9000, "metrics": 9090}
    assert bool(cfg.auth.tokens_file) == (target == "overlays/gpu")


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu", "gpu+servicemonitor+gcs"])
def test_models_config_is_a_model_server_config(rendered, target):
    from tensorflow_serving.config import model_server_config_pb2

    text = config_map_files(rendered[target], "tf-serving-config")["models.config"]
    cfg = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    names = [c.name for c in cfg.model_config_list.config]
    assert names == ["housing", "fashion"]
    for c in cfg.model_config_list.config:
        assert c.base_path.endswith("/" + c.name) and c.model_platform == "tensorflow"
