"""Every signature of every exported version runs on TF Serving's loading path.

`saved_model_cli run` (a real subprocess) loads a version as `tensorflow_model_server` does: import
the MetaGraph, run the restore op and the init op, then Session::Run. Its outputs must equal the
TF2 path's (within float32 rounding, relative to each output's scale), with the pipeline's
transform_fn/ moved away so that the version can only use what it carries.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfgate.pipeline.housing.task import WARMUP_ROWS
from tfgate.pipeline.training import export

SAVED_MODEL_CLI = str(Path(sys.executable).with_name("saved_model_cli"))


def _housing_feeds() -> dict[str, dict[str, np.ndarray]]:
    rows = WARMUP_ROWS  # one row lacks total_bedrooms (NaN)
    columns = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        columns[name] = np.array([v.encode() for v in values], object) if isinstance(values[0], str) else (
            np.array(values, np.float32))
    examples = np.array([export.example(r).SerializeToString() for r in rows], object)
    return {"serving_default": columns, "regress": {"inputs": examples}}


def _fashion_feeds() -> dict[str, dict[str, np.ndarray]]:
    images = np.random.default_rng(3).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    examples = np.array([export.example({"image": i.tobytes()}).SerializeToString() for i in images], object)
    return {"serving_default": {"image": images}, "classify": {"inputs": examples}}


def _cli_run(version_dir: Path, key: str, feeds: dict[str, np.ndarray], work: Path) -> dict[str, np.ndarray]:
    work.mkdir(parents=True)
    args = []
    for alias, value in feeds.items():
        np.save(work / f"{alias}.npy", value, allow_pickle=True)
        args.append(f"{alias}={work / f'{alias}.npy'}")
    outdir = work / "out"
    cmd = [SAVED_MODEL_CLI, "run", "--dir", str(version_dir), "--tag_set", "serve", "--signature_def", key,
           "--inputs", ";".join(args), "--outdir", str(outdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, f"saved_model_cli run {key} failed:\n{done.stderr[-3000:]}"
    return {p.stem: np.load(p, allow_pickle=True) for p in outdir.glob("*.npy")}


def _assert_same(got: dict, want: dict, what: str) -> None:
    assert sorted(got) == sorted(want), what
    for name, value in want.items():
        value = value.numpy()
        assert got[name].shape == value.shape, (what, name)
        if value.dtype.kind == "f":
            scale = float(np.max(np.abs(value)))
            np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6 * scale, err_msg=f"{what}/{name}")
        else:
            assert got[name].tolist() == value.tolist(), (what, name)


@contextlib.contextmanager
def _moved_away(folder: Path):
    hidden = folder.with_name(folder.name + ".moved")
    folder.rename(hidden)
    try:
        yield
    finally:
        hidden.rename(folder)


@pytest.mark.parametrize("dataset", ["housing", "fashion"])
def test_every_signature_runs_under_saved_model_cli(dataset, request, tmp_path):
    base: Path = request.getfixturevalue(f"{dataset}_model_base")
    pipeline_dir: Path = request.getfixturevalue(f"{dataset}_pipeline_dir")
    feeds = _housing_feeds() if dataset == "housing" else _fashion_feeds()
    versions = sorted(p for p in base.iterdir() if p.name.isdigit())
    assert versions, "no exported version"
    for version_dir in versions:
        loaded = tf.saved_model.load(str(version_dir))
        want = {key: loaded.signatures[key](**{a: tf.constant(v) for a, v in f.items()}) for key, f in feeds.items()}
        with _moved_away(pipeline_dir / "transform_fn"):
            for key, f in feeds.items():
                got = _cli_run(version_dir, key, f, tmp_path / version_dir.name / key)
                _assert_same(got, want[key], f"{dataset}/{version_dir.name}/{key}")


def test_export_refuses_a_module_whose_variables_the_session_cannot_restore(tmp_path):
    """check_session_loader is what keeps a broken export from being published."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from tests.model_server import models

    path = models.make_keras_untracked(tmp_path)  # a tf.Module holding only a Keras 3 model
    signatures = dict(tf.saved_model.load(path).signatures)  # TF2's loader serves it
    req = predict_pb2.PredictRequest()
    req.inputs["features"].CopyFrom(tf.make_tensor_proto(np.ones([1, 3], np.float32)))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
    with pytest.raises(export.SessionLoaderError, match=r"serving_default fails under the session loader: "
                                                        r"Could not find variable \S*out/(kernel|bias)"):
        export.check_session_loader(path, signatures, [log])
