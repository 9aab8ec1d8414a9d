"""Start the real gateway (and helpers around it) as subprocesses on loopback."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BlackHole:
    """A TCP listener that accepts connections and never answers: a backend that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self):
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


class Gateway:
    """`tfgate gateway --config FILE` as a subprocess; waits until its health check says SERVING."""

    def __init__(self, tmp: Path, config: dict, env: dict | None = None, workers: int = 0,
                 channel_creds: grpc.ChannelCredentials | None = None):
        self.port = free_port()
        self.metrics_port = free_port()
        cfg = {"listen": f"127.0.0.1:{self.port}", "metrics_listen": f"127.0.0.1:{self.metrics_port}",
               "shutdown": {"readiness_seconds": 0.3, "grace_seconds": 10}, **config}
        self.config_path = tmp / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = tmp / f"gateway-{self.port}.log"
        cmd = [sys.executable, "-m", "tfgate.clients.cli", "gateway", "--config", str(self.config_path)]
        if workers:
            cmd += ["--workers", str(workers)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.target = f"127.0.0.1:{self.port}"
        self.creds = channel_creds
        self.wait_serving()

    def channel(self, creds: grpc.ChannelCredentials | None = None, **opts) -> grpc.Channel:
        creds = creds or self.creds
        options = [("grpc.ssl_target_name_override", "localhost")] if creds else []
        if creds:
            return grpc.secure_channel(self.target, creds, options=options)
        return grpc.insecure_channel(self.target)

    def wait_serving(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        with self.channel() as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log()}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"gateway not serving after {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        self.terminate()
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc


def make_certs(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem, k, cert):
        (tmp / f"{stem}.key").write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        (tmp / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def builder(subject, issuer, pub):
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(pub).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2)))

    ca_key = key()
    ca = builder("tfgate test CA", "tfgate test CA", ca_key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    write("ca", ca_key, ca)
    srv_key = key()
    srv = builder("localhost", "tfgate test CA", srv_key.public_key()).add_extension(
        x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
    ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                    ).sign(ca_key, hashes.SHA256())
    write("server", srv_key, srv)
    cli_key = key()
    cli = builder("tfgate client", "tfgate test CA", cli_key.public_key()).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    ).sign(ca_key, hashes.SHA256())
    write("client", cli_key, cli)
    return {n: tmp / n for n in ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")}
