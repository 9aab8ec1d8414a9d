"""tfgate clients: the Python library (sync and asyncio) for the gateway and TF Serving.

Importing this package never imports TensorFlow; `TFServingClient` (TF Serving directly) needs the
`[serving]` extra and is imported on first use. The `tfgate` command line is the subpackage `cli`.

Example:
    >>> from tfgate.clients import GatewayClient
    >>> with GatewayClient("127.0.0.1:9000") as client:
    ...     print(client.classify_fashion(["boot.png"], top_k=1).class_names)
    ['Ankle boot']
"""

from __future__ import annotations

from typing import Any

from .aio import AsyncGatewayClient
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    TfgateError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from .gateway_client import GatewayClient
from .results import (
    ClassScore,
    FashionClassifications,
    HousingPredictions,
    ModelInfo,
    ModelVersionInfo,
    PredictResult,
    ServedBy,
)
from .tensors import from_tensor, to_tensor

__all__ = [
    "Aborted", "AlreadyExists", "AsyncGatewayClient", "Cancelled", "ClassScore", "DataLoss", "DeadlineExceeded",
    "FailedPrecondition", "FashionClassifications", "GatewayClient", "HousingPredictions", "Internal",
    "InvalidArgument", "ModelInfo", "ModelVersionInfo", "NotFound", "OutOfRange", "PermissionDenied",
    "PredictResult", "ResourceExhausted", "ServedBy", "TFServingClient", "TfgateError", "Unauthenticated",
    "Unavailable", "Unimplemented", "Unknown", "from_tensor", "to_tensor",
]


def __getattr__(name: str) -> Any:
    # TFServingClient pulls in TensorFlow (tensorflow-serving-api): only when asked for.
    if name == "TFServingClient":
        from .tfserving import TFServingClient

        return TFServingClient
    raise AttributeError(f"module 'tfgate.clients' has no attribute {name!r}")
