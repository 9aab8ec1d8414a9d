"""`TFServingClient`: call TF Serving (or `tfgate model-server`, or the gateway's pass-through) directly.

Needs the `[serving]` extra (`pip install 'tfgate[serving]'`: tensorflow-serving-api, which imports
TensorFlow); the gateway clients do not.

Example:
    >>> from clients.tfserving import TFServingClient
    >>> with TFServingClient("127.0.0.1:8500") as tfs:
    ...     out = tfs.predict("fashion", {"image": np.zeros((1, 28, 28), np.uint8)})
    >>> out.outputs["probabilities"].shape
    (1, 10)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np

try:
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("TFServingClient needs the [serving] extra: pip install 'tfgate[serving]'") from exc

from .gateway_client import SyncClient
from .results import ModelVersionInfo, PredictResult, ServedBy

_STATES = {v.number: v.name for v in
           get_model_status_pb2.ModelVersionStatus.State.DESCRIPTOR.values}


class _Stubs:
    def __init__(self, channel: grpc.Channel) -> None:
        ps = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        ms = model_service_pb2_grpc.ModelServiceStub(channel)
        self.Predict = ps.Predict
        self.GetModelMetadata = ps.GetModelMetadata
        self.GetModelStatus = ms.GetModelStatus


def _spec(model: str, version: int | None, label: str | None, signature: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model, signature_name=signature or "")
    if version is not None and label:
        raise ValueError("give version or label, not both")
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    return spec


class TFServingClient(SyncClient):
    """Synchronous client of TF Serving's `PredictionService` and `ModelService`, with the same
    connection options, retries and exceptions as `GatewayClient`.

    Example:
        >>> with TFServingClient("127.0.0.1:8500", timeout=5) as tfs:
        ...     [v.version for v in tfs.model_status("housing")]
        [1]
    """

    def _make_stub(self, channel: grpc.Channel) -> _Stubs:
        return _Stubs(channel)

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        version: int | None = None,
        label: str | None = None,
        signature: str | None = None,
        *,
        output_filter: Sequence[str] = (),
        timeout: float | None = None,
    ) -> PredictResult:
        """TF Serving's Predict on named numpy arrays; outputs as numpy arrays.

        Example:
            >>> tfs.predict("housing", columns)["median_house_value"].shape
            (3,)
        """
        req = predict_pb2.PredictRequest(model_spec=_spec(model, version, label, signature),
                                         output_filter=list(output_filter))
        for name, value in inputs.items():
            req.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        resp = self._call("Predict", req, self._timeout(timeout))
        outputs = {name: tf.make_ndarray(t) for name, t in resp.outputs.items()}
        return PredictResult(outputs, [ServedBy(resp.model_spec.name, resp.model_spec.version.value)])

    def model_status(self, model: str, version: int | None = None, *,
                     timeout: float | None = None) -> list[ModelVersionInfo]:
        """Versions of a model and their states (TF Serving's GetModelStatus).

        Example:
            >>> tfs.model_status("housing")[0].state
            'AVAILABLE'
        """
        req = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec(model, version, None, None))
        resp = self._call("GetModelStatus", req, self._timeout(timeout))
        return [ModelVersionInfo(v.version, _STATES.get(v.state, str(v.state)), v.status.error_message)
                for v in resp.model_version_status]

    def signatures(self, model: str, version: int | None = None, *,
                   timeout: float | None = None) -> dict[str, dict[str, list[str]]]:
        """Signature names of a model with their input and output names (GetModelMetadata).

        Example:
            >>> tfs.signatures("fashion")["serving_default"]["inputs"]
            ['image']
        """
        req = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_spec(model, version, None, None), metadata_field=["signature_def"])
        resp = self._call("GetModelMetadata", req, self._timeout(timeout))
        sigs = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sigs)
        return {name: {"inputs": sorted(s.inputs), "outputs": sorted(s.outputs)}
                for name, s in sorted(sigs.signature_def.items())}
