"""TF Serving's service names and message modules, as both servers load them.

Leaf module: imports nothing else from tfgate.serving, and nothing from TensorFlow until asked.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE)


def method_path(service: str, method: str) -> str:
    """The HTTP/2 path of a gRPC method: `/tensorflow.serving.PredictionService/Predict`."""
    return f"/{service}/{method}"


def install_light_tensorflow() -> None:
    """Lets `tensorflow_serving.apis` load without starting the TensorFlow runtime.

    Those modules import `tensorflow.core.*_pb2`, plain protobuf modules inside the tensorflow
    package; importing them the normal way runs tensorflow/__init__.py (seconds, and hundreds of MB
    per gateway worker). This registers a bare package object for `tensorflow` so only those pb2
    files load. Only the gateway process calls it, before anything else imports TensorFlow; in a
    process that already has TensorFlow it does nothing.
    """
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the gateway needs the tensorflow package's protobuf modules "
                          "(pip install 'tfgate[serving]')")
    shim = types.ModuleType("tensorflow", "protobuf modules only (tfgate gateway)")
    shim.__path__ = list(spec.submodule_search_locations)
    shim.__spec__ = spec
    sys.modules["tensorflow"] = shim


def register_service_descriptors() -> list[str]:
    """Puts TF Serving's two service descriptors in protobuf's default pool (for server reflection)
    and returns the service names now known there.

    tensorflow-serving-api 2.19.1's prediction_service_pb2 / model_service_pb2 are generated in an
    old style that fails at import under protobuf >= 4 (`has_options` is read-only in upb) *after*
    their file descriptor has been added to the pool; the *_pb2_grpc stubs do not need them.
    Importing them and ignoring that error leaves the descriptors registered; the pool is then
    asked directly.
    """
    from google.protobuf import descriptor_pool

    for module in ("prediction_service_pb2", "model_service_pb2"):
        try:
            importlib.import_module(f"tensorflow_serving.apis.{module}")
        except AttributeError:
            pass
    pool = descriptor_pool.Default()
    found = []
    for name in SERVICES:
        try:
            pool.FindServiceByName(name)
            found.append(name)
        except KeyError:
            pass
    return found
