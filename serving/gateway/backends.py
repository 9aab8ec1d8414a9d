"""Backend replicas of one model: channels, round robin, retries on UNAVAILABLE, ejection, probing.

Each configured target gets one channel with gRPC's `round_robin` policy, so a `dns:///` name of
a headless Service spreads over every resolved pod address. On top of that the gateway rotates
over the targets itself, retries UNAVAILABLE on the next one within the caller's deadline (gRPC's
built-in retry gives up on messages over its 256 KiB buffer), and takes a target that keeps
failing out of rotation until a GetModelStatus probe succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from ..status import ServingError
from ..tfs_protos import MODEL_SERVICE, method_path
from . import metrics
from .config import BackendConfig

log = logging.getLogger("tfgate.gateway")
STATUS_PATH = method_path(MODEL_SERVICE, "GetModelStatus")
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class BackendError(ServingError):
    """What a backend answered (or that none did), passed on to the caller with its status."""


def channel_credentials(cfg: BackendConfig) -> grpc.ChannelCredentials | None:
    t = cfg.tls
    if not t.ca_file:
        return None

    def read(p):
        with open(p, "rb") as fh:
            return fh.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(t.ca_file),
        private_key=read(t.key_file) if t.key_file else None,
        certificate_chain=read(t.cert_file) if t.cert_file else None,
    )


def channel_options(cfg: BackendConfig, max_message_bytes: int) -> list[tuple]:
    opts = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.enable_retries", 0),  # the gateway retries itself, past gRPC's 256 KiB buffer
        ("grpc.keepalive_time_ms", int(cfg.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        # Re-resolve DNS soon after a pod goes away so new pods join the rotation.
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", -1),
    ]
    if cfg.tls.server_name:
        opts.append(("grpc.ssl_target_name_override", cfg.tls.server_name))
    return opts


class Target:
    def __init__(self, model: str, target: str, cfg: BackendConfig, creds, options):
        self.model, self.target, self.cfg = model, target, cfg
        if creds is None:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self.channel = grpc.aio.secure_channel(target, creds, options=options)
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}
        self.failures = 0
        self.ejections = 0
        self.ejected = False
        self._probe: asyncio.Task | None = None
        metrics.HEALTHY_TARGETS.labels(model, target).set(1)

    def method(self, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
        m = self._methods.get(path)
        if m is None:  # identity (de)serializers: bytes in, bytes out
            m = self._methods[path] = self.channel.unary_unary(path)
        return m

    def usable(self) -> bool:
        if self.ejected:
            return False
        return self.channel.get_state(try_to_connect=False) != grpc.ChannelConnectivity.TRANSIENT_FAILURE

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self, backend_name: str) -> None:
        self.failures += 1
        if not self.ejected and self.failures >= self.cfg.ejection.consecutive_failures:
            self.ejected = True
            self.ejections += 1
            metrics.EJECTIONS.labels(self.model, self.target).inc()
            metrics.HEALTHY_TARGETS.labels(self.model, self.target).set(0)
            log.warning("backend ejected", extra={"model": self.model, "target": self.target,
                                                  "failures": self.failures})
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop(backend_name))

    async def probe(self, backend_name: str, timeout: float = 1.0) -> bool:
        req = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=backend_name))
        try:
            raw = await self.method(STATUS_PATH)(req.SerializeToString(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        resp = get_model_status_pb2.GetModelStatusResponse.FromString(raw)
        return any(v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                   for v in resp.model_version_status)

    async def _probe_loop(self, backend_name: str) -> None:
        e = self.cfg.ejection
        wait = min(e.max_seconds, e.min_seconds * 2 ** (self.ejections - 1))
        until = time.monotonic() + wait
        while True:
            await asyncio.sleep(max(e.probe_interval_seconds, until - time.monotonic()))
            if await self.probe(backend_name):
                break
        self.ejected, self.failures = False, 0
        metrics.HEALTHY_TARGETS.labels(self.model, self.target).set(1)
        log.info("backend back in rotation", extra={"model": self.model, "target": self.target})

    async def close(self) -> None:
        if self._probe:
            self._probe.cancel()
        await self.channel.close()


class Pool:
    """The targets of one model."""

    def __init__(self, model: str, backend_name: str, targets: list[str], cfg: BackendConfig,
                 max_message_bytes: int):
        creds = channel_credentials(cfg)
        options = channel_options(cfg, max_message_bytes)
        self.model, self.backend_name, self.cfg = model, backend_name, cfg
        self.targets = [Target(model, t, cfg, creds, options) for t in targets]
        self._next = random.randrange(len(self.targets))

    def healthy_count(self) -> int:
        return sum(not t.ejected for t in self.targets)

    def pick(self, tried: set[int]) -> tuple[int, Target]:
        n = len(self.targets)
        # Usable and not yet tried, then not ejected, then anything (all down: keep trying).
        for accept in (lambda t: t.usable(), lambda t: not t.ejected, lambda t: True):
            for _ in range(n):
                i = self._next % n
                self._next += 1
                if i not in tried and accept(self.targets[i]):
                    return i, self.targets[i]
        i = self._next % n
        self._next += 1
        return i, self.targets[i]

    async def call(self, path: str, request: bytes, metadata, deadline: float) -> tuple[bytes, int]:
        """Sends raw request bytes; returns (response bytes, retries). deadline: time.monotonic()."""
        r = self.cfg.retry
        tried: set[int] = set()
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the "
                                   f"backend answered (after {attempt} attempt(s))")
            i, target = self.pick(tried)
            tried.add(i)
            if len(tried) >= len(self.targets):
                tried.clear()
            attempt += 1
            t0 = time.perf_counter()
            try:
                response = await target.method(path)(request, timeout=remaining, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                metrics.backend_latency(self.model, target.target, code.name).observe(
                    time.perf_counter() - t0)
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise BackendError(code, exc.details() or code.name) from None
                target.failed(self.backend_name)
                if attempt >= r.max_attempts:
                    raise BackendError(code, f"no backend replica answered after {attempt} attempts: "
                                       f"{exc.details()}") from None
                backoff = min(r.max_backoff_ms, r.initial_backoff_ms * 2 ** (attempt - 1)) / 1000
                backoff *= random.uniform(0.5, 1.0)
                if deadline - time.monotonic() <= backoff:
                    raise BackendError(code, f"deadline too short to retry: {exc.details()}") from None
                metrics.RETRIES.labels(self.model).inc()
                await asyncio.sleep(backoff)
                continue
            metrics.backend_latency(self.model, target.target, "OK").observe(time.perf_counter() - t0)
            target.succeeded()
            return response, attempt - 1

    async def status_all(self, timeout: float) -> list[get_model_status_pb2.GetModelStatusResponse | None]:
        req = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name=self.backend_name)).SerializeToString()

        async def one(t: Target):
            try:
                raw = await t.method(STATUS_PATH)(req, timeout=timeout)
                return get_model_status_pb2.GetModelStatusResponse.FromString(raw)
            except grpc.aio.AioRpcError:
                return None

        return list(await asyncio.gather(*(one(t) for t in self.targets)))

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in self.targets))
