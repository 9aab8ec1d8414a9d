"""Model-server flags that had no test, each against a real `tfgate model-server` process:
--rest_api_timeout_in_ms, --saved_model_tags, the TF threading flags,
--allow_version_labels_for_unavailable_models, large-batch splitting (enable_large_batch_splitting,
max_execution_batch_size), the batching queue-latency metric, bounded metric labels, and REST drain
on SIGTERM. Two servers; tests run in file order against them."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import threading
import time
import uuid

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tests.model_server import models
from tests.model_server.helpers import http, metric, out, predict_request, stubs

CPUS = os.cpu_count() or 1
# Thread counts no default reaches on this machine (TF's defaults follow the core count), so a
# count of TF's own threads shows the flag was applied.
INTER_OP = 2 * CPUS + 1
INTRA_OP = 8 * CPUS + 16
SESSION_PARALLELISM = 2 * CPUS + 3
REST_TIMEOUT_MS = 300
SLOW_N = 8000  # 200x200 matmuls: seconds here, far above the REST timeout on any box

BATCHING = """
max_batch_size { value: 16 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 8 }
num_batch_threads { value: 1 }
enable_large_batch_splitting { value: true }
max_execution_batch_size { value: 4 }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
"""
PROCESSED = ":tensorflow:serving:batching_session:processed_batch_size"
PADDING = ":tensorflow:serving:batching_session:padding_size"
QUEUING = ":tensorflow:serving:batching_session:queuing_latency"
REQUESTS = ":tensorflow:serving:request_count_total"


@pytest.fixture(scope="module")
def flagged(tmp_path_factory, model_server_factory):
    """hp version 1 (y = 0.5 x + 2); label canary names version 2, which is not on disk yet."""
    d = tmp_path_factory.mktemp("flags")
    models.make_half_plus(d / "hp", 1, b=2.0)
    (d / "batching.config").write_text(BATCHING)
    (d / "monitoring.config").write_text('prometheus_config { enable: true, path: "/metrics" }')
    config = f"""
model_config_list {{
  config {{
    name: "hp" base_path: "{d / 'hp'}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
"""
    server = model_server_factory(d, model_config=config, flags=[
        "--enable_batching", f"--batching_parameters_file={d / 'batching.config'}",
        f"--monitoring_config_file={d / 'monitoring.config'}",
        f"--rest_api_timeout_in_ms={REST_TIMEOUT_MS}",
        f"--tensorflow_intra_op_parallelism={INTRA_OP}", f"--tensorflow_inter_op_parallelism={INTER_OP}",
        "--allow_version_labels_for_unavailable_models", "--file_system_poll_wait_seconds=1"])
    ch, pred, _ = stubs(server.grpc_target)
    yield d, server, pred
    ch.close()


def metrics_text(server) -> str:
    status, text = http("GET", server.rest_url + "/metrics")
    assert status == 200
    return text


def deltas(server, send, *names, **labels) -> list[float]:
    before = metrics_text(server)
    send()
    after = metrics_text(server)
    return [metric(after, n, **labels) - metric(before, n, **labels) for n in names]


def thread_names(pid: int) -> collections.Counter:
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                names[fh.read().strip()] += 1
        except OSError:  # the thread ended while we looked
            pass
    return names


# ---- large-batch splitting
BATCH_COUNTERS = (PROCESSED + "_count", PROCESSED + "_sum", PADDING + "_sum")
HP1 = {"model_name": "hp", "signature_name": "serving_default"}


def test_request_larger_than_an_execution_batch_is_split_and_merged_in_order(flagged):
    _, server, pred = flagged
    x = np.arange(10, dtype=np.float32)
    got = {}

    def send():
        got["r"] = pred.Predict(predict_request("hp", {"x": x}, version=1), timeout=30)

    # max_execution_batch_size 4: 10 rows run as batches of 4, 4 and 2 (2 is an allowed size: no padding).
    assert deltas(server, send, *BATCH_COUNTERS, **HP1) == [3, 10, 0]
    np.testing.assert_array_equal(out(got["r"], "y"), 0.5 * x + 2)

    # 7 rows: 4 and 3; the 3 is padded to 4.
    x7 = np.arange(7, dtype=np.float32) + 100

    def send7():
        got["r"] = pred.Predict(predict_request("hp", {"x": x7}, version=1), timeout=30)

    assert deltas(server, send7, *BATCH_COUNTERS, **HP1) == [2, 7, 1]
    np.testing.assert_array_equal(out(got["r"], "y"), 0.5 * x7 + 2)


def test_split_requests_share_batches_with_others(flagged):
    _, server, pred = flagged
    barrier = threading.Barrier(3)
    inputs = [np.arange(n, dtype=np.float32) + 10 * n for n in (1, 6, 3)]

    def one(x):
        barrier.wait()
        return out(pred.Predict(predict_request("hp", {"x": x}, version=1), timeout=30), "y")

    results = {}

    def send():
        with cf.ThreadPoolExecutor(3) as ex:
            results["y"] = list(ex.map(one, inputs))

    batches, rows, _ = deltas(server, send, *BATCH_COUNTERS, **HP1)
    for x, y in zip(inputs, results["y"], strict=True):
        np.testing.assert_array_equal(y, 0.5 * x + 2)  # every caller gets exactly its rows, in order
    assert rows == 10
    assert batches >= 3  # no executed batch holds more than max_execution_batch_size (4) rows


def test_request_larger_than_max_batch_size_is_refused(flagged):
    _, server, pred = flagged
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("hp", {"x": np.zeros(17, np.float32)}, version=1), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "Task size 17 is larger than maximum input batch size 16"
    status, body = http("POST", server.rest_url + "/v1/models/hp/versions/1:predict",
                        {"instances": list(range(16))})
    assert status == 200 and body["predictions"] == [0.5 * i + 2 for i in range(16)]


def test_splitting_parameters_are_checked_at_start(tmp_path):
    import subprocess

    from tfgate.serving.processes import tfgate_command

    cfg = tmp_path / "b.config"
    cfg.write_text("max_batch_size { value: 8 }\nenable_large_batch_splitting { value: true }\n"
                   "max_execution_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 8\n")
    r = subprocess.run([*tfgate_command(), "model-server", "--model_name=m", f"--model_base_path={tmp_path}",
                        "--enable_batching", f"--batching_parameters_file={cfg}", "--port=0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 255
    assert ("Last entry in allowed_batch_sizes must be equal to max_execution_batch_size; last entry was 8; "
            "expected 4") in r.stderr


# ---- batching queue latency
def test_queuing_latency_histogram_counts_every_task(flagged):
    _, server, pred = flagged

    def send():
        pred.Predict(predict_request("hp", {"x": [1.0]}, version=1), timeout=30)

    assert metric(metrics_text(server), QUEUING + "_bucket", le="+Inf", **HP1) > 0  # exported, with buckets
    count, total = deltas(server, send, QUEUING + "_count", QUEUING + "_sum", **HP1)
    assert count == 1
    # A lone 1-row task waits out batch_timeout_micros (20 ms) for company before its batch runs.
    assert total >= 20_000
    # A split request is queued as pieces: one observation per piece.
    count, _ = deltas(server, lambda: pred.Predict(predict_request("hp", {"x": np.ones(9, np.float32)},
                                                                   version=1), timeout=30),
                      QUEUING + "_count", QUEUING + "_sum", **HP1)
    assert count == 3


# ---- bounded metric labels
def test_unknown_model_and_signature_names_share_one_label(flagged):
    _, server, pred = flagged
    names = [f"m-{uuid.uuid4().hex}" for _ in range(50)]
    for name in names:
        with pytest.raises(grpc.RpcError) as e:
            pred.Predict(predict_request(name, {"x": [1.0]}), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as e:
            pred.Predict(predict_request("hp", {"x": [1.0]}, version=1, signature=f"s-{uuid.uuid4().hex}"),
                         timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    text = metrics_text(server)
    assert not any(n in text for n in names)
    series = [line for line in text.splitlines() if line.startswith(REQUESTS + "{")]
    models_seen = {line.split('model_name="')[1].split('"')[0] for line in series}
    assert models_seen == {"hp", "__unknown__"}
    assert len(series) <= 8  # hp's signatures x statuses seen in this module, plus the unknown bucket
    assert metric(text, REQUESTS, model_name="__unknown__", signature_name="__unknown__",
                  status="NOT_FOUND") == 50
    assert metric(text, REQUESTS, model_name="hp", signature_name="__unknown__",
                  status="FAILED_PRECONDITION") == 10


# ---- TF threading flags
def test_tensorflow_thread_pools_have_the_flagged_sizes(flagged):
    _, server, _ = flagged
    names = thread_names(server.pid)
    # TF names its inter-op pool threads "tf_Compute"; a process may hold one pool per TF runtime
    # (eager context, Session), each built from the same flags.
    assert names["tf_Compute"] in (INTER_OP, 2 * INTER_OP), names
    # The intra-op (Eigen) workers carry the process's own name; INTRA_OP of them outnumber every
    # other thread the server starts by itself.
    main = open(f"/proc/{server.pid}/comm").read().strip()
    assert names[main] >= INTRA_OP - 1, names


# ---- REST timeout
def test_rest_call_longer_than_rest_api_timeout_is_deadline_exceeded(flagged):
    _, server, pred = flagged
    # A quick call is within the timeout.
    status, resp = http("POST", server.rest_url + "/v1/models/hp/versions/1:predict", {"instances": [2.0]})
    assert status == 200 and resp == {"predictions": [3.0]}
    body = {"signature_name": "slow", "inputs": {"x": [1.0], "n": [SLOW_N]}}
    status, resp = http("POST", server.rest_url + "/v1/models/hp/versions/1:predict", body)
    assert status == 504 and resp == {"error": "Deadline Exceeded"}
    # The slow queue runs one batch at a time: this answers once the timed-out work is done.
    pred.Predict(predict_request("hp", {"x": [1.0], "n": np.array([1], np.int32)}, version=1,
                                 signature="slow"), timeout=120)


# ---- version labels for versions not yet available
def test_label_may_name_a_version_before_it_is_available(flagged):
    d, server, pred = flagged
    stable = pred.Predict(predict_request("hp", {"x": [2.0]}, label="stable"), timeout=30)
    assert stable.outputs["y"].float_val[0] == 3.0
    with pytest.raises(grpc.RpcError) as e:
        pred.Predict(predict_request("hp", {"x": [2.0]}, label="canary"), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "Servable not found for request: Specific(hp, 2)"

    models.make_half_plus(d / "hp", 2, b=3.0)  # the label starts to resolve once version 2 loads
    deadline = time.monotonic() + 120
    while True:
        try:
            r = pred.Predict(predict_request("hp", {"x": [2.0]}, label="canary"), timeout=30)
            break
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert time.monotonic() < deadline, "version 2 never became available"
            time.sleep(0.2)
    assert r.model_spec.version.value == 2 and r.outputs["y"].float_val[0] == 4.0
    stable = pred.Predict(predict_request("hp", {"x": [2.0]}, label="stable"), timeout=30)
    assert stable.model_spec.version.value == 1


# ---- second server: a SavedModel whose only MetaGraph has the tags {serve, experimental}
TAGS = ["serve", "experimental"]


def make_tagged_model(base, tags: list[str]) -> str:
    """A TF1-style SavedModel (SavedModelBuilder) whose one MetaGraph has `tags`: serving_default
    x -> y = 0.5 x + 2, and slow (x, n) -> the same y after about max(n) 200x200 matmuls."""
    v1 = tf.compat.v1
    path = os.path.join(base, "1")
    with tf.Graph().as_default():
        b = v1.Variable(2.0, name="b")
        x = v1.placeholder(tf.float32, [None], name="x")
        n = v1.placeholder(tf.int32, [None], name="n")
        y = tf.add(0.5 * x, b, name="y")
        m = tf.ones([200, 200]) / 200.0
        _, acc = tf.while_loop(lambda i, _: i < tf.reduce_max(n), lambda i, a: (i + 1, tf.matmul(a, m)), (0, m))
        slow_y = tf.add(y, 0.0 * tf.reduce_sum(acc), name="slow_y")
        sdu = v1.saved_model.signature_def_utils
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.builder.SavedModelBuilder(path)
            builder.add_meta_graph_and_variables(sess, tags, signature_def_map={
                "serving_default": sdu.predict_signature_def({"x": x}, {"y": y}),
                "slow": sdu.predict_signature_def({"x": x, "n": n}, {"y": slow_y}),
            })
            builder.save()
    return path


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, model_server_factory):
    d = tmp_path_factory.mktemp("tags")
    make_tagged_model(d / "tagged", TAGS)
    server = model_server_factory(d, model_name="tagged", model_base_path=d / "tagged", flags=[
        f"--saved_model_tags={','.join(TAGS)}", f"--tensorflow_session_parallelism={SESSION_PARALLELISM}",
        "--max_num_load_retries=0"])
    ch, pred, _ = stubs(server.grpc_target)
    yield d, server, pred
    ch.close()


def test_saved_model_tags_select_the_meta_graph(tagged):
    _, server, pred = tagged
    r = pred.Predict(predict_request("tagged", {"x": [2.0, 4.0]}), timeout=30)
    assert list(r.outputs["y"].float_val) == [3.0, 4.0]
    status, body = http("POST", server.rest_url + "/v1/models/tagged:predict", {"instances": [6.0]})
    assert status == 200 and body == {"predictions": [5.0]}


def test_session_parallelism_sizes_both_pools(tagged):
    _, server, _ = tagged
    names = thread_names(server.pid)
    # --tensorflow_session_parallelism stands in for both the intra- and inter-op counts.
    assert names["tf_Compute"] in (SESSION_PARALLELISM, 2 * SESSION_PARALLELISM), names


def test_sigterm_lets_an_in_flight_rest_request_finish(tagged):
    _, server, _ = tagged
    result = {}

    def call():
        result["r"] = http("POST", server.rest_url + "/v1/models/tagged:predict",
                           {"signature_name": "slow", "inputs": {"x": [2.0], "n": [SLOW_N]}}, timeout=120)
        result["answered"] = time.monotonic()

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the request is running
    signalled = time.monotonic()
    code = server.stop()
    t.join()
    assert code == 0
    assert result["r"] == (200, {"outputs": [3.0]})
    assert result["answered"] > signalled  # it was still in flight when SIGTERM came
    assert "draining in-flight requests" in server.log()
