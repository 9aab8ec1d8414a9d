"""The real gateway as a subprocess on loopback (through tfgate.serving.processes), and helpers around it."""

from __future__ import annotations

import datetime
import socket
import threading
from pathlib import Path

import grpc

from tfgate.serving.processes import GatewayProcess, free_port, start_gateway

REPO = Path(__file__).resolve().parents[2]
__all__ = ["REPO", "BlackHole", "Gateway", "free_port", "make_certs"]


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


def Gateway(tmp: Path, config: dict, env: dict | None = None, workers: int = 0,
            channel_creds: grpc.ChannelCredentials | None = None) -> GatewayProcess:
    """`tfgate gateway --config FILE` started by the one launcher (tfgate.serving.processes), with a quick
    shutdown for tests; returns once its health check says SERVING (over TLS with `channel_creds`)."""
    return start_gateway(tmp, {"shutdown": {"readiness_seconds": 0.3, "grace_seconds": 10}, **config}, env=env,
                         workers=workers, creds=channel_creds)


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
