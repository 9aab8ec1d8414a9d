"""Shared processes for tests/reliability: one model server with the tiny exact models (half,
housing, fashion) and two gateways in front of it, one open (fuzzing) and one with tokens and TLS
(security). Module-free: package-scoped so every test file reuses them.

Hypothesis profiles: `ci` (default, a few hundred cases over the fuzz tests) and `bench`
(TFGATE_HYPOTHESIS_PROFILE=bench, TFGATE_FUZZ_EXAMPLES cases in total, used by
`python -m benchmarks.reliability`).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.fixtures_servers import start_model_server
from tests.gateway.helpers import Gateway, make_certs
from tfgate.serving.processes import model_config_text

from .models import make_fashion, make_half, make_housing

FUZZ_TESTS = 8  # number of @given tests in test_fuzz.py, to spread the bench budget
_common = dict(deadline=None, derandomize=False, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=40, **_common)
settings.register_profile("bench", max_examples=max(1, int(os.environ.get("TFGATE_FUZZ_EXAMPLES", "10000"))
                                                      // FUZZ_TESTS), **_common)
settings.load_profile(os.environ.get("TFGATE_HYPOTHESIS_PROFILE", "ci"))

TOKEN_ALL = "tok-all-7f3a9c1e55d2"
TOKEN_HOUSING = "tok-housing-b81d04e6aa93"
PAYLOAD_MARKER = "payload-marker-5c2e9d"


@pytest.fixture(scope="package")
def model_bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel-models")
    bases = {name: root / name for name in ("half", "housing", "fashion")}
    for b in bases.values():
        b.mkdir()
    make_half(bases["half"], 1)
    make_housing(bases["housing"], 1)
    make_fashion(bases["fashion"], 1)
    return bases


@pytest.fixture(scope="package")
def backend(tmp_path_factory, model_bases):
    server = start_model_server(tmp_path_factory.mktemp("rel-ms"),
                                model_config=model_config_text({k: str(v) for k, v in model_bases.items()}))
    yield server
    server.stop()


def _models(backend) -> dict:
    return {name: {"targets": [backend.grpc_target]} for name in ("half", "housing", "fashion")}


@pytest.fixture(scope="package")
def gateway(tmp_path_factory, backend):
    g = Gateway(tmp_path_factory.mktemp("rel-gw"), {"models": _models(backend)})
    yield g
    g.stop()


@pytest.fixture(scope="package")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("rel-certs"))


@pytest.fixture(scope="package")
def secure_gateway(tmp_path_factory, backend, certs):
    import grpc

    tmp = tmp_path_factory.mktemp("rel-sgw")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN_ALL}\n{TOKEN_HOUSING} housing\n")
    creds = grpc.ssl_channel_credentials(certs["ca.crt"].read_bytes())
    g = Gateway(tmp, {"models": _models(backend), "log_level": "debug",
                      "auth": {"tokens_file": str(tokens)},
                      "tls": {"cert_file": str(certs["server.crt"]), "key_file": str(certs["server.key"])}},
                channel_creds=creds)
    yield g
    g.stop()
