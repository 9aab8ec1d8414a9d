"""`tfgate logs` and `tfgate drift` as library calls (serving/log_tools.py), on logs written by the real
writer; their outputs checked by the code that consumes them (the pipeline's readers, the warm-up format)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from tensorflow_serving.apis import prediction_log_pb2

from tfgate.pipeline import statistics as st
from tfgate.serving import log_tools, request_log

from .helpers import (
    CATEGORICAL,
    NUMERIC,
    classify_pair,
    fashion_images,
    housing_columns,
    housing_rows,
    predict_pair,
    regress_pair,
)


def _housing_batches(rows: list[list[str]], batch: int = 8, income_factor: float = 1.0):
    """PredictRequests as a client sends the 9 raw columns, and made-up predictions."""
    columns = housing_columns(rows)
    columns["median_income"] = columns["median_income"] * income_factor
    for start in range(0, len(rows), batch):
        inputs = {c: columns[c][start:start + batch].astype(np.float32) for c in NUMERIC}
        inputs[CATEGORICAL] = np.array([v.encode() for v in columns[CATEGORICAL][start:start + batch]], dtype=object)
        n = len(inputs[CATEGORICAL])
        yield predict_pair("housing", inputs, {"median_house_value": np.full(n, 200_000.0, np.float32)}, version=2)


def _write(prefix: str, entries) -> str:
    """entries: (model, kind, request, response, status, latency seconds)."""
    logs = request_log.RequestLogs(fsync=False)
    models = sorted({e[0] for e in entries})
    logs.configure({m: request_log.LoggingSpec(prefix, 1.0) for m in models})
    for model, kind, req, resp, status, latency in entries:
        signature = req.model_spec.signature_name
        assert logs.get(model).log(kind, req, resp, version=2, signature=signature, status=status, latency=latency)
    assert logs.close()
    return prefix


@pytest.fixture(scope="module")
def housing_split():
    return housing_rows()


@pytest.fixture(scope="module")
def mixed_logs(tmp_path_factory, housing_split):
    rows = housing_split["test"][:40]
    entries = [("housing", "predict_log", req, resp, "OK", 0.001 * (i + 1))
               for i, (req, resp) in enumerate(_housing_batches(rows))]  # 5 batches of 8
    columns = housing_columns(rows[:3])
    examples = [{c: float(columns[c][i]) for c in NUMERIC} | {CATEGORICAL: columns[CATEGORICAL][i]} for i in range(3)]
    req, resp = regress_pair("housing", examples, [1.5, 2.5, 3.5])
    entries.append(("housing", "regress_log", req, resp, "OK", 0.002))
    bad, _ = next(_housing_batches(rows[:1]))
    entries.append(("housing", "predict_log", bad, None, "INVALID_ARGUMENT", 0.0005))
    images = fashion_images("t10k")[:4]
    req, resp = classify_pair("fashion", images, [3, 1, 4, 1])
    entries.append(("fashion", "classify_log", req, resp, "OK", 0.003))
    return _write(str(tmp_path_factory.mktemp("logs") / "all"), entries)


def test_summary_counts_and_latency(mixed_logs):
    s = log_tools.summary([mixed_logs])
    assert s["files"] == 1 and s["records"] == 8 and s["partial_files"] == []
    groups = {(g["model"], g["signature"], g["api"], g["status"]): g for g in s["groups"]}
    assert set(groups) == {("housing", "serving_default", "predict", "OK"), ("housing", "regress", "regress", "OK"),
                           ("housing", "serving_default", "predict", "INVALID_ARGUMENT"),
                           ("fashion", "classify", "classify", "OK")}
    ok = groups[("housing", "serving_default", "predict", "OK")]
    assert ok["count"] == 5 and ok["version"] == 2
    assert ok["latency_ms_p50"] == pytest.approx(3.0) and ok["latency_ms_p99"] == pytest.approx(4.96)
    assert log_tools.summary([mixed_logs], model="fashion")["records"] == 1


def test_to_warmup_writes_a_warmup_file(tmp_path, mixed_logs):
    out = tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    result = log_tools.to_warmup([mixed_logs], str(out), model="housing", max_records=4)
    assert result["records"] == 4
    assert result["by_api_signature"] == {"predict:serving_default": 3, "regress:regress": 1}
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in request_log.read_tfrecords(str(out))]
    kinds = [p.WhichOneof("log_type") for p in logs]
    assert sorted(kinds) == ["predict_log"] * 3 + ["regress_log"]
    for p in logs:
        entry = getattr(p, p.WhichOneof("log_type"))
        assert not entry.HasField("response") and not entry.request.model_spec.HasField("version")
        assert request_log.read_extras(p)["status"] == "OK"  # failed requests never become warm-up
    with pytest.raises(log_tools.LogToolError, match="several models"):
        log_tools.to_warmup([mixed_logs], str(out))
    with pytest.raises(log_tools.LogToolError, match=r"--max-records must be in 1\.\.1000"):
        log_tools.to_warmup([mixed_logs], str(out), model="housing", max_records=5000)


def test_to_examples_csv_is_pipeline_input(tmp_path, mixed_logs, housing_split):
    from tfgate.pipeline import beam_pipeline, housing

    out = tmp_path / "served.csv"
    result = log_tools.to_examples([mixed_logs], str(out), model="housing")
    assert result["format"] == "csv" and result["rows"] == 43 and result["label_column"] == "median_house_value"
    assert beam_pipeline.check_housing_input(str(out)) == [str(out)]  # the pipeline's header check
    with open(out, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert sorted(header) == sorted(housing.CSV_COLUMNS)
    order = [header.index(c) for c in housing.CSV_COLUMNS]
    assert all(housing.validate_row([r[i] for i in order]) is None for r in rows)
    # values as sent (the float32 a client sent, printed as the shortest text that reads back as it)
    first = dict(zip(housing.CSV_COLUMNS, housing_split["test"][0], strict=True))
    for column in NUMERIC:
        sent = float(first[column]) if first[column] else float("nan")
        cell = rows[0][header.index(column)]
        assert (cell == "" and np.isnan(sent)) or np.float32(cell) == np.float32(sent)
    assert rows[0][header.index(CATEGORICAL)] == first[CATEGORICAL]
    # predictions as labels
    assert rows[0][header.index("median_house_value")] == "200000.0"
    assert [r[header.index("median_house_value")] for r in rows[-3:]] == ["1.5", "2.5", "3.5"]
    out2 = tmp_path / "unlabelled.csv"
    log_tools.to_examples([mixed_logs], str(out2), model="housing", labels="none")
    with open(out2, newline="") as handle:
        assert {r["median_house_value"] for r in csv.DictReader(handle)} == {""}


def test_to_examples_idx_is_pipeline_input(tmp_path, mixed_logs):
    from tfgate.pipeline import fashion

    result = log_tools.to_examples([mixed_logs], str(tmp_path / "idx"), model="fashion")
    assert result["format"] == "idx" and result["rows"] == 4
    fashion.check_source_dir(str(tmp_path / "idx"))
    pairs = fashion.source_paths(str(tmp_path / "idx"))
    read = list(fashion.read_pairs(*pairs["train"]))
    assert [(label, reason) for _, _, label, reason in read] == [(3, None), (1, None), (4, None), (1, None)]
    assert read[0][1] == fashion_images("t10k")[0].tobytes()
    assert list(fashion.read_pairs(*pairs["t10k"])) == []
    with pytest.raises(log_tools.LogToolError, match="IDX files need a label"):
        log_tools.to_examples([mixed_logs], str(tmp_path / "x"), model="fashion", labels="none")


def test_to_examples_tfrecord(tmp_path, mixed_logs):
    from tensorflow.core.example import example_pb2

    out = tmp_path / "served.tfrecord"
    log_tools.to_examples([mixed_logs], str(out), model="housing", fmt="tfrecord")
    examples = [example_pb2.Example.FromString(r) for r in request_log.read_tfrecords(str(out))]
    assert len(examples) == 43
    features = examples[0].features.feature
    assert features[CATEGORICAL].bytes_list.value and features["median_income"].float_list.value
    assert features["median_house_value"].float_list.value[0] == 200000.0


def test_no_logs_and_partial_files_are_reported(tmp_path):
    (tmp_path / "m-1.tfrecord.partial").write_bytes(b"")
    with pytest.raises(log_tools.LogToolError, match=r"no finished request log files .*1 still being written"):
        log_tools.summary([str(tmp_path)])
    with pytest.raises(log_tools.LogToolError, match="no such file, folder or log filename prefix"):
        log_tools.summary([str(tmp_path / "none")])


# ----- drift from logs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def housing_train_stats(tmp_path_factory, housing_split):
    path = tmp_path_factory.mktemp("stats") / st.STATISTICS_FILE
    st.save(st.compute(housing_columns(housing_split["train"])), str(path))
    return str(path.parent)


def test_drift_test_split_served_unchanged_is_not_flagged(tmp_path, housing_train_stats, housing_split):
    rows = housing_split["test"]
    logs = _write(str(tmp_path / "logs" / "h"), [("housing", "predict_log", req, resp, "OK", 0.001)
                                                  for req, resp in _housing_batches(rows, 16)])
    report = log_tools.drift(housing_train_stats, [logs], output_dir=str(tmp_path / "out"))
    assert report["rows"] == len(rows) and report["drifted"] == [] and report["plots"] == []
    assert {f["feature"] for f in report["features"]} == set(NUMERIC) | {CATEGORICAL}
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["drifted"] == []


def test_drift_median_income_times_three_flagged_alone(tmp_path, housing_train_stats, housing_split):
    logs = _write(str(tmp_path / "logs" / "h"), [("housing", "predict_log", req, resp, "OK", 0.001)
                                                  for req, resp in _housing_batches(housing_split["test"], 16, 3.0)])
    report = log_tools.drift(housing_train_stats, [logs], output_dir=str(tmp_path / "out"))
    assert report["drifted"] == ["median_income"]
    assert [p.rsplit("/", 1)[-1] for p in report["plots"]] == ["drift-median_income.png"]
    report = log_tools.drift(housing_train_stats, [logs], thresholds={"median_income": 0.95})
    assert report["drifted"] == []


def test_drift_from_examples_and_images(tmp_path):
    train_images = fashion_images("train")
    stats_path = st.save(st.compute({"image": train_images}, kinds={"image": st.IMAGE}),
                         str(tmp_path / "train_statistics.json"))
    test = fashion_images("t10k")[:400]
    same = [("fashion", "classify_log", *classify_pair("fashion", test[i:i + 20], [0] * 20), "OK", 0.001)
            for i in range(0, 400, 20)]
    inverted = [("fashion", "predict_log", *predict_pair("fashion", {"image": 255 - test[i:i + 20]},
                                                         {"class_ids": np.zeros(20, np.int64)}), "OK", 0.001)
                for i in range(0, 400, 20)]
    assert log_tools.drift(stats_path, [_write(str(tmp_path / "a" / "f"), same)])["drifted"] == []
    assert log_tools.drift(stats_path, [_write(str(tmp_path / "b" / "f"), inverted)])["drifted"] == ["image"]
