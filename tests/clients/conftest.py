"""Servers shared by the client tests: one model server with the session's real housing and fashion
models, a plain gateway in front of it (tokens, a dead model, a hanging one) and a mutual-TLS gateway
(tokens, concurrency limit 2). All on loopback, started once for this folder."""

from __future__ import annotations

import pytest

from tests.gateway.helpers import Gateway, free_port, make_certs
from tfgate.serving.processes import model_config_text

from .helpers import HangingBackend, StatusServer

ALL_TOKEN = "client-all-token"
HOUSING_TOKEN = "client-housing-token"


@pytest.fixture(scope="session")
def model_server(model_server_factory, housing_model_base, fashion_model_base):
    config = model_config_text({"housing": str(housing_model_base), "fashion": str(fashion_model_base)})
    return model_server_factory(model_config=config, rest=False)


@pytest.fixture(scope="session")
def black_hole():
    """A backend that accepts calls and never answers Predict."""
    backend = HangingBackend()
    yield backend.target
    backend.stop()


@pytest.fixture(scope="session")
def tokens_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("client-auth") / "tokens"
    path.write_text(f"{ALL_TOKEN}\n{HOUSING_TOKEN} housing\n")
    return path


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, model_server, black_hole, tokens_file):
    """Plain-text gateway: housing and fashion on the real models; `down` has no live backend,
    `slow` hangs with a 300 ms default deadline."""
    g = Gateway(tmp_path_factory.mktemp("client-gw"), {
        "auth": {"tokens_file": str(tokens_file)},
        "max_concurrent_requests": 256,
        "models": {
            "housing": {"targets": [model_server.grpc_target]},
            "fashion": {"targets": [model_server.grpc_target]},
            "down": {"targets": [f"127.0.0.1:{free_port()}"]},
            "slow": {"targets": [black_hole], "deadline_ms": 300},
        },
    })
    yield g
    g.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("client-certs"))


@pytest.fixture(scope="session")
def tls_gateway(tmp_path_factory, model_server, black_hole, tokens_file, certs):
    """Mutual-TLS gateway with tokens; at most 2 requests in flight; `hang` never answers."""
    import grpc

    creds = grpc.ssl_channel_credentials(certs["ca.crt"].read_bytes(), certs["client.key"].read_bytes(),
                                         certs["client.crt"].read_bytes())
    g = Gateway(tmp_path_factory.mktemp("client-tls-gw"), {
        "tls": {"cert_file": str(certs["server.crt"]), "key_file": str(certs["server.key"]),
                "client_ca_file": str(certs["ca.crt"])},
        "auth": {"tokens_file": str(tokens_file)},
        "max_concurrent_requests": 2,
        "models": {
            "housing": {"targets": [model_server.grpc_target]},
            "hang": {"targets": [black_hole], "deadline_ms": 20000},
        },
    }, channel_creds=creds)
    yield g
    g.stop()


@pytest.fixture(scope="session")
def status_server():
    """In-process InferenceGateway that answers ListModels with the status code it is asked for."""
    server = StatusServer()
    yield server
    server.stop()
