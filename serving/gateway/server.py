"""The gateway server, assembled: tfgate.v1.InferenceGateway (typed_api), the TF Serving pass-through
(passthrough), health and reflection on one gRPC server; the middleware (calls), routing and shadow
traffic they share; TLS; and the drain on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os

import grpc

from .. import grpc_plumbing
from ..tfs_protos import SERVICES
from .auth import TokenStore
from .backends import Pool
from .calls import Calls
from .config import GatewayConfig
from .open_inference import SERVICE as V2_SERVICE
from .open_inference import OpenInference
from .passthrough import Passthrough
from .routing import Router
from .shadow import Shadow
from .typed_api import SERVICE, InferenceGateway

log = logging.getLogger("tfgate.gateway")


class Gateway:
    """The parts of one gateway process, built from its config."""

    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        tokens = TokenStore(cfg.auth.tokens_file) if cfg.auth.tokens_file else None
        self.pools = {name: Pool(name, m.backend_model_name, m.targets, cfg.backend, m.max_message_bytes)
                      for name, m in cfg.models.items()}
        self.calls = Calls(cfg.max_concurrent_requests, tokens)
        self.shadow = Shadow()
        self.router = Router(cfg, self.pools, self.shadow)
        self.api = InferenceGateway(cfg, self.calls, self.router, self.pools)
        self.passthrough = Passthrough(self.calls, self.router, self.pools)
        self.open_inference = OpenInference(self.calls, self.router, self.pools)

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        return [self.api.generic_handler(), *self.passthrough.generic_handlers(), self.open_inference.generic_handler()]

    async def close(self) -> None:
        self.shadow.close()
        await asyncio.gather(*(p.close() for p in self.pools.values()))
        await self.router.request_logs.close()  # every accepted request-log record written (issue 17)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


async def serve(cfg: GatewayConfig, reuse_port: bool = False, ready=None) -> int:
    """Runs until SIGTERM/SIGINT, then drains. Returns the process exit code."""
    gateway = Gateway(cfg)
    max_msg = max(m.max_message_bytes for m in cfg.models.values()) + 64 * 1024
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_msg),
        ("grpc.max_send_message_length", -1),
        # Clients reconnect now and then, so new gateway pods get their share.
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ])
    server.add_generic_rpc_handlers(gateway.generic_handlers())
    health_servicer = grpc_plumbing.add_health(server)
    grpc_plumbing.enable_reflection(server, [SERVICE.full_name, V2_SERVICE, grpc_plumbing.HEALTH_SERVICE])
    if cfg.tls.cert_file:
        creds = grpc.ssl_server_credentials(
            [(_read(cfg.tls.key_file), _read(cfg.tls.cert_file))],
            root_certificates=_read(cfg.tls.client_ca_file) if cfg.tls.client_ca_file else None,
            require_client_auth=bool(cfg.tls.client_ca_file))
        port = server.add_secure_port(cfg.listen, creds)
    else:
        port = server.add_insecure_port(cfg.listen)
    await server.start()
    await grpc_plumbing.set_serving(health_servicer, [SERVICE.full_name, *SERVICES])
    log.info("gateway listening", extra={"listen": cfg.listen, "port": port, "pid": os.getpid(),
                                          "models": sorted(cfg.models), "tls": bool(cfg.tls.cert_file)})
    if ready is not None:
        ready(port)
    await grpc_plumbing.stop_signal()
    # Drain: announce NOT_SERVING, keep serving while load balancers notice, then finish in-flight.
    log.info("draining", extra={"readiness_seconds": cfg.shutdown.readiness_seconds,
                                "grace_seconds": cfg.shutdown.grace_seconds, "in_flight": gateway.calls.in_flight})
    await grpc_plumbing.drain(server, health_servicer, cfg.shutdown.grace_seconds,
                              readiness_seconds=cfg.shutdown.readiness_seconds)
    await gateway.close()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0
