"""--strategy multi-worker: two `tfgate train` processes on loopback (TF_CONFIG), one short epoch;
the chief exports a model that serves, the other worker leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.training.helpers import REPO
from tfgate.pipeline import housing
from tfgate.pipeline.housing.task import WARMUP_ROWS
from tfgate.serving.processes import free_port


def test_two_workers_on_loopback(housing_pipeline_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    base = tmp_path / "models" / "housing"
    args = ["train", "housing", "--data", str(housing_pipeline_dir), "--model-base-path", str(base),
            "--epochs", "1", "--steps-per-epoch", "8", "--batch-size", "256", "--seed", "3",
            "--strategy", "multi-worker"]  # fmt: skip
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tfgate.clients.cli", *args], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    try:
        outputs = [proc.communicate(timeout=480) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    chief_out, worker_out = outputs[0][0], outputs[1][0]
    assert "epoch 1/1" in chief_out and "test RMSE" in chief_out
    assert "chief exports" in worker_out
    assert sorted(os.listdir(base)) == ["1"]

    metrics = json.loads((base / "1" / "assets.extra" / "metrics.json").read_text())
    assert metrics["training"]["strategy"] == "multi-worker" and metrics["training"]["replicas"] == 2
    loaded = tf.saved_model.load(str(base / "1"))
    rows = WARMUP_ROWS
    out = loaded.signatures["serving_default"](**{n: tf.constant([r[n] for r in rows]) for n in housing.RAW_FEATURES})
    assert np.all(np.isfinite(out["median_house_value"].numpy()))
