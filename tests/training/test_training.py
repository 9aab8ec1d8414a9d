"""train(): version numbering, seeded reproducibility, TensorBoard logs, a self-contained export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfgate.pipeline.housing.task import WARMUP_ROWS
from tfgate.pipeline.training import TrainingInputError, data, export, train


def test_next_version_ignores_other_entries(tmp_path):
    assert export.next_version(str(tmp_path / "absent")) == 1
    for name in ("1", "3", "tmp", ".tmp-4-abcdef01", "10x"):
        (tmp_path / name).mkdir()
    assert export.next_version(str(tmp_path)) == 4


def test_seed_reproducible_and_explicit_version(housing_pipeline_dir, housing_training, tmp_path):
    base = tmp_path / "housing"
    # The same arguments as the session fixture (seed 7, 4 epochs): the same model, to the last digit.
    again = train("housing", str(housing_pipeline_dir), str(base), epochs=4, seed=7, version=5)
    assert again.path == str(base / "5") and sorted(os.listdir(base)) == ["5"]
    assert again.history == housing_training.history
    assert again.metrics["test"] == housing_training.metrics["test"]
    for mine, theirs in zip(again.model.get_weights(), housing_training.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # TensorBoard event files sit beside the model base path, not inside it.
    logdir = again.metrics["training"]["tensorboard_logdir"]
    assert logdir == str(tmp_path / "tensorboard" / "housing" / "5")
    assert any(name.startswith("events.") for _, _, files in os.walk(logdir) for name in files)
    with pytest.raises(TrainingInputError, match="version 5 already exists"):
        train("housing", str(housing_pipeline_dir), str(base), epochs=1, version=5)
    assert sorted(os.listdir(base)) == ["5"]


SERVE_WITHOUT_PIPELINE = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
rows = json.loads(sys.argv[2])
columns = {k: tf.constant([r[k] for r in rows]) for k in rows[0]}
out = model.signatures["serving_default"](**columns)["median_house_value"].numpy()
print(json.dumps({"values": out.tolist(), "tft": "tensorflow_transform" in sys.modules}))
"""


def test_export_is_self_contained(housing_pipeline_dir, tmp_path):
    """Delete the pipeline output (transform_fn/ included); a fresh process without TF Transform serves."""
    data = tmp_path / "pipeline-copy"
    shutil.copytree(housing_pipeline_dir, data)
    result = train("housing", str(data), str(tmp_path / "models"), epochs=1, seed=1)
    shutil.rmtree(data)
    rows = WARMUP_ROWS  # one has total_bedrooms NaN (json carries NaN as is)
    proc = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_PIPELINE, result.path, json.dumps(rows)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not answer["tft"]
    values = np.array(answer["values"])
    assert values.shape == (3,) and np.all(np.isfinite(values)) and np.all(values > 0)


def test_mirrored_strategy_and_mlp(fashion_pipeline_dir, tmp_path):
    """--strategy mirrored over the local devices, with the lighter fashion model, a few steps."""
    result = train(
        "fashion", str(fashion_pipeline_dir), str(tmp_path / "fashion"),
        model="mlp", strategy="mirrored", epochs=1, steps_per_epoch=5, seed=2,
    )  # fmt: skip
    training = result.metrics["training"]
    assert training["strategy"] == "mirrored" and training["model"] == "mlp" and training["replicas"] >= 1
    assert result.path == str(tmp_path / "fashion" / "1")
    assert result.metrics["test"]["examples"] == data.split_sizes(str(fashion_pipeline_dir))["test"]
