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

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

READY_LINE = "tfgate model-server ready"


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (tiny race window; fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfgate_command() -> list[str]:
    exe = Path(sys.executable).with_name("tfgate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clients.cli"]


@dataclasses.dataclass
class ModelServer:
    proc: subprocess.Popen
    grpc_port: int
    rest_port: int | None
    log_path: Path
    socket_path: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str | None:
        return f"http://127.0.0.1:{self.rest_port}" if self.rest_port else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server by its PID and wait; SIGKILL if it does not exit in `timeout`."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start_model_server(
    workdir: str | os.PathLike,
    *,
    model_name: str | None = None,
    model_base_path: str | os.PathLike | None = None,
    model_config: str | None = None,
    flags: list[str] | tuple[str, ...] = (),
    rest: bool = True,
    socket_path: str | None = None,
    timeout: float = 180,
    env: dict[str, str] | None = None,
) -> ModelServer:
    """Start `tfgate model-server` bound to 127.0.0.1 and wait until it logs that it is ready
    (models loaded, health SERVING). `model_config` is the text of a ModelServerConfig (written to
    workdir/models.config) or the path of one; extra `flags` are passed unchanged."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    grpc_port = free_port()
    rest_port = free_port() if rest else None
    cmd = [*tfgate_command(), "model-server", f"--port={grpc_port}", "--bind_address=127.0.0.1"]
    if rest_port:
        cmd.append(f"--rest_api_port={rest_port}")
    if model_config is not None:
        path = Path(model_config) if "\n" not in model_config and Path(model_config).exists() else None
        if path is None:
            path = workdir / "models.config"
            path.write_text(model_config)
        cmd.append(f"--model_config_file={path}")
    if model_base_path is not None:
        cmd += [f"--model_name={model_name or 'default'}", f"--model_base_path={model_base_path}"]
    if socket_path:
        cmd.append(f"--grpc_socket_path={socket_path}")
    cmd += list(flags)
    log_path = workdir / f"model-server-{grpc_port}.log"
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=full_env,
                                cwd=Path(__file__).resolve().parent.parent)
    server = ModelServer(proc, grpc_port, rest_port, log_path, socket_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY_LINE in server.log():
            return server
        if proc.poll() is not None:
            raise RuntimeError(f"model server exited with {proc.returncode}:\n{server.log()[-4000:]}")
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"model server not ready after {timeout} s:\n{server.log()[-4000:]}")


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
