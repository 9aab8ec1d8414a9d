"""Client-side helpers: only `tensorflow-serving-api` messages and stubs, as a TF Serving user has."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)


def stubs(target: str, credentials=None):
    ch = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    return (ch, prediction_service_pb2_grpc.PredictionServiceStub(ch),
            model_service_pb2_grpc.ModelServiceStub(ch))


def predict_request(model: str, inputs: dict, *, version: int | None = None, label: str | None = None,
                    signature: str = "", output_filter=()) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    if signature:
        req.model_spec.signature_name = signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    req.output_filter.extend(output_filter)
    return req


def examples(key: str, values, kind: str = "float"):
    out = []
    for v in values:
        ex = tf.train.Example()
        feat = ex.features.feature[key]
        if kind == "float":
            feat.float_list.value.append(v)
        elif kind == "int":
            feat.int64_list.value.append(v)
        else:
            feat.bytes_list.value.append(v if isinstance(v, bytes) else str(v).encode())
        out.append(ex)
    return out


def classify_request(model, exs, signature="") -> classification_pb2.ClassificationRequest:
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    req.input.example_list.examples.extend(exs)
    return req


def regress_request(model, exs, signature="") -> regression_pb2.RegressionRequest:
    req = regression_pb2.RegressionRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    req.input.example_list.examples.extend(exs)
    return req


def out(resp, key) -> np.ndarray:
    return tf.make_ndarray(resp.outputs[key])


def http(method: str, url: str, body=None, raw: bytes | None = None, timeout: float = 30):
    """(status, parsed JSON or text) for a REST call."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def metric(text: str, name: str, **labels) -> float:
    """Sum of a Prometheus sample's values over series matching the given labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^(\S+?)(\{(.*)\})? (\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            total += float(m.group(4))
    return total


def wait_for(cond, timeout: float = 60, what: str = ""):
    """cond()'s first truthy value, polled every 0.2 s; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")
