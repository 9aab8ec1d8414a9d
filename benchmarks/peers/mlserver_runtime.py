"""MLServer with a custom runtime, as MLServer's "custom inference runtimes" guide writes one: an `MLModel`
subclass (`load()` loads the model named by `parameters.uri`, `predict()` takes and gives v2 tensors through
NumpyCodec), one `model-settings.json` per model and a `settings.json`, started with `mlserver start DIR`.

    .venv/peers/mlserver/bin/python benchmarks/peers/mlserver_runtime.py --repository DIR \
        --http-port 8080 --grpc-port 8081 --metrics-port 8082 --models half_plus_two=/m/half_plus_two/1,...

writes DIR's settings and then becomes `mlserver start DIR` (same PID). benchmarks/peers must be on
PYTHONPATH: MLServer imports the runtime by the name in model-settings.json, here and in its worker.
MLServer's defaults stand (one parallel inference worker process, debug logging, metrics server, no
adaptive batching) except the listen address, 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from tf_signature import Signature


class TFRuntime(MLModel):
    async def load(self) -> bool:
        self.signature = Signature(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = self.signature({i.name: NumpyCodec.decode_input(i) for i in payload.inputs})
        return InferenceResponse(model_name=self.name, id=payload.id,
                                 outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()])


def write_repository(root: Path, models: dict[str, str], http_port: int, grpc_port: int, metrics_port: int) -> None:
    """`root`/settings.json and `root`/<model>/model-settings.json for MLServer to serve `models` {name: path}."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    for name, path in models.items():
        (root / name).mkdir(exist_ok=True)
        model_settings = {"name": name, "implementation": "mlserver_runtime.TFRuntime",
                          "parameters": {"uri": str(Path(path).resolve())}}
        (root / name / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", required=True, type=Path)
    ap.add_argument("--models", required=True, help="name=SavedModel folder, comma-separated")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    args = ap.parse_args()
    write_repository(args.repository, dict(item.split("=", 1) for item in args.models.split(",")),
                     args.http_port, args.grpc_port, args.metrics_port)
    mlserver = shutil.which("mlserver", path=os.path.dirname(sys.executable))
    os.chdir(args.repository)  # MLServer keeps .metrics/ and .envs/ in its working folder
    os.execv(mlserver, [mlserver, "start", str(args.repository)])
