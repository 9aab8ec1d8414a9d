"""The one launcher of server processes: `tfgate model-server` and `tfgate gateway` (or any server
command) as child processes on loopback, stopped by PID.

Used by `tfgate demo`, the tests and the benchmarks, so that all of them run the real servers the
same way. A server object keeps its command, ports and log, so it can be started again where it was
(same ports, the log continues) after a stop or a crash. Every wait is bounded; a server that dies or
never becomes ready raises with its log tail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

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


class ServerProcess:
    """A server child process: command line, log file (stdout and stderr) and a readiness check.

    `ready_line`: the process is ready once its log shows this line (since the latest start);
    subclasses check other things (a health RPC)."""

    what = "server"

    def __init__(self, cmd: list[str], log_path: str | os.PathLike, *, env: dict[str, str] | None = None,
                 ready_line: str | None = None, name: str | None = None):
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self.env = env
        self.ready_line = ready_line
        self.name = name or self.log_path.stem
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log_offset = 0  # where the latest start's output begins in the log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True, timeout: float = 180) -> Self:
        """Spawn the command; a restart appends to the log after a '--- start N ---' line."""
        self.starts += 1
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(self.env or {})}
        with open(self.log_path, "ab" if self.starts > 1 else "wb") as log:
            if self.starts > 1:
                log.write(f"--- start {self.starts} ---\n".encode())
                log.flush()
            self._log_offset = log.tell()
            # The caller's working folder: relative paths in `cmd` mean what the caller meant (also from a wheel).
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        if wait:
            self.wait_ready(timeout)
        return self

    def is_ready(self) -> bool:
        return self.ready_line is None or self.ready_line in self.log_since_start()

    def wait_ready(self, timeout: float = 180) -> None:
        self._poll(self.is_ready, timeout)

    def _poll(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"{self.what} not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process by its PID, if it is still running."""
        if self.alive():
            os.kill(self.proc.pid, sig)

    def terminate(self) -> None:
        """SIGTERM without waiting (the server drains and exits on its own)."""
        self.send_signal(signal.SIGTERM)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Signal the process by its PID and wait; SIGKILL if it does not exit in `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


class ModelServer(ServerProcess):
    """`tfgate model-server`: ready once it logs MODEL_SERVER_READY (models loaded, health SERVING)."""

    what = "model server"

    def __init__(self, cmd: list[str], log_path: str | os.PathLike, grpc_port: int, rest_port: int | None = None,
                 socket_path: str | None = None, *, env: dict[str, str] | None = None, name: str | None = None,
                 config_path: Path | None = None):
        super().__init__(cmd, log_path, env=env, ready_line=MODEL_SERVER_READY, name=name)
        self.grpc_port, self.rest_port, self.socket_path = grpc_port, rest_port, socket_path
        self.config_path = config_path

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    target = grpc_target

    @property
    def rest_url(self) -> str | None:
        return f"http://127.0.0.1:{self.rest_port}" if self.rest_port else None


class GatewayProcess(ServerProcess):
    """`tfgate gateway`: ready once its gRPC health check answers SERVING (over TLS with `creds`)."""

    what = "gateway"

    def __init__(self, cmd: list[str], log_path: str | os.PathLike, port: int, metrics_port: int = 0,
                 config_path: Path | None = None, *, env: dict[str, str] | None = None, name: str | None = None,
                 creds=None):
        super().__init__(cmd, log_path, env=env, name=name)
        self.port, self.metrics_port, self.config_path = port, metrics_port, config_path
        self.creds = creds  # grpc.ChannelCredentials of a TLS gateway

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, creds=None):
        """A gRPC channel to the gateway (TLS with `creds` or the gateway's own; the certificate names localhost)."""
        import grpc

        creds = creds or self.creds
        if creds:
            return grpc.secure_channel(self.target, creds, options=[("grpc.ssl_target_name_override", "localhost")])
        return grpc.insecure_channel(self.target)

    def wait_ready(self, timeout: float = 60) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with self.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                try:
                    return health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
                except grpc.RpcError:
                    return False

            self._poll(serving, timeout)


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


def model_server(
    workdir: str | os.PathLike,
    *,
    model_name: str | None = None,
    model_base_path: str | os.PathLike | None = None,
    model_config: str | None = None,
    flags: list[str] | tuple[str, ...] = (),
    rest: bool = True,
    socket_path: str | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    name: str | None = None,
) -> ModelServer:
    """A `tfgate model-server` bound to 127.0.0.1, not started yet (`.start()`). `model_config` is the
    text of a ModelServerConfig (written to workdir/models.config, or workdir/<name>.config) or the path
    of one; extra `flags` are passed unchanged; `port` fixes the gRPC port (default: a free one)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    grpc_port = port or free_port()
    rest_port = free_port() if rest else None
    cmd = [*tfgate_command(), "model-server", f"--port={grpc_port}", "--bind_address=127.0.0.1"]
    if rest_port:
        cmd.append(f"--rest_api_port={rest_port}")
    config_path = None
    if model_config is not None:
        is_path = "\n" not in model_config and Path(model_config).exists()
        config_path = Path(model_config) if is_path else workdir / f"{name or 'models'}.config"
        if not is_path:
            config_path.write_text(model_config)
        cmd.append(f"--model_config_file={config_path}")
    if model_base_path is not None:
        cmd += [f"--model_name={model_name or 'default'}", f"--model_base_path={model_base_path}"]
    if socket_path:
        cmd.append(f"--grpc_socket_path={socket_path}")
    cmd += list(flags)
    log_path = workdir / f"{name or f'model-server-{grpc_port}'}.log"
    return ModelServer(cmd, log_path, grpc_port, rest_port, socket_path, env=env, name=name, config_path=config_path)


def start_model_server(workdir: str | os.PathLike, *, timeout: float = 180, **options) -> ModelServer:
    """`model_server(workdir, **options)` started; returns once it logs that it is ready (models loaded,
    health SERVING)."""
    return model_server(workdir, **options).start(timeout=timeout)


def gateway(
    workdir: str | os.PathLike,
    config: dict,
    *,
    workers: int = 0,
    env: dict[str, str] | None = None,
    port: int | None = None,
    name: str | None = None,
    creds=None,
) -> GatewayProcess:
    """A `tfgate gateway` with `config` (the YAML as a dict; `listen` and `metrics_listen` are filled in
    with free loopback ports unless `config` sets them), not started yet (`.start()`). `creds`: the
    channel credentials its health check needs when `config` turns TLS on."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    metrics_port = free_port()
    full = {"listen": f"127.0.0.1:{port}", "metrics_listen": f"127.0.0.1:{metrics_port}", **config}
    stem = name or f"gateway-{port}"
    config_path = workdir / f"{stem}.yaml"
    config_path.write_text(yaml.safe_dump(full))
    cmd = [*tfgate_command(), "gateway", "--config", str(config_path)]
    if workers:
        cmd += ["--workers", str(workers)]
    return GatewayProcess(cmd, workdir / f"{stem}.log", port, metrics_port, config_path, env=env, name=name,
                          creds=creds)


def start_gateway(workdir: str | os.PathLike, config: dict, *, timeout: float = 60, **options) -> GatewayProcess:
    """`gateway(workdir, config, **options)` started; returns once its gRPC health check answers SERVING."""
    return gateway(workdir, config, **options).start(timeout=timeout)
