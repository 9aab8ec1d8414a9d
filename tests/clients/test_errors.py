"""Errors: every gRPC status becomes its exception with the server's message; retries and wait-for-ready."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np
import pytest

from tests.gateway.helpers import free_port
from tfgate import clients
from tfgate.clients import (
    AsyncGatewayClient,
    DeadlineExceeded,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TfgateError,
    Unauthenticated,
    Unavailable,
)

from .conftest import ALL_TOKEN, HOUSING_TOKEN
from .helpers import StatusServer, housing_rows

CLASS_NAMES = {
    "CANCELLED": "Cancelled", "UNKNOWN": "Unknown", "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded", "NOT_FOUND": "NotFound", "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied", "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted", "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal", "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss", "UNAUTHENTICATED": "Unauthenticated",
}


@pytest.mark.parametrize("code", sorted(CLASS_NAMES))
def test_every_status_code_maps_to_its_exception_sync_and_async(status_server, code):
    assert {c.name for c in grpc.StatusCode} - {"OK"} == set(CLASS_NAMES)
    cls = getattr(clients, CLASS_NAMES[code])
    md = [("x-want-code", code), ("x-want-message", f"the server says {code.lower()}")]
    with GatewayClient(status_server.target, metadata=md, retries=0) as c:
        with pytest.raises(cls) as info:
            c.list_models()
    err = info.value
    assert type(err) is cls and isinstance(err, TfgateError)
    assert err.code == grpc.StatusCode[code] and err.message == f"the server says {code.lower()}"
    assert err.request_id == "req-42" and str(err) == f"{code}: the server says {code.lower()}"

    async def call():
        async with AsyncGatewayClient(status_server.target, metadata=md, retries=0) as ac:
            await ac.list_models()

    with pytest.raises(cls, match=f"the server says {code.lower()}"):
        asyncio.run(call())


def test_real_gateway_errors(gateway):
    rec = housing_rows(1)
    with GatewayClient(gateway.target, token=ALL_TOKEN, retries=1, backoff=0.01) as c:
        with pytest.raises(NotFound, match="model 'nope'"):
            c.predict("nope", {"x": np.zeros(1, np.float32)})
        with pytest.raises(InvalidArgument, match="top_k"):
            c.classify_fashion(np.zeros((1, 28, 28), np.uint8), top_k=11)
        with pytest.raises(InvalidArgument, match=r"inputs\[median_income\]"):
            c.predict("housing", {"median_income": np.zeros(1, np.complex64)})
        with pytest.raises(Unavailable, match="attempts"):
            c.predict_housing(rec, model="down")
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            c.predict_housing(rec, model="slow")  # the model's own 300 ms deadline
        with pytest.raises(DeadlineExceeded):
            c.predict_housing(rec, model="slow", timeout=0.2)  # the caller's
        assert time.monotonic() - t0 < 5
    with GatewayClient(gateway.target) as c:
        with pytest.raises(Unauthenticated):
            c.list_models()
    with GatewayClient(gateway.target, token="wrong") as c:
        with pytest.raises(Unauthenticated):
            c.predict_housing(rec)
    with GatewayClient(gateway.target, token=HOUSING_TOKEN) as c:
        assert c.predict_housing(rec).version == 1
        with pytest.raises(PermissionDenied, match="fashion"):
            c.classify_fashion(np.zeros((1, 28, 28), np.uint8))


def test_resource_exhausted_at_the_concurrency_limit(tls_gateway, certs):
    opts = dict(ca_file=certs["ca.crt"], cert_file=certs["client.crt"], key_file=certs["client.key"],
                token=ALL_TOKEN)
    rec = housing_rows(1)
    with GatewayClient(tls_gateway.target, **opts) as c:
        outcomes: list[type] = []

        def hang():
            try:
                c.predict_housing(rec, model="hang", timeout=2.5)
            except TfgateError as err:
                outcomes.append(type(err))

        hanging = [threading.Thread(target=hang) for _ in range(2)]
        for t in hanging:
            t.start()
        time.sleep(0.8)
        with pytest.raises(ResourceExhausted, match="concurrency limit"):
            c.predict_housing(rec)
        for t in hanging:
            t.join()
        assert outcomes == [DeadlineExceeded, DeadlineExceeded]
        assert c.predict_housing(rec).version == 1  # capacity is back


def test_unavailable_is_retried_with_backoff_then_raised():
    port = free_port()  # nothing listens there
    with GatewayClient(f"127.0.0.1:{port}", retries=3, backoff=0.2, max_backoff=0.2, timeout=30) as c:
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            c.list_models()
        took = time.monotonic() - t0
    # three backoffs of uniform(0, 0.2) s; the refused connects themselves are fast
    assert took < 3
    with GatewayClient(f"127.0.0.1:{port}", retries=0) as c:
        with pytest.raises(Unavailable):
            c.list_models()


def test_retries_reach_a_server_that_comes_up_late():
    port = free_port()
    late: list[StatusServer] = []
    timer = threading.Timer(1.0, lambda: late.append(StatusServer(port)))
    timer.start()
    try:
        with GatewayClient(f"127.0.0.1:{port}", retries=60, backoff=0.2, max_backoff=0.4, timeout=20) as c:
            assert [m.name for m in c.list_models()] == ["m"]
    finally:
        timer.join()
        for s in late:
            s.stop()


def test_wait_for_ready_waits_instead_of_failing_fast():
    port = free_port()
    late: list[StatusServer] = []
    timer = threading.Timer(1.0, lambda: late.append(StatusServer(port)))
    t0 = time.monotonic()
    with GatewayClient(f"127.0.0.1:{port}", retries=0, timeout=2) as c:
        with pytest.raises(Unavailable):
            c.list_models()
    assert time.monotonic() - t0 < 1.0  # fails fast without wait-for-ready
    timer.start()
    try:
        with GatewayClient(f"127.0.0.1:{port}", retries=0, wait_for_ready=True, timeout=20) as c:
            assert [m.name for m in c.list_models()] == ["m"]
            assert late and late[0].calls == 1  # one call, no retry: it waited
    finally:
        timer.join()
        for s in late:
            s.stop()
