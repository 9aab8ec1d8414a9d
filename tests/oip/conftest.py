"""The v2 clients' venv (.venv/oip, built by `make install` from requirements/oip.txt), the script runner, and
the one model server the server tests share."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, prediction_service_pb2_grpc

from tests.model_server.models import make_half_plus
from tfgate.serving.processes import model_config_text

REPO = Path(__file__).resolve().parents[2]
OIP_PYTHON = REPO / ".venv" / "oip" / "bin" / "python"
CLIENT_SCRIPTS = Path(__file__).resolve().parent / "clients"
CLIENTS = ["triton-grpc", "triton-http", "kserve-grpc", "kserve-rest"]
BATCHING = "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 2000 }\nnum_batch_threads { value: 2 }\n"


@pytest.fixture(scope="session")
def oip_python() -> Path:
    assert OIP_PYTHON.exists(), f"{OIP_PYTHON} missing: run `make install` (it builds the v2 clients' venv)"
    return OIP_PYTHON


def run_client(python: Path, script: str, *args: str, timeout: float = 120, token: str | None = None) -> dict:
    """Run a client script in the v2 clients' venv (with `token`: as TFGATE_TOKEN); its stdout's last
    line is JSON."""
    env = {**os.environ, "TFGATE_TOKEN": token} if token else None
    proc = subprocess.run([str(python), str(CLIENT_SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"{script} {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_server_factory, housing_model_base, fashion_model_base):
    """One model server for tests/oip, batching on: housing, fashion and a model the clients never saw,
    half (versions 1: y = 0.5 x + 2 and 2: y = 0.5 x + 3, label stable -> 1)."""
    work = tmp_path_factory.mktemp("v2-ms")
    half = work / "half"
    make_half_plus(half, 1, b=2.0)
    make_half_plus(half, 2, b=3.0)
    (work / "batching.config").write_text(BATCHING)
    config = model_config_text({"housing": str(housing_model_base), "fashion": str(fashion_model_base),
                                "half": str(half)}, labels={"half": {"stable": 1}}, policy="all {}")
    return model_server_factory(work, model_config=config, flags=[
        "--enable_batching", f"--batching_parameters_file={work / 'batching.config'}"])


def url(server, client: str) -> str:
    return server.grpc_target if client.endswith("grpc") else server.rest_url.removeprefix("http://")


def signature_defs(server, model: str):
    """The model's SignatureDefs as TF Serving's GetModelMetadata reports them."""
    with grpc.insecure_channel(server.grpc_target) as ch:
        resp = prediction_service_pb2_grpc.PredictionServiceStub(ch).GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_pb2.ModelSpec(name=model),
                                                           metadata_field=["signature_def"]), timeout=60)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sdm)
    return sdm.signature_def
