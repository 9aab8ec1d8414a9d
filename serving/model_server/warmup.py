"""Warm-up: a version replays the requests in its `assets.extra/tf_serving_warmup_requests` (TF
Serving's format: a TFRecord file of PredictionLog protos) through the inference code before it serves.

Its own module because it uses both the servable and the inference code, which import in one direction
only (inference -> servable).
"""

from __future__ import annotations

import logging
import os
import time

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from ..status import invalid
from . import inference
from .servable import Servable

log = logging.getLogger("tfgate.model_server")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


def replay(servable: Servable, iterations: int, opts: inference.InferenceOptions) -> int:
    """Runs every warm-up record `iterations` times (at least once); returns the number of records
    (0 without a warm-up file)."""
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    records = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        records.append(raw)
        if len(records) > MAX_WARMUP_RECORDS:
            raise invalid(f"Number of warmup records exceeeds the maximum ({MAX_WARMUP_RECORDS}) at "
                          f"{path}")
    if not records:
        raise invalid(f"Warmup file has no records: {path}")
    t0 = time.monotonic()
    for raw in records:
        plog = prediction_log_pb2.PredictionLog.FromString(raw)
        kind = plog.WhichOneof("log_type")
        for _ in range(max(1, iterations)):
            if kind == "predict_log":
                inference.predict_sync(servable, plog.predict_log.request, opts)
            elif kind == "classify_log":
                inference.classify_sync(servable, plog.classify_log.request, opts)
            elif kind == "regress_log":
                inference.regress_sync(servable, plog.regress_log.request, opts)
            elif kind == "multi_inference_log":
                inference.multi_inference_sync(servable, plog.multi_inference_log.request, opts)
            else:
                raise invalid(f"Unsupported log_type for warmup: {kind}")
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d. "
             "Elapsed time (microseconds): %d.", path, len(records), int((time.monotonic() - t0) * 1e6))
    return len(records)
