"""TLS (mutual, with a token), the TF-free core install, and TFServingClient against the model server."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest

from tests.conftest import HOUSING_CSV, REPO
from tfgate.clients import GatewayClient, Unauthenticated, Unavailable

from .conftest import ALL_TOKEN
from .helpers import BLOCK_TF, fashion_test_set, housing_rows, run_tfgate


def test_mutual_tls_with_token(tls_gateway, certs, gateway):
    mtls = dict(ca_file=certs["ca.crt"], cert_file=certs["client.crt"], key_file=certs["client.key"])
    rows = housing_rows(50)
    with GatewayClient(tls_gateway.target, token=ALL_TOKEN, **mtls) as c:
        values = c.predict_housing(rows).values
        assert [m.name for m in c.list_models()] == ["hang", "housing"]
    with GatewayClient(gateway.target, token=ALL_TOKEN) as plain:
        np.testing.assert_allclose(values, plain.predict_housing(rows).values, rtol=1e-5)
    with GatewayClient(tls_gateway.target, **mtls) as c, pytest.raises(Unauthenticated):
        c.list_models()  # TLS does not replace the token
    # No client certificate, the system CAs, or plain text: the handshake fails.
    for opts in ({"ca_file": certs["ca.crt"]}, {"tls": True}, {}):
        with GatewayClient(tls_gateway.target, token=ALL_TOKEN, retries=0, timeout=5, **opts) as c:
            with pytest.raises(Unavailable):
                c.list_models()
    # A server name that is not in the certificate is refused; the right override is accepted.
    with GatewayClient(tls_gateway.target, token=ALL_TOKEN, server_name="gateway.example", retries=0, **mtls) as c:
        with pytest.raises(Unavailable):
            c.list_models()
    with GatewayClient(tls_gateway.target, token=ALL_TOKEN, server_name="localhost", **mtls) as c:
        assert c.get_model("housing").healthy_targets == 1


def test_cli_over_mutual_tls_with_token_from_env(tls_gateway, certs, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("\n".join(HOUSING_CSV.read_text().splitlines()[:6]) + "\n")
    tls = ["--target", tls_gateway.target, "--tls-ca", str(certs["ca.crt"]), "--tls-cert", str(certs["client.crt"]),
           "--tls-key", str(certs["client.key"])]
    r = run_tfgate("predict", "housing", "--csv", str(small), "--format", "json", *tls,
                   env={"TFGATE_TOKEN": ALL_TOKEN})
    assert r.returncode == 0, r.stderr
    assert [p["line"] for p in json.loads(r.stdout)["predictions"]] == [2, 3, 4, 5, 6]
    no_cert = run_tfgate("models", "--target", tls_gateway.target, "--tls-ca", str(certs["ca.crt"]),
                         "--token", ALL_TOKEN, "--timeout", "5")
    assert no_cert.returncode == 1 and "UNAVAILABLE" in no_cert.stderr


def test_core_library_and_cli_work_where_tensorflow_cannot_be_imported(gateway, tmp_path):
    code = BLOCK_TF + f"""
import numpy as np
try:
    import tensorflow
except ImportError:
    pass
else:
    raise SystemExit('the blocker does not work')
import importlib, pkgutil, tfgate.clients.aio, tfgate.clients.cli
for info in pkgutil.iter_modules(tfgate.clients.cli.__path__):  # every command module (not __main__)
    if not info.name.startswith('_'):
        importlib.import_module('tfgate.clients.cli.' + info.name)
from tfgate import clients
from tfgate.clients import GatewayClient
with GatewayClient({gateway.target!r}, token={ALL_TOKEN!r}) as c:
    v = c.predict_housing([{{"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41,
        "total_rooms": 880, "total_bedrooms": None, "population": 322, "households": 126,
        "median_income": 8.3252, "ocean_proximity": "NEAR BAY"}}])
    f = c.classify_fashion(np.zeros((2, 28, 28), np.uint8), top_k=1)
    p = c.predict("fashion", {{"image": np.zeros((1, 28, 28), np.uint8)}})
try:
    clients.TFServingClient
except ImportError as exc:
    assert "[serving]" in str(exc), exc
else:
    raise SystemExit('TFServingClient imported without TensorFlow?')
# The command modules import the server side (tfgate.pipeline, tfgate.serving) only inside a command.
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorflow_serving')
                or m.startswith(('tfgate.pipeline', 'tfgate.serving')))
print(v.version, f.class_ids.shape, p['probabilities'].shape, loaded)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "1 (2, 1) (1, 10) []"
    small = tmp_path / "small.csv"
    small.write_text("\n".join(HOUSING_CSV.read_text().splitlines()[:3]) + "\n")
    cli = run_tfgate("predict", "housing", "--csv", str(small), "--format", "json", "--target", gateway.target,
                     "--token", ALL_TOKEN, block_tf=True)
    assert cli.returncode == 0, cli.stderr
    assert len(json.loads(cli.stdout)["predictions"]) == 2
    models = run_tfgate("models", "--target", gateway.target, "--token", ALL_TOKEN, block_tf=True)
    assert models.returncode == 0 and "housing" in models.stdout, models.stderr


def test_tfserving_client_directly_against_the_model_server(model_server, gateway):
    from tfgate.clients import TFServingClient
    from tfgate.clients.errors import NotFound

    images, _ = fashion_test_set(10)
    with TFServingClient(model_server.grpc_target, timeout=30) as tfs:
        direct = tfs.predict("fashion", {"image": images})
        assert direct.version == 1 and direct["probabilities"].shape == (10, 10)
        assert [(v.version, v.state) for v in tfs.model_status("housing")] == [(1, "AVAILABLE")]
        sigs = tfs.signatures("fashion")
        assert sigs["serving_default"]["inputs"] == ["image"]
        assert "probabilities" in sigs["serving_default"]["outputs"]
        with pytest.raises(NotFound):
            tfs.predict("nope", {"image": images})
    with GatewayClient(gateway.target, token=ALL_TOKEN) as c:
        via_gateway = c.predict("fashion", {"image": images})
    np.testing.assert_allclose(direct["probabilities"], via_gateway["probabilities"], rtol=1e-6)
    # The gateway re-exposes TF Serving's API: the same client works through it with the token.
    with TFServingClient(gateway.target, token=ALL_TOKEN) as tfs:
        np.testing.assert_allclose(tfs.predict("fashion", {"image": images})["probabilities"],
                                   direct["probabilities"], rtol=1e-6)
    assert grpc.StatusCode.NOT_FOUND == NotFound.code
