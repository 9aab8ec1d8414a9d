"""TF Serving's message and stub modules, loaded without starting the TensorFlow runtime.

`tensorflow_serving.apis` imports `tensorflow.core.*_pb2`, plain protobuf modules inside the
tensorflow package; importing them the normal way runs tensorflow/__init__.py (seconds, and
hundreds of MB per gateway worker). `install_light_tensorflow()` registers a bare package object
for `tensorflow` so only those pb2 files load. Only the gateway process calls it, before anything
else imports TensorFlow; in a process that already has TensorFlow it does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def install_light_tensorflow() -> None:
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
    """Puts TF Serving's service descriptors in the default pool (for server reflection).

    The packaged prediction_service_pb2/model_service_pb2 are old-style generated code whose
    last lines fail on protobuf >= 4 after the file is already registered, so the failure is
    ignored and the pool is asked directly. Returns the service names now known.
    """
    from google.protobuf import descriptor_pool

    for module in ("prediction_service_pb2", "model_service_pb2"):
        try:
            importlib.import_module(f"tensorflow_serving.apis.{module}")
        except AttributeError:
            pass
    pool = descriptor_pool.Default()
    found = []
    for name in ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        try:
            pool.FindServiceByName(name)
            found.append(name)
        except KeyError:
            pass
    return found
