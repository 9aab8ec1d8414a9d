"""What `tfgate logs` and `tfgate drift` do with request logs (serving/request_log.py's files).

- `summary`: counts per model, version, signature, API and status, with latency percentiles.
- `to_warmup`: a `tf_serving_warmup_requests` file (TFRecord of PredictionLog, requests only) from the
  successful logged requests, every (API, signature) represented.
- `to_examples`: the served raw features as input `tfgate pipeline` accepts (a CSV with the pipeline's
  header; IDX files for images) or raw tf.Examples; labels are the model's own predictions (`labels=
  "predicted"`, to be checked and corrected before retraining) or left empty (CSV only).
- `drift`: statistics of the served inputs against the training statistics (pipeline/statistics.py).

Only TensorFlow's protobuf modules are needed (no TensorFlow runtime); only successful requests are
used as data (failed ones are counted by `summary`).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tfgate.pipeline import statistics as st

from . import request_log

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit on a warm-up file
IDX_IMAGE_SHAPE = (28, 28)  # what `tfgate pipeline fashion` reads
EXAMPLE_APIS = ("classify_log", "regress_log", "multi_inference_log")
API_NAMES = {"predict_log": "predict", "classify_log": "classify", "regress_log": "regress",
             "multi_inference_log": "multi_inference", "session_run_log": "session_run",
             "predict_streamed_log": "predict_streamed"}


class LogToolError(ValueError):
    """Logs that cannot give what was asked (no such model, no usable records); one line for the CLI."""


@dataclass
class Record:
    path: str
    log: object  # tensorflow.serving.PredictionLog
    kind: str
    model: str
    version: int
    signature: str
    status: str
    latency_us: int | None
    origin: str
    timestamp: int


@dataclass
class LogSet:
    files: list[str]
    partial: list[str]

    def records(self, model: str | None = None) -> Iterator[Record]:
        from tensorflow_serving.apis import prediction_log_pb2

        for path in self.files:
            for raw in request_log.read_tfrecords(path):
                try:
                    plog = prediction_log_pb2.PredictionLog.FromString(raw)
                except Exception as err:  # protobuf's DecodeError
                    raise LogToolError(f"{path}: a record is not a PredictionLog ({err})") from None
                kind = plog.WhichOneof("log_type") or ""
                spec = plog.log_metadata.model_spec
                request = getattr(plog, kind).request if kind else None
                name = spec.name or (_request_spec(request, kind).name if request is not None else "")
                if model is not None and name != model:
                    continue
                extras = request_log.read_extras(plog)
                signature = spec.signature_name or (_request_spec(request, kind).signature_name
                                                    if request is not None else "") or "serving_default"
                yield Record(path, plog, kind, name, spec.version.value, signature, extras["status"],
                             extras["latency_us"], extras["origin"], plog.log_metadata.timestamp_secs)


def _request_spec(request, kind: str):
    if kind == "multi_inference_log":
        return request.tasks[0].model_spec if request.tasks else request.tasks.add().model_spec
    return request.model_spec


def open_logs(paths: Iterable[str]) -> LogSet:
    paths = list(paths)
    if not paths:
        raise LogToolError("no log files given")
    try:
        files, partial = request_log.log_files(paths)
    except request_log.RequestLogError as err:
        raise LogToolError(str(err)) from None
    if not files:
        more = f" ({len(partial)} still being written, *.partial)" if partial else ""
        raise LogToolError(f"no finished request log files under {', '.join(paths)}{more}")
    return LogSet(files, partial)


def _model_of(logs: LogSet, model: str | None) -> str:
    """The model to use: `model`, or the only one in the logs."""
    if model is not None:
        return model
    names = sorted({r.model for r in logs.records()})
    if len(names) != 1:
        raise LogToolError(f"the logs hold several models ({', '.join(names)}): name one with --model")
    return names[0]


# ---------------------------------------------------------------------------------------------


def _percentile(values: list[int], q: float) -> float | None:
    return float(np.percentile(values, q)) / 1000.0 if values else None


def summary(paths: Iterable[str], model: str | None = None) -> dict:
    """Counts and latency percentiles (milliseconds) per model, version, signature, API and status."""
    logs = open_logs(paths)
    groups: dict[tuple, list] = defaultdict(list)
    counts: dict[tuple, int] = defaultdict(int)
    first = last = None
    total = 0
    for r in logs.records(model):
        key = (r.model, r.version, r.signature, API_NAMES.get(r.kind, r.kind), r.status)
        counts[key] += 1
        if r.latency_us is not None:
            groups[key].append(r.latency_us)
        if r.timestamp:
            first = r.timestamp if first is None else min(first, r.timestamp)
            last = r.timestamp if last is None else max(last, r.timestamp)
        total += 1
    rows = []
    for key in sorted(counts):
        lat = groups.get(key, [])
        rows.append({"model": key[0], "version": key[1], "signature": key[2], "api": key[3], "status": key[4],
                     "count": counts[key], "latency_ms_p50": _percentile(lat, 50),
                     "latency_ms_p90": _percentile(lat, 90), "latency_ms_p99": _percentile(lat, 99)})
    return {"files": len(logs.files), "partial_files": logs.partial, "records": total,
            "first_timestamp": first, "last_timestamp": last, "groups": rows}


# ---------------------------------------------------------------------------------------------


def to_warmup(paths: Iterable[str], output: str, model: str | None = None,
              max_records: int = MAX_WARMUP_RECORDS) -> dict:
    """Write a warm-up file from successful logged requests: requests only, their version pins
    removed (a warm-up file belongs to whatever version it is put in), (API, signature) round-robin."""
    from tensorflow_serving.apis import prediction_log_pb2

    if not 1 <= max_records <= MAX_WARMUP_RECORDS:
        raise LogToolError(f"--max-records must be in 1..{MAX_WARMUP_RECORDS} (TF Serving's limit), got {max_records}")
    logs = open_logs(paths)
    name = _model_of(logs, model)
    buckets: dict[tuple, list] = defaultdict(list)
    for r in logs.records(name):
        if r.status != "OK" or r.kind not in ("predict_log", *EXAMPLE_APIS):
            continue
        bucket = buckets[(r.kind, r.signature)]
        if len(bucket) < max_records:
            bucket.append(r)
    chosen: list[Record] = []
    queues = [list(b) for _, b in sorted(buckets.items())]
    while len(chosen) < max_records and any(queues):
        for queue in queues:
            if queue and len(chosen) < max_records:
                chosen.append(queue.pop(0))
    if not chosen:
        raise LogToolError(f"no successful requests of model {name} in the logs")
    out = []
    for r in chosen:
        plog = prediction_log_pb2.PredictionLog()
        request = getattr(plog, r.kind).request
        request.CopyFrom(getattr(r.log, r.kind).request)
        specs = [t.model_spec for t in request.tasks] if r.kind == "multi_inference_log" else [request.model_spec]
        for spec in specs:
            spec.ClearField("version_choice")
        out.append(plog.SerializeToString())
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    request_log.write_tfrecords(output, out)
    per_kind: dict[str, int] = defaultdict(int)
    for r in chosen:
        per_kind[f"{API_NAMES[r.kind]}:{r.signature}"] += 1
    return {"model": name, "output": output, "records": len(out), "by_api_signature": dict(per_kind)}


# ---------------------------------------------------------------------------------------------
# Served inputs as columns


def _feature_values(feature) -> object:
    """One tf.train.Feature: a scalar, None (no value) or a list."""
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "float_list":  # float32 on the wire; kept as such so they print as sent
        values = [np.float32(v) for v in values]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _examples(request, kind: str) -> list[dict]:
    source = request.input
    which = source.WhichOneof("kind")
    if which == "example_list":
        examples, context = source.example_list.examples, None
    elif which == "example_list_with_context":
        examples, context = source.example_list_with_context.examples, source.example_list_with_context.context
    else:
        return []
    rows = []
    for example in examples:
        row = {}
        if context is not None:
            row.update({k: _feature_values(f) for k, f in context.features.feature.items()})
        row.update({k: _feature_values(f) for k, f in example.features.feature.items()})
        rows.append(row)
    return rows


def _batch_rows(inputs: dict[str, np.ndarray]) -> int | None:
    sizes = {a.shape[0] if a.ndim else 1 for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None


@dataclass
class Served:
    """The served inputs of one model, one list entry per row, and the model's prediction per row."""

    model: str
    columns: dict[str, list] = field(default_factory=dict)
    predictions: list = field(default_factory=list)
    prediction_name: str = ""
    rows: int = 0
    records: int = 0
    skipped: int = 0  # failed requests, or ones whose inputs disagree on the batch size

    def add_row(self, values: dict, prediction) -> None:
        for name in set(self.columns) | set(values):
            self.columns.setdefault(name, [None] * self.rows).append(values.get(name))
        self.predictions.append(prediction)
        self.rows += 1


def served_inputs(logs: LogSet, model: str) -> Served:
    from tfgate.serving import tensor_codec

    served = Served(model)
    for r in logs.records(model):
        if r.status != "OK" or r.kind not in ("predict_log", *EXAMPLE_APIS):
            served.skipped += 1
            continue
        entry = getattr(r.log, r.kind)
        if r.kind == "predict_log":
            try:
                inputs = {k: tensor_codec.to_numpy(v) for k, v in entry.request.inputs.items()}
                outputs = {k: tensor_codec.to_numpy(v, exact_counts=False) for k, v in entry.response.outputs.items()}
            except (ValueError, OverflowError):
                served.skipped += 1
                continue
            n = _batch_rows(inputs)
            if n is None:
                served.skipped += 1
                continue
            inputs = {k: (a if a.ndim else a.reshape(1)) for k, a in inputs.items()}
            predicted, name = _predict_outputs(outputs, n)
            served.prediction_name = served.prediction_name or name
            for i in range(n):
                served.add_row({k: a[i] for k, a in inputs.items()}, predicted[i])
        else:
            rows = _examples(entry.request, r.kind)
            predicted = _example_predictions(entry.response, r.kind, len(rows))
            for row, p in zip(rows, predicted, strict=True):
                served.add_row(row, p)
        served.records += 1
    return served


def _predict_outputs(outputs: dict[str, np.ndarray], n: int) -> tuple[list, str]:
    """One prediction per row: the single output, else `class_ids` (a classifier), else nothing."""
    if len(outputs) == 1:
        name, array = next(iter(outputs.items()))
    elif "class_ids" in outputs:
        name, array = "class_ids", outputs["class_ids"]
    else:
        return [None] * n, ""
    if array.ndim == 0 or array.shape[0] != n:
        return [None] * n, name
    flat = array.reshape(n, -1)
    return [row[0] if row.size == 1 else None for row in flat], name


def _example_predictions(response, kind: str, n: int) -> list:
    if kind == "regress_log" and len(response.result.regressions) == n:
        return [r.value for r in response.result.regressions]
    if kind == "classify_log" and len(response.result.classifications) == n:
        out = []
        for c in response.result.classifications:
            if not c.classes:
                out.append(None)
                continue
            best = max(range(len(c.classes)), key=lambda i: c.classes[i].score)
            label = c.classes[best].label
            out.append(int(label) if label.isdigit() else best)  # names: the class's position
        return out
    return [None] * n


# ---------------------------------------------------------------------------------------------


def drift(stats_path: str, log_paths: Iterable[str], output_dir: str | None = None, model: str | None = None,
          thresholds: dict[str, float] | None = None, default_threshold: float = st.DEFAULT_THRESHOLD) -> dict:
    """Compare the served inputs of `model` with the training statistics; PNG per drifting feature.

    Returns {"model", "rows", "features": [FeatureDrift as dict], "drifted": [names], "plots": [paths]}.
    """
    train = st.load(stats_path)
    logs = open_logs(log_paths)
    name = _model_of(logs, model)
    served = served_inputs(logs, name)
    if served.rows == 0:
        raise LogToolError(f"no successful requests of model {name} in the logs")
    kinds = {f: t["kind"] for f, t in train["features"].items()}
    columns = {f: st.as_column(served.columns[f], kind, train["features"][f].get("shape"))
               for f, kind in kinds.items() if f in served.columns}
    acc = st.StatisticsAccumulator(kinds=dict(kinds), seed=0)
    acc.add(columns, rows=served.rows)
    served_stats = acc.to_json(reference=train, model=name, source="request logs")
    rows = st.compare(train, served_stats, thresholds, default_threshold)
    plots = []
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        st.save(served_stats, os.path.join(output_dir, "served_statistics.json"))
        for row in rows:
            if row.drifted and row.distance is not None:
                path = os.path.join(output_dir, f"drift-{_safe(row.feature)}.png")
                plots.append(st.plot(row, train, served_stats, path))
    report = {"model": name, "rows": served.rows, "records": served.records, "skipped_records": served.skipped,
              "unknown_features": sorted(set(served.columns) - set(kinds)),
              "features": st.drift_table(rows), "drifted": [r.feature for r in rows if r.drifted], "plots": plots}
    if output_dir:
        with open(os.path.join(output_dir, "drift.json"), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    return report


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---------------------------------------------------------------------------------------------


def _is_image(values: list) -> bool:
    sample = next((v for v in values if v is not None), None)
    return isinstance(sample, np.ndarray) and sample.dtype == np.uint8 and sample.ndim >= 2


def to_examples(paths: Iterable[str], output: str, model: str | None = None, fmt: str = "auto",
                labels: str = "predicted", label_column: str | None = None) -> dict:
    """Served inputs as training input. fmt: csv (a file), idx (a folder), tfrecord (a file) or auto
    (idx when the model takes images, else csv). labels: predicted | none."""
    if labels not in ("predicted", "none"):
        raise LogToolError(f"labels must be 'predicted' or 'none', got {labels!r}")
    logs = open_logs(paths)
    name = _model_of(logs, model)
    served = served_inputs(logs, name)
    if served.rows == 0:
        raise LogToolError(f"no successful requests of model {name} in the logs")
    images = [f for f, v in served.columns.items() if _is_image(v) or _image_bytes(v)]
    if fmt == "auto":
        fmt = "idx" if images else "csv"
    label = label_column or served.prediction_name or "label"
    if labels == "predicted" and any(p is None for p in served.predictions):
        missing = sum(p is None for p in served.predictions)
        raise LogToolError(f"{missing} of {served.rows} rows have no single prediction to use as a label "
                           "(use --labels none)")
    if fmt == "csv":
        written = _write_csv(served, output, label, labels == "predicted")
    elif fmt == "idx":
        if labels != "predicted":
            raise LogToolError("IDX files need a label per image: use --labels predicted")
        if len(images) != 1:
            raise LogToolError(f"IDX output needs exactly one image input, the model takes {len(images)}")
        written = _write_idx(served, images[0], output)
    elif fmt == "tfrecord":
        written = _write_examples(served, output, label, labels == "predicted")
    else:
        raise LogToolError(f"unknown format {fmt!r} (csv, idx, tfrecord or auto)")
    return {"model": name, "format": fmt, "output": output, "rows": written, "labels": labels,
            "label_column": label if fmt != "idx" else "label", "skipped_records": served.skipped}


def _image_bytes(values: list) -> bool:
    sample = next((v for v in values if v is not None), None)
    return isinstance(sample, bytes) and len(sample) == IDX_IMAGE_SHAPE[0] * IDX_IMAGE_SHAPE[1]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise LogToolError(f"a served value of shape {list(value.shape)} does not fit a CSV cell")
        value = value.reshape(-1)[0]
    if isinstance(value, list):
        raise LogToolError("a served feature with several values does not fit a CSV cell")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        # numpy prints a float32 as the shortest text that reads back as the same float32
        return "" if math.isnan(value) else str(value) if isinstance(value, np.floating) else repr(value)
    return str(value)


def _write_csv(served: Served, output: str, label: str, with_labels: bool) -> int:
    names = sorted(served.columns)
    if label in names:
        raise LogToolError(f"label column {label!r} is also an input; name another with --label-column")
    temp = f"{output}.partial"
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    with open(temp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, label])
        for i in range(served.rows):
            prediction = _cell(served.predictions[i]) if with_labels else ""
            writer.writerow([*(_cell(served.columns[n][i]) for n in names), prediction])
    os.replace(temp, output)
    return served.rows


def _write_idx(served: Served, image: str, output: str) -> int:
    """A folder `tfgate pipeline fashion --input` accepts: the served images as the `train` IDX pair
    (labels: predictions) and an empty `t10k` pair."""
    height, width = IDX_IMAGE_SHAPE
    pixels = []
    labels = []
    for value, label in zip(served.columns[image], served.predictions, strict=True):
        if value is None:
            continue
        array = np.frombuffer(value, np.uint8) if isinstance(value, bytes) else np.asarray(value)
        if array.dtype != np.uint8 or array.size != height * width:
            raise LogToolError(f"IDX output takes {height}x{width} uint8 images; a served image has shape "
                               f"{list(array.shape)} of {array.dtype}")
        if not 0 <= int(label) <= 255:
            raise LogToolError(f"label {label} does not fit an IDX label byte")
        pixels.append(array.reshape(height * width).tobytes())
        labels.append(int(label))
    os.makedirs(output, exist_ok=True)
    files = {
        "train-images-idx3-ubyte.gz": struct.pack(">IIII", 2051, len(pixels), height, width) + b"".join(pixels),
        "train-labels-idx1-ubyte.gz": struct.pack(">II", 2049, len(labels)) + bytes(labels),
        "t10k-images-idx3-ubyte.gz": struct.pack(">IIII", 2051, 0, height, width),
        "t10k-labels-idx1-ubyte.gz": struct.pack(">II", 2049, 0),
    }
    for name, data in files.items():
        path = os.path.join(output, name)
        with gzip.open(f"{path}.partial", "wb") as handle:
            handle.write(data)
        os.replace(f"{path}.partial", path)
    return len(pixels)


def _write_examples(served: Served, output: str, label: str, with_labels: bool) -> int:
    from tensorflow.core.example import example_pb2, feature_pb2

    def feature(value) -> feature_pb2.Feature | None:
        f = feature_pb2.Feature()
        if value is None:
            return None
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim >= 1:
            f.bytes_list.value.append(value.tobytes())  # an image: its raw pixels, as the pipeline stores them
            return f
        items = value.reshape(-1).tolist() if isinstance(value, np.ndarray) else (
            value if isinstance(value, list) else [value])
        if all(isinstance(v, bytes | str) for v in items):
            f.bytes_list.value.extend(v if isinstance(v, bytes) else v.encode() for v in items)
        elif all(isinstance(v, int | bool) for v in items):
            f.int64_list.value.extend(int(v) for v in items)
        else:
            floats = [float(v) for v in items]
            if all(math.isnan(v) for v in floats):
                return None  # a missing value is an absent feature
            f.float_list.value.extend(floats)
        return f

    records = []
    for i in range(served.rows):
        example = example_pb2.Example()
        values = {n: served.columns[n][i] for n in served.columns}
        if with_labels:
            values[label] = served.predictions[i]
        for name, value in values.items():
            f = feature(value)
            if f is not None:
                example.features.feature[name].CopyFrom(f)
        records.append(example.SerializeToString())
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    return request_log.write_tfrecords(output, records)
