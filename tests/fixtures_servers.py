"""Start real `tfgate model-server` subprocesses on free loopback ports (shared by test folders).

    server = start_model_server(tmp_dir, model_name="m", model_base_path=DIR, flags=["--enable_batching"])
    server.grpc_target   # "127.0.0.1:PORT"
    server.rest_url      # "http://127.0.0.1:PORT" (None with rest=False)
    server.pid, server.grpc_port, server.rest_port, server.socket_path, server.log_path
    server.stop()        # SIGTERM by PID, waits, returns the exit code

Fixture `model_server_factory` (session) wraps `start_model_server` and stops everything it started
at the end of the session. Start as few servers as you can: each is a TensorFlow process.
"""

from __future__ import annotations

import pytest

from tfgate.serving.processes import MODEL_SERVER_READY as READY_LINE
from tfgate.serving.processes import ModelServer, free_port, start_model_server, tfgate_command

__all__ = ["READY_LINE", "ModelServer", "free_port", "model_server_factory", "start_model_server", "tfgate_command"]


@pytest.fixture(scope="session")
def model_server_factory(tmp_path_factory):
    """`start(**kwargs) -> ModelServer` (kwargs as start_model_server, workdir optional); every server
    started is stopped at the end of the session."""
    started: list[ModelServer] = []

    def start(workdir=None, **kwargs) -> ModelServer:
        server = start_model_server(workdir or tmp_path_factory.mktemp("model-server"), **kwargs)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()
