"""What both gRPC servers put around their services: request parsing that lets a client's bad bytes
be answered INVALID_ARGUMENT, health, reflection, and the stop signal and drain.

Leaf module: imports only tfgate.serving.tfs_protos.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .tfs_protos import register_service_descriptors

HEALTH_SERVICE = health.SERVICE_NAME


class Undecodable:
    """Request bytes that do not parse as the method's message. grpc itself would answer UNKNOWN to
    such a client mistake; the handler gets this instead and answers INVALID_ARGUMENT."""

    __slots__ = ("type_name", "error")

    def __init__(self, type_name: str, error: str):
        self.type_name = type_name  # the message expected, e.g. tensorflow.serving.PredictRequest
        self.error = error  # the parser's exception class


def lenient_parser(cls):
    """A request deserializer that never raises: the message, or an `Undecodable`."""
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except Exception as exc:
            return Undecodable(name, exc.__class__.__name__)

    return parse


def _serialize(message) -> bytes:
    return message.SerializeToString()


def unary_method(behaviour, request_class) -> grpc.RpcMethodHandler:
    """A unary method whose requests are parsed by `lenient_parser(request_class)`."""
    return grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=lenient_parser(request_class),
                                               response_serializer=_serialize)


def lenient_service(service: str, servicer, requests: dict) -> grpc.GenericRpcHandler:
    """`service`'s methods ({name: request class}) on `servicer`, with a parser that does not fail:
    bytes that are not the method's message get INVALID_ARGUMENT."""

    def handler(fn):
        async def call(request, context):
            if type(request) is Undecodable:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Could not parse the request as {request.type_name}")
            return await fn(request, context)

        return call

    return grpc.method_handlers_generic_handler(service, {
        name: unary_method(handler(getattr(servicer, name)), cls) for name, cls in requests.items()})


def add_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer | None, services: Iterable[str]) -> None:
    """SERVING for the whole server ("") and each of `services`."""
    if servicer is None:
        return
    for name in ("", *services):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def enable_reflection(server: grpc.aio.Server, services: Iterable[str], tf_serving: bool = True) -> None:
    """Server reflection for `services`, TF Serving's two services (when `tf_serving` and their
    descriptors load) and reflection itself."""
    found = register_service_descriptors() if tf_serving else []
    reflection.enable_server_reflection([*services, *found, reflection.SERVICE_NAME], server)


async def stop_signal() -> None:
    """Returns on the first SIGTERM or SIGINT. The handlers stay: a second signal during the drain
    does not kill the process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def drain(server: grpc.aio.Server, servicer: health.aio.HealthServicer | None, grace_seconds: float,
                readiness_seconds: float = 0.0, alongside: Iterable[Awaitable] = ()) -> None:
    """Health NOT_SERVING for every service, keep serving `readiness_seconds` while load balancers
    notice, then stop taking calls and give those in flight `grace_seconds`. `alongside`: other
    shutdowns (the REST server's) run at the same time."""
    if servicer is not None:
        await servicer.enter_graceful_shutdown()
    if readiness_seconds > 0:
        await asyncio.sleep(readiness_seconds)
    await asyncio.gather(server.stop(grace_seconds), *alongside, return_exceptions=True)
