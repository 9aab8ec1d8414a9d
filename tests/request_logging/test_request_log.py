"""The request-log writer (serving/request_log.py): records, sampling, rotation, partial files, the
bounded queue, shutdown. Real files in tmp_path; TensorFlow's own TFRecord reader checks the framing."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client import CollectorRegistry, generate_latest
from tensorflow_serving.apis import prediction_log_pb2

from tfgate.serving import request_log as rl

from .helpers import Blocking, predict_pair


def _pair(i: int = 0):
    return predict_pair("housing", {"median_income": np.array([i], np.float32)},
                        {"median_house_value": np.array([i * 2.0], np.float32)}, version=3)


def _records(prefix) -> list[prediction_log_pb2.PredictionLog]:
    files, partial = rl.log_files([str(prefix)])
    assert not partial
    return [prediction_log_pb2.PredictionLog.FromString(r) for f in files for r in rl.read_tfrecords(f)]


def _wait(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_record_is_a_prediction_log_tensorflow_reads(tmp_path):
    logs = rl.RequestLogs()
    logs.configure({"housing": rl.LoggingSpec(str(tmp_path / "logs" / "housing"), 1.0)})
    req, resp = _pair(7)
    assert logs.get("housing").log("predict_log", req, resp, version=3, signature="serving_default",
                                   latency=0.0042, origin="model_server:grpc")
    failed, _ = _pair(8)
    logs.get("housing").log("predict_log", failed, None, version=3, signature="serving_default",
                            status="INVALID_ARGUMENT", message="bad input", latency=0.001)
    assert logs.close()
    files, partial = rl.log_files([str(tmp_path / "logs")])
    assert len(files) == 1 and not partial
    assert os.path.basename(files[0]).startswith("housing-") and files[0].endswith(".tfrecord")
    raw = list(tf.data.TFRecordDataset(files[0]).as_numpy_iterator())  # TensorFlow's reader, CRCs checked
    assert raw == list(rl.read_tfrecords(files[0]))
    ok, bad = (prediction_log_pb2.PredictionLog.FromString(r) for r in raw)
    assert ok.WhichOneof("log_type") == "predict_log"
    assert ok.predict_log.request == req and ok.predict_log.response == resp
    meta = ok.log_metadata
    assert (meta.model_spec.name, meta.model_spec.version.value, meta.model_spec.signature_name) == \
        ("housing", 3, "serving_default")
    assert meta.sampling_config.sampling_rate == 1.0 and list(meta.saved_model_tags) == ["serve"]
    assert abs(meta.timestamp_secs - time.time()) < 600
    assert rl.read_extras(ok) == {"status": "OK", "latency_us": 4200, "origin": "model_server:grpc", "message": ""}
    assert not bad.predict_log.HasField("response")
    assert rl.read_extras(bad)["status"] == "INVALID_ARGUMENT" and rl.read_extras(bad)["message"] == "bad input"


def test_files_tensorflow_wrote_read_back(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for data in (b"", b"x", bytes(range(256)) * 40):
            writer.write(data)
    assert list(rl.read_tfrecords(path)) == [b"", b"x", bytes(range(256)) * 40]


@pytest.mark.parametrize("rate", [0.05, 0.25, 0.5])
def test_sampling_rate_within_binomial_bounds(tmp_path, rate):
    sink = rl.LogSink(str(tmp_path / "m"))
    model = rl.ModelLogger("m", rate, sink, rng=random.Random(1234))
    req, resp = _pair()
    n = 20_000
    accepted = sum(model.log("predict_log", req, resp) for _ in range(n))
    assert sink.close()
    sd = (n * rate * (1 - rate)) ** 0.5
    assert abs(accepted - n * rate) < 5 * sd, (accepted, n * rate, sd)
    assert model.counters.sampled == accepted == model.counters.written
    assert len(_records(tmp_path / "m")) == accepted


def test_sampling_rates_zero_and_one_are_exact(tmp_path):
    sink = rl.LogSink(str(tmp_path / "m"))
    never, always = rl.ModelLogger("a", 0.0, sink), rl.ModelLogger("b", 1.0, sink)
    req, resp = _pair()
    for _ in range(500):
        never.log("predict_log", req, resp)
        always.log("predict_log", req, resp)
    sink.close()
    assert (never.counters.sampled, always.counters.written) == (0, 500)


def test_bad_configuration_is_refused(tmp_path):
    logs = rl.RequestLogs()
    with pytest.raises(rl.RequestLogError, match="sampling_rate must be in"):
        logs.configure({"m": rl.LoggingSpec(str(tmp_path / "m"), 1.5)})
    with pytest.raises(rl.RequestLogError, match="filename_prefix is empty"):
        logs.configure({"m": rl.LoggingSpec("", 1.0)})
    assert logs.models == {} and logs.sinks == {}


def test_size_rotation_keeps_every_record_in_order(tmp_path):
    req, resp = _pair()
    record = len(rl.frame(rl.encode_record(rl._Item(rl.ModelLogger("m", 1, None), "predict_log", req, resp, 3,
                                                     "serving_default", "OK", 0, "", "", int(time.time())))))
    sink = rl.LogSink(str(tmp_path / "m"), max_file_bytes=record * 10 + 5, fsync=False)
    model = rl.ModelLogger("m", 1.0, sink)
    for i in range(95):
        req, resp = _pair(i)
        assert model.log("predict_log", req, resp, version=3, signature="serving_default")
    sink.close()
    files, partial = rl.log_files([str(tmp_path)])
    assert not partial and len(files) == 10 and sink.counters.files == 10
    assert all(os.path.getsize(f) <= record * 10 + 5 for f in files)
    values = [r.predict_log.request.inputs["median_income"].float_val[0] for r in _records(tmp_path / "m")]
    assert values == list(range(95))


def test_time_rotation_finishes_an_idle_file(tmp_path):
    sink = rl.LogSink(str(tmp_path / "m"), max_file_seconds=0.2, fsync=False)
    model = rl.ModelLogger("m", 1.0, sink)
    req, resp = _pair()
    model.log("predict_log", req, resp)
    # no close, no more traffic: the file is renamed once it is old enough
    assert _wait(lambda: rl.log_files([str(tmp_path)])[0])
    assert len(_records(tmp_path / "m")) == 1
    sink.close()


def test_open_file_is_partial_and_never_read_as_finished(tmp_path):
    sink = rl.LogSink(str(tmp_path / "m"), fsync=False)
    model = rl.ModelLogger("m", 1.0, sink)
    req, resp = _pair()
    for _ in range(3):
        model.log("predict_log", req, resp)
    assert _wait(lambda: model.counters.written == 3)
    files, partial = rl.log_files([str(tmp_path)])
    assert files == [] and len(partial) == 1 and partial[0].endswith(".tfrecord.partial")
    assert sink.flush()
    files, partial = rl.log_files([str(tmp_path)])
    assert len(files) == 1 and partial == []
    assert len(list(rl.read_tfrecords(files[0]))) == 3
    sink.close()


def test_a_cut_file_is_reported_not_read_as_whole(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    rl.write_tfrecords(path, [b"a" * 100, b"b" * 100])
    with open(path, "r+b") as handle:
        handle.truncate(150)
    with pytest.raises(rl.RequestLogError, match="truncated record at byte 116"):
        list(rl.read_tfrecords(path))
    with open(path, "r+b") as handle:
        handle.seek(20)
        handle.write(b"X")
    with pytest.raises(rl.RequestLogError, match="corrupt record data at byte 0"):
        list(rl.read_tfrecords(path))


def test_queue_full_drops_and_counts(tmp_path):
    logs = rl.RequestLogs(queue_records=5, fsync=False)
    logs.configure({"m": rl.LoggingSpec(str(tmp_path / "m"), 1.0)})
    model = logs.get("m")
    blocker = Blocking()
    req, resp = _pair()
    assert model.log("predict_log", blocker, resp)
    assert blocker.started.wait(10)  # the writer holds the first record; the queue is empty again
    accepted = [model.log("predict_log", req, resp) for _ in range(12)]
    assert accepted == [True] * 5 + [False] * 7  # never blocks: the caller learns at once
    blocker.release.set()
    assert logs.close()
    c = logs.totals()["m"]
    assert (c.sampled, c.dropped, c.written, c.failed) == (13, 7, 6, 0)
    assert len(_records(tmp_path / "m")) == 6
    registry = CollectorRegistry()
    registry.register(logs.collector())
    text = generate_latest(registry).decode()
    assert 'tfgate_request_log_records_total{model_name="m",outcome="dropped"} 7.0' in text
    assert 'tfgate_request_log_records_total{model_name="m",outcome="written"} 6.0' in text


def test_close_writes_everything_accepted_then_refuses(tmp_path):
    logs = rl.RequestLogs(fsync=False)
    logs.configure({"m": rl.LoggingSpec(str(tmp_path / "m"), 1.0)})
    model = logs.get("m")
    req, resp = _pair()
    accepted = sum(model.log("predict_log", req, resp) for _ in range(3000))
    assert logs.close()
    assert len(_records(tmp_path / "m")) == accepted == model.counters.written
    assert not model.log("predict_log", req, resp)  # after shutdown: dropped and counted
    assert model.counters.dropped == 3000 - accepted + 1


def test_write_errors_are_counted_not_raised(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    logs = rl.RequestLogs(fsync=False)
    logs.configure({"m": rl.LoggingSpec(str(tmp_path / "not-a-folder" / "m"), 1.0)})
    model = logs.get("m")
    req, resp = _pair()
    assert model.log("predict_log", req, resp)
    assert logs.close()
    assert (model.counters.written, model.counters.failed) == (0, 1)
    assert logs.sinks == {} or all(s.counters.errors >= 1 for s in logs.sinks.values())


def test_reconfigure_keeps_counts_and_finishes_unused_files(tmp_path):
    logs = rl.RequestLogs(fsync=False)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    logs.configure({"x": rl.LoggingSpec(a, 1.0), "y": rl.LoggingSpec(a, 1.0)})
    assert logs.get("x").sink is logs.get("y").sink  # one prefix, one writer
    req, resp = _pair()
    logs.get("x").log("predict_log", req, resp)
    logs.get("y").log("predict_log", req, resp)
    logs.configure({"x": rl.LoggingSpec(b, 1.0)})  # y stops logging; prefix a is no longer used
    assert rl.log_files([a])[0] and not rl.log_files([a])[1]  # its file was finished
    logs.get("x").log("predict_log", req, resp)
    assert logs.get("y") is None
    logs.close()
    totals = logs.totals()
    assert (totals["x"].written, totals["y"].written) == (2, 1)
    assert len(_records(a)) == 2 and len(_records(b)) == 1


def test_log_files_by_folder_prefix_and_name(tmp_path):
    rl.write_tfrecords(str(tmp_path / "m-1.tfrecord"), [b"1"])
    (tmp_path / "sub").mkdir()
    rl.write_tfrecords(str(tmp_path / "sub" / "m-2.tfrecord"), [b"2"])
    (tmp_path / "m-3.tfrecord.partial").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    files, partial = rl.log_files([str(tmp_path)])
    assert [os.path.basename(f) for f in files] == ["m-1.tfrecord", "m-2.tfrecord"]
    assert [os.path.basename(p) for p in partial] == ["m-3.tfrecord.partial"]
    assert [os.path.basename(f) for f in rl.log_files([str(tmp_path / "m")])[0]] == ["m-1.tfrecord"]
    assert rl.log_files([str(tmp_path / "notes.txt")])[0] == [str(tmp_path / "notes.txt")]
    with pytest.raises(rl.RequestLogError, match="no such file, folder or log filename prefix"):
        rl.log_files([str(tmp_path / "nothing")])


def test_version_from_the_response_bytes_and_outcome_listener(tmp_path):
    seen = []
    logs = rl.RequestLogs(fsync=False, listener=lambda model, outcome, n: seen.append((model, outcome, n)))
    logs.configure({"m": rl.LoggingSpec(str(tmp_path / "m"), 1.0)})
    req, resp = _pair()
    resp.model_spec.signature_name = "serving_default"
    # the gateway passes bytes and lets the writer read the version that answered
    assert logs.get("m").log("predict_log", req.SerializeToString(), resp.SerializeToString(), version=None)
    logs.close()
    (record,) = _records(tmp_path / "m")
    assert (record.log_metadata.model_spec.version.value, record.log_metadata.model_spec.signature_name) == \
        (3, "serving_default")
    assert record.predict_log.response == resp
    assert not logs.get("m").log("predict_log", req, resp)  # closed: dropped
    assert seen == [("m", "written", 1), ("m", "dropped", 1)]
