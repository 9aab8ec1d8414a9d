"""Start `tfgate model-server` and `tfgate gateway` as child processes on loopback and stop them by PID.

Used by `tfgate demo`, the benchmarks and the tests, so that all of them run the real servers the
same way. Every wait is bounded; a server that dies or never becomes ready raises with its log tail.
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

import yaml

MODEL_SERVER_READY = "tfgate model-server ready"


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (a tiny race window, acceptable on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfgate_command() -> list[str]:
    exe = Path(sys.executable).with_name("tfgate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tfgate.clients.cli"]


@dataclasses.dataclass
class ServerProcess:
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the process by its PID and wait; SIGKILL if it does not exit in `timeout`."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


@dataclasses.dataclass
class ModelServer(ServerProcess):
    grpc_port: int = 0
    rest_port: int | None = None
    socket_path: str | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str | None:
        return f"http://127.0.0.1:{self.rest_port}" if self.rest_port else None


@dataclasses.dataclass
class GatewayProcess(ServerProcess):
    port: int = 0
    metrics_port: int = 0
    config_path: Path | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None) -> subprocess.Popen:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with open(log_path, "wb") as log:
        # The caller's working folder: relative paths in `cmd` mean what the caller meant (also from a wheel).
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)


def _wait(server: ServerProcess, ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if server.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {server.proc.returncode}:\n{server.log()[-4000:]}")
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{server.log()[-4000:]}")


def model_config_text(entries: dict[str, str], labels: dict[str, dict[str, int]] | None = None,
                      policy: str = "") -> str:
    """A text ModelServerConfig (`--model_config_file`) for {name: base_path}; `labels` {name: {label:
    version}}; `policy` e.g. 'latest { num_versions: 2 }'."""
    out = ["model_config_list {"]
    for name, path in entries.items():
        out += ["  config {", f'    name: "{name}"', f'    base_path: "{path}"',
                '    model_platform: "tensorflow"']
        if policy:
            out.append(f"    model_version_policy {{ {policy} }}")
        for lab, v in (labels or {}).get(name, {}).items():
            out.append(f'    version_labels {{ key: "{lab}" value: {v} }}')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


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
    server = ModelServer(_spawn(cmd, log_path, env), log_path, grpc_port, rest_port, socket_path)
    _wait(server, lambda: MODEL_SERVER_READY in server.log(), timeout, "model server")
    return server


def start_gateway(
    workdir: str | os.PathLike,
    config: dict,
    *,
    workers: int = 0,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> GatewayProcess:
    """Start `tfgate gateway` on free loopback ports with `config` (the YAML as a dict; `listen` and
    `metrics_listen` are filled in) and wait until its gRPC health check answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port, metrics_port = free_port(), free_port()
    full = {"listen": f"127.0.0.1:{port}", "metrics_listen": f"127.0.0.1:{metrics_port}", **config}
    config_path = workdir / f"gateway-{port}.yaml"
    config_path.write_text(yaml.safe_dump(full))
    cmd = [*tfgate_command(), "gateway", "--config", str(config_path)]
    if workers:
        cmd += ["--workers", str(workers)]
    log_path = workdir / f"gateway-{port}.log"
    gateway = GatewayProcess(_spawn(cmd, log_path, env), log_path, port, metrics_port, config_path)

    channel = grpc.insecure_channel(gateway.target)
    health = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        try:
            return health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
        except grpc.RpcError:
            return False

    try:
        _wait(gateway, serving, timeout, "gateway")
    finally:
        channel.close()
    return gateway
