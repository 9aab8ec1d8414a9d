"""The TF Serving container's args, exactly as rendered, start `tfgate model-server`.

From each overlay's rendered manifests: the tf-serving container's args and the files of the
ConfigMap it mounts. Only paths and ports are rewritten: mount paths -> a temp dir, 8500/8501
-> free loopback ports, plus tfgate's --bind_address=127.0.0.1 so nothing listens beyond
loopback. Both servers start side by side (the gpu args are what real TF Serving gets; the cpu
overlay runs `tfgate model-server` for real), report SERVING on grpc.health.v1, load both
models, serve the monitoring path, and stop on SIGTERM, by PID.
"""

from __future__ import annotations

import re
import shutil
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.k8s.conftest import config_map_files, tf_serving_container
from tfgate.serving.processes import ModelServer, free_port, tfgate_command

OVERLAYS = ["overlays/gpu", "overlays/cpu"]


def _local_args(objs: list[dict], root: Path) -> tuple[list[str], int, int]:
    """The container's args with mount paths under `root`; writes the ConfigMap files there."""
    c = tf_serving_container(objs)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    files = config_map_files(objs, "tf-serving-config")

    def local(path: str) -> str:
        for mount in sorted(mounts.values(), key=len, reverse=True):
            if path == mount or path.startswith(mount + "/"):
                return str(root) + path
        raise AssertionError(f"{path} is on no volume of the container")

    conf = Path(local(mounts["config"]))
    conf.mkdir(parents=True)
    for name, text in files.items():
        # base_path values point into the model-store mount.
        text = re.sub(r'(base_path:\s*")([^"]+)"', lambda m: f'{m[1]}{local(m[2])}"', text)
        (conf / name).write_text(text)
    grpc_port, rest_port = free_port(), free_port()
    args = []
    for arg in c["args"]:
        name, _, value = arg.partition("=")
        if name == "--port":
            value = str(grpc_port)
        elif name == "--rest_api_port":
            value = str(rest_port)
        elif value.startswith("/"):
            value = local(value)
        args.append(f"{name}={value}")
    return [*args, "--bind_address=127.0.0.1"], grpc_port, rest_port


def _model_names(models_config: str) -> list[str]:
    return re.findall(r'name:\s*"([^"]+)"', models_config)


@pytest.mark.timeout(300)
def test_manifest_args_start_tfgate_model_server(rendered, tmp_path):
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    from tests.model_server.models import make_half_plus

    started = []
    stand_in = tmp_path / "stand-in" / "1"
    try:
        for overlay in OVERLAYS:
            root = tmp_path / overlay.replace("/", "-")
            args, grpc_port, rest_port = _local_args(rendered[overlay], root)
            models = _model_names(config_map_files(rendered[overlay], "tf-serving-config")["models.config"])
            assert models == ["housing", "fashion"]
            for name in models:  # a small stand-in SavedModel (saved once) per configured model
                if not stand_in.exists():
                    make_half_plus(tmp_path / "stand-in", 1)
                shutil.copytree(stand_in, root / "models" / name / "1")
            # The one launcher, with the rendered args as they are (no flags of its own).
            server = ModelServer([*tfgate_command(), "model-server", *args], root / "server.log", grpc_port, rest_port)
            started.append((overlay, server.start(wait=False), models, args))

        for overlay, server, *_ in started:  # both start side by side
            try:
                server.wait_ready(180)
            except RuntimeError as exc:
                pytest.fail(f"{overlay}: {exc}")

        for overlay, server, models, args in started:
            grpc_port, rest_port = server.grpc_port, server.rest_port
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                # What the kubelet's gRPC probes ask.
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
                assert resp.status == health_pb2.HealthCheckResponse.SERVING, overlay
                stub = model_service_pb2_grpc.ModelServiceStub(ch)
                for name in models:
                    req = get_model_status_pb2.GetModelStatusRequest()
                    req.model_spec.name = name
                    status = stub.GetModelStatus(req, timeout=10)
                    states = [s.state for s in status.model_version_status]
                    assert get_model_status_pb2.ModelVersionStatus.AVAILABLE in states, (overlay, name, status)
            # The monitoring config's Prometheus path, on the REST port (what the ServiceMonitor scrapes).
            path = next(a for a in args if a.startswith("--monitoring_config_file="))
            metrics_path = re.search(r'path:\s*"([^"]+)"', Path(path.split("=", 1)[1]).read_text())[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}{metrics_path}", timeout=10) as r:
                assert r.status == 200, overlay
    finally:
        codes = [(overlay, server, server.stop()) for overlay, server, *_ in started]  # SIGTERM by PID (own children)
        for overlay, server, code in codes:
            assert code == 0, f"{overlay}: exit {code} after SIGTERM:\n{server.log()[-4000:]}"
