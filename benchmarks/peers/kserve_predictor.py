"""KServe's ModelServer with a custom predictor, as KServe's "custom model" guide writes one: a `kserve.Model`
subclass whose `load()` loads the model and whose `predict()` answers both protocols (v1's
`{"instances": ...}` dict and v2's InferRequest), started with `ModelServer().start([...])`.

    .venv/peers/kserve/bin/python benchmarks/peers/kserve_predictor.py --http_port 8080 --grpc_port 8081 \
        --models half_plus_two=/m/half_plus_two/1,housing=/m/housing/1

Every other flag is KServe's own (`kserve.model_server.parser`); its defaults stand (one uvicorn worker, the
latency log line per request, gRPC on).
"""

from __future__ import annotations

import argparse

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import from_np_dtype, generate_uuid
from tf_signature import Signature, to_predictions


class TFPredictor(kserve.Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.signature: Signature | None = None
        self.load()

    def load(self) -> bool:
        self.signature = Signature(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):  # v2: /v2/models/<name>/infer
            outputs = self.signature({i.name: i.as_numpy() for i in payload.inputs})
            infer_outputs = []
            for name, value in outputs.items():
                out = InferOutput(name=name, shape=list(value.shape), datatype=from_np_dtype(value.dtype))
                out.set_data_from_numpy(value, binary_data=False)
                infer_outputs.append(out)
            return InferResponse(response_id=payload.id or generate_uuid(), model_name=self.name,
                                 infer_outputs=infer_outputs)
        outputs = self.signature(self.signature.from_instances(payload["instances"]))  # v1: :predict
        return {"predictions": to_predictions(outputs)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--models", required=True, help="name=SavedModel folder, comma-separated")
    args, _ = parser.parse_known_args()
    models = [TFPredictor(*item.split("=", 1)) for item in args.models.split(",")]
    kserve.ModelServer().start(models)
