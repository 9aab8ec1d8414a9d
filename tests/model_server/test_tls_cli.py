"""TLS with client verification (`--ssl_config_file`), and the command line's flag handling."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures_servers import tfgate_command
from tests.model_server import models
from tests.model_server.helpers import predict_request, stubs
from tfgate.serving.model_server import flags as ms_flags


def _cert(name: str, issuer_key=None, issuer_name=None, ca: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = b.sign(issuer_key or key, hashes.SHA256())
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key, cert, pem_key, cert.public_bytes(serialization.Encoding.PEM)


def test_tls_with_client_verification(tmp_path, model_server_factory):
    ca_key, ca_cert, _, ca_pem = _cert("tfgate-test-ca", ca=True)
    _, _, server_key, server_pem = _cert("localhost", ca_key, ca_cert.subject)
    _, _, client_key, client_pem = _cert("client", ca_key, ca_cert.subject)
    # Text-format strings: a JSON string literal of ASCII PEM is also a valid proto string literal.
    (tmp_path / "ssl.config").write_text(
        f"server_key: {json.dumps(server_key.decode())}\nserver_cert: {json.dumps(server_pem.decode())}\n"
        f"custom_ca: {json.dumps(ca_pem.decode())}\nclient_verify: true\n")
    models.make_half_plus(tmp_path / "hp", 1)
    server = model_server_factory(tmp_path, model_name="hp", model_base_path=tmp_path / "hp", rest=False,
                                  flags=[f"--ssl_config_file={tmp_path / 'ssl.config'}"])
    target = f"localhost:{server.grpc_port}"
    good = grpc.ssl_channel_credentials(ca_pem, client_key, client_pem)
    ch, pred, _ = stubs(target, good)
    with ch:
        r = pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}), timeout=30)
    assert r.outputs["y"].float_val[0] == 3.0
    no_client_cert = grpc.ssl_channel_credentials(ca_pem)
    ch, pred, _ = stubs(target, no_client_cert)
    with ch, pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    ch, pred, _ = stubs(server.grpc_target)  # plaintext against a TLS port
    with ch, pytest.raises(grpc.RpcError):
        pred.Predict(predict_request("hp", {"x": np.array([2.0], np.float32)}), timeout=10)


def _run(*args, timeout=120):
    return subprocess.run([*tfgate_command(), "model-server", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_every_flag():
    r = _run("--help")
    assert r.returncode == 0
    for f in ms_flags.FLAGS:
        assert f"--{f.name}=" in r.stdout


def test_unknown_flag_is_an_error():
    r = _run("--port=1", "--no_such_flag=3")
    assert r.returncode == 2
    assert "Unknown command line flag 'no_such_flag'" in r.stderr


def test_flag_parsing_absl_style():
    o = ms_flags.parse(["--port=9000", "--rest_api_port", "9001", "--enable_batching", "--enable_model_warmup=false",
                        "--noenable_grpc_healthcheck_service", "--num_tflite_pools=2"])
    assert (o.port, o.rest_api_port, o.enable_batching, o.enable_model_warmup) == (9000, 9001, True, False)
    assert o.enable_grpc_healthcheck_service is False
    assert o.model_name == "default" and o.file_system_poll_wait_seconds == 1
    assert len(o.warnings) == 1 and "num_tflite_pools" in o.warnings[0]
    with pytest.raises(ms_flags.FlagError):
        ms_flags.parse(["--port=abc"])
    with pytest.raises(ms_flags.FlagError):
        ms_flags.parse(["--enable_batching=maybe"])


def test_batching_parameters_without_enable_batching_refuses_to_start(tmp_path):
    (tmp_path / "b.config").write_text("max_batch_size { value: 4 }")
    r = _run("--model_name=m", f"--model_base_path={tmp_path}", f"--batching_parameters_file={tmp_path / 'b.config'}")
    assert r.returncode == 255
    assert "INVALID_ARGUMENT" in r.stderr and "enable_batching" in r.stderr
