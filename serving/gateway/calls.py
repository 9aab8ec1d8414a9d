"""What every gateway RPC goes through: request id, concurrency limit, bearer token, a request that
did not parse, status mapping, metrics and the access line."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time

import grpc

from ..grpc_plumbing import Undecodable
from ..status import ServingError, invalid
from . import logs, metrics
from .auth import Principal, TokenStore

log = logging.getLogger("tfgate.gateway")


class Call:
    """Per-request state: id, deadline, who is calling, what to log."""

    __slots__ = ("method", "request_id", "model", "principal", "retries", "label", "context", "deadline")

    def __init__(self, method: str, context, request_id: str):
        self.method, self.context, self.request_id = method, context, request_id
        self.model, self.principal, self.retries, self.label = "", None, 0, ""
        self.deadline = 0.0

    def backend_metadata(self) -> tuple:
        return (("x-request-id", self.request_id),)


class Calls:
    """The state the middleware shares across calls: calls in flight against the limit, the tokens."""

    def __init__(self, max_concurrent_requests: int, tokens: TokenStore | None):
        self.max_concurrent_requests = max_concurrent_requests
        self.tokens = tokens
        self.in_flight = 0

    def record(self, call: Call, code: grpc.StatusCode, t0: float) -> None:
        elapsed = time.perf_counter() - t0
        model = call.model or "-"
        count, latency = metrics.request_children(model, call.method, code.name)
        count.inc()
        latency.observe(elapsed)
        if logs.access_enabled():
            logs.access({
                "request_id": call.request_id, "method": call.method, "model": model,
                "code": code.name, "ms": round(elapsed * 1000, 3), "retries": call.retries,
                "label": call.label,
                "principal": call.principal.index if isinstance(call.principal, Principal) else None})

    async def run(self, method: str, fn, owner, request, context):
        """`await fn(owner, request, context, call)` inside the middleware; a failure is answered
        with its status (anything unexpected: INTERNAL, logged with the request id)."""
        md = context.invocation_metadata() or ()
        rid = auth = None
        for k, v in md:
            if k == "x-request-id":
                rid = v[:128]
            elif k == "authorization":
                auth = v
        call = Call(method, context, rid or os.urandom(16).hex())
        context.set_trailing_metadata((("x-request-id", call.request_id),))
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        details = ""
        if self.in_flight >= self.max_concurrent_requests:
            metrics.REJECTED.inc()
            code, details = grpc.StatusCode.RESOURCE_EXHAUSTED, (
                f"gateway at its concurrency limit ({self.max_concurrent_requests}); retry later")
            self.record(call, code, t0)
        else:
            self.in_flight += 1
            metrics.IN_FLIGHT.inc()
            try:
                if self.tokens is not None:
                    call.principal = self.tokens.authenticate(auth)
                    if call.principal is None:
                        raise ServingError(grpc.StatusCode.UNAUTHENTICATED,
                                           "missing or unknown bearer token (metadata 'authorization')")
                if type(request) is Undecodable:
                    raise invalid(f"request: not a valid {request.type_name} ({request.error})")
                remaining = context.time_remaining()
                call.deadline = time.monotonic() + (remaining if remaining is not None else 3600.0)
                return await fn(owner, request, context, call)
            except ServingError as exc:  # the gateway's own refusals and the backends' answers
                code, details = exc.code, exc.message
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                log.exception("unexpected error", extra={"request_id": call.request_id})
                code, details = grpc.StatusCode.INTERNAL, f"gateway error (request id {call.request_id})"
            finally:
                self.in_flight -= 1
                metrics.IN_FLIGHT.dec()
                self.record(call, code, t0)
        await context.abort(code, details)


def handled(method: str):
    """Wraps an RPC method `fn(self, request, context, call)` of an object with a `calls: Calls`
    attribute into a gRPC behaviour `(self, request, context)` that runs it through the middleware."""

    def deco(fn):
        @functools.wraps(fn)
        async def wrapper(self, request, context):
            return await self.calls.run(method, fn, self, request, context)

        return wrapper

    return deco
