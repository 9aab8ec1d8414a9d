"""TLS and mTLS on both sides of the real gateway, with real certificates on loopback.

One model server requires client certificates (`--ssl_config_file` with client_verify). Gateway
`mtls` requires client certificates from its callers and presents its own to the backend;
gateway `tls` only offers TLS to callers and has no client certificate for the backend, so the
backend must refuse it.
"""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .helpers import Gateway, make_certs
from .test_with_model_servers import _save_model, records


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    good = make_certs(tmp_path_factory.mktemp("pki"))
    other = make_certs(tmp_path_factory.mktemp("pki-other"))  # a CA nobody here trusts
    return good, other


def _creds(pki, with_client_cert=True):
    ca = pki["ca.crt"].read_bytes()
    if not with_client_cert:
        return grpc.ssl_channel_credentials(ca)
    return grpc.ssl_channel_credentials(ca, pki["client.key"].read_bytes(), pki["client.crt"].read_bytes())


@pytest.fixture(scope="module")
def backend(tmp_path_factory, model_server_factory, certs):
    good, _ = certs
    tmp = tmp_path_factory.mktemp("tls-ms")
    _save_model(tmp / "housing", 1)
    # A JSON string literal of ASCII PEM is also a valid text-format proto string.
    ssl = tmp / "ssl.config"
    ssl.write_text("".join(f"{k}: {json.dumps(good[f].read_text())}\n" for k, f in
                           (("server_key", "server.key"), ("server_cert", "server.crt"),
                            ("custom_ca", "ca.crt"))) + "client_verify: true\n")
    return model_server_factory(tmp, model_name="housing", model_base_path=tmp / "housing", rest=False,
                                flags=[f"--ssl_config_file={ssl}"])


@pytest.fixture(scope="module")
def mtls_gw(tmp_path_factory, certs, backend):
    good, _ = certs
    g = Gateway(tmp_path_factory.mktemp("gw-mtls"), {
        "tls": {"cert_file": str(good["server.crt"]), "key_file": str(good["server.key"]),
                "client_ca_file": str(good["ca.crt"])},
        "backend": {"tls": {"ca_file": str(good["ca.crt"]), "cert_file": str(good["client.crt"]),
                            "key_file": str(good["client.key"]), "server_name": "localhost"}},
        "models": {"housing": {"targets": [backend.grpc_target]}},
    }, channel_creds=_creds(good))
    yield g
    assert g.stop() == 0


@pytest.fixture(scope="module")
def tls_gw(tmp_path_factory, certs, backend):
    good, _ = certs
    g = Gateway(tmp_path_factory.mktemp("gw-tls"), {
        "tls": {"cert_file": str(good["server.crt"]), "key_file": str(good["server.key"])},
        "backend": {"tls": {"ca_file": str(good["ca.crt"])},
                    "retry": {"max_attempts": 2}},
        "models": {"housing": {"targets": [backend.grpc_target], "deadline_ms": 5000}},
    }, channel_creds=_creds(good, with_client_cert=False))
    yield g
    assert g.stop() == 0


def _predict(channel, timeout=10):
    return pb_grpc.InferenceGatewayStub(channel).PredictHousing(
        pb.PredictHousingRequest(records=records(3)), timeout=timeout)


def _code(channel) -> grpc.StatusCode:
    try:
        _predict(channel, timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_mtls_both_ways_answers(mtls_gw):
    with mtls_gw.channel() as ch:
        out = _predict(ch)
    expect = np.array([r.median_income * 1000 + (1 if r.HasField("total_bedrooms") else 0)
                       for r in records(3)], np.float32)
    np.testing.assert_array_equal(np.array(out.median_house_values, np.float32), expect)
    assert out.served_by.version == 1


@pytest.mark.parametrize("who", ["no client cert", "client cert from another CA", "trusts another CA",
                                 "plaintext"])
def test_mtls_refuses_callers_without_a_trusted_certificate(mtls_gw, certs, who):
    good, other = certs
    if who == "plaintext":
        ch = grpc.insecure_channel(mtls_gw.target)
    else:
        creds = {"no client cert": _creds(good, with_client_cert=False),
                 "client cert from another CA": grpc.ssl_channel_credentials(
                     good["ca.crt"].read_bytes(), other["client.key"].read_bytes(),
                     other["client.crt"].read_bytes()),
                 "trusts another CA": _creds(other)}[who]
        ch = mtls_gw.channel(creds)
    with ch:
        assert _code(ch) == grpc.StatusCode.UNAVAILABLE


def test_tls_without_client_cert_reaches_gateway_but_backend_refuses_gateway(tls_gw, backend):
    with tls_gw.channel() as ch:
        ok = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert ok.status == health_pb2.HealthCheckResponse.SERVING
        # The backend requires a client certificate; this gateway has none.
        assert _code(ch) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(tls_gw.target) as ch:
        assert _code(ch) == grpc.StatusCode.UNAVAILABLE
    assert backend.alive()


def test_backend_certificate_is_verified(tmp_path, certs, backend):
    """A gateway that trusts another CA must not talk to the backend (no silent downgrade)."""
    _, other = certs
    g = Gateway(tmp_path, {
        "backend": {"tls": {"ca_file": str(other["ca.crt"]), "cert_file": str(other["client.crt"]),
                            "key_file": str(other["client.key"])}, "retry": {"max_attempts": 2}},
        "models": {"housing": {"targets": [backend.grpc_target]}},
    })
    try:
        with g.channel() as ch:
            assert _code(ch) == grpc.StatusCode.UNAVAILABLE
    finally:
        assert g.stop() == 0
