"""Test data and small servers for the client tests."""

from __future__ import annotations

import csv
import gzip
import io
import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np

from tests.conftest import FASHION_DIR, HOUSING_CSV, REPO, TFGATE
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

# Python code run with `-c` before anything else: every import of TensorFlow (or Keras, or
# tensorflow-serving-api, which needs TF) fails, as on a core install without TensorFlow.
BLOCK_TF = """
import importlib.abc, sys
class _NoTF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_serving', 'keras', 'tf_keras'):
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, _NoTF())
"""


def housing_rows(n: int | None = None) -> list[dict[str, str]]:
    """Rows of the bundled CSV as dicts of strings (repeated to reach n)."""
    with open(HOUSING_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if n is None:
        return rows
    return [rows[i % len(rows)] for i in range(n)]


def fashion_test_set(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n t10k images (uint8 [n, 28, 28]) and labels."""
    images = np.frombuffer(gzip.decompress((FASHION_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())[16:],
                           dtype=np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.decompress((FASHION_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:],
                           dtype=np.uint8)
    return images[:n].copy(), labels[:n].copy()


def png_bytes(pixels: np.ndarray, size: int = 28, fmt: str = "PNG") -> bytes:
    from PIL import Image

    im = Image.fromarray(pixels, mode="L")
    if size != 28:
        im = im.resize((size, size), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def run_tfgate(*args: str, env: dict | None = None, block_tf: bool = False,
               timeout: float = 180) -> subprocess.CompletedProcess:
    """The `tfgate` command line as a real subprocess (optionally with TensorFlow unimportable)."""
    if block_tf:
        code = BLOCK_TF + "\nfrom tfgate.clients.cli import main\nsys.argv = ['tfgate', *sys.argv[1:]]\nmain()\n"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [*TFGATE, *args]
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    for key in ("TFGATE_TOKEN", "TFGATE_TARGET", "TFGATE_TLS_CA"):
        if not env or key not in env:
            full_env.pop(key, None)
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


class HangingBackend:
    """A real gRPC server on loopback that looks like TF Serving to the gateway but never answers
    Predict (it holds each call until the caller gives up); GetModelStatus answers an empty status."""

    def __init__(self) -> None:
        def hang(request: bytes, context) -> bytes:
            end = time.monotonic() + 60
            while context.is_active() and time.monotonic() < end:
                time.sleep(0.05)
            return b""

        class Generic(grpc.GenericRpcHandler):
            def service(self, details):
                if details.method.endswith("/Predict"):
                    return grpc.unary_unary_rpc_method_handler(hang)
                return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")

        self.server = grpc.server(futures.ThreadPoolExecutor(16), handlers=[Generic()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0).wait()


class StatusServer:
    """A real gRPC server on loopback implementing tfgate.v1's ListModels only: it fails with the status
    named in the `x-want-code` metadata (and the message `x-want-message`), else lists one model.
    `calls` counts ListModels calls."""

    def __init__(self, port: int = 0) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        outer = self

        class Servicer(pb_grpc.InferenceGatewayServicer):
            def ListModels(self, request, context):
                with outer._lock:
                    outer.calls += 1
                md = dict(context.invocation_metadata())
                if "x-want-code" in md:
                    context.set_trailing_metadata((("x-request-id", "req-42"),))
                    context.abort(grpc.StatusCode[md["x-want-code"]], md.get("x-want-message", "no"))
                return pb.ListModelsResponse(models=[pb.Model(name="m", targets=["t"], healthy_targets=1)])

        pb_grpc.add_InferenceGatewayServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0).wait()

