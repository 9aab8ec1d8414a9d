"""`tfgate train` on bad input: exit code 2, one clear line, nothing written."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from tfgate.clients.cli import pipeline as pipeline_cli


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    pipeline_cli.register(app)
    return app


def _run(app, args, env=None):
    result = CliRunner().invoke(app, ["train", *args], env=env)
    return result, [line for line in result.output.splitlines() if line.strip()]


def _fake_pipeline_dir(path, splits=("train", "eval")):
    for sub in ("metadata", "transform_fn", "transformed_metadata", "tfrecords"):
        (path / sub).mkdir(parents=True)
    for split in splits:
        (path / "tfrecords" / f"{split}-00000-of-00001.tfrecord.gz").write_bytes(b"")
    return path


def test_not_pipeline_output(app, tmp_path):
    (tmp_path / "data").mkdir()
    base = tmp_path / "models"
    result, lines = _run(app, ["housing", "--data", str(tmp_path / "data"), "--model-base-path", str(base)])
    assert result.exit_code == 2
    assert len(lines) == 1 and "is not pipeline output" in lines[0]
    assert not base.exists()


def test_missing_split(app, tmp_path):
    data = _fake_pipeline_dir(tmp_path / "data")
    base = tmp_path / "models"
    result, lines = _run(app, ["fashion", "--data", str(data), "--model-base-path", str(base)])
    assert result.exit_code == 2
    assert len(lines) == 1 and "missing test split" in lines[0]
    assert not base.exists()


def test_existing_version(app, housing_pipeline_dir, housing_model_base):
    before = sorted(os.listdir(housing_model_base))
    args = ["housing", "--data", str(housing_pipeline_dir), "--model-base-path", str(housing_model_base)]
    result, lines = _run(app, [*args, "--version", "1"])
    assert result.exit_code == 2
    assert len(lines) == 1 and "version 1 already exists" in lines[0]
    assert sorted(os.listdir(housing_model_base)) == before


def test_wrong_dataset(app, housing_pipeline_dir, tmp_path):
    base = tmp_path / "models"
    result, lines = _run(app, ["fashion", "--data", str(housing_pipeline_dir), "--model-base-path", str(base)])
    assert result.exit_code == 2
    assert len(lines) == 1 and "is not fashion pipeline output" in lines[0]
    assert not base.exists()


def test_multi_worker_needs_tf_config(app, housing_pipeline_dir, tmp_path):
    base = tmp_path / "models"
    args = ["housing", "--data", str(housing_pipeline_dir), "--model-base-path", str(base)]
    result, lines = _run(app, [*args, "--strategy", "multi-worker"], env={"TF_CONFIG": ""})
    assert result.exit_code == 2
    assert len(lines) == 1 and "TF_CONFIG" in lines[0]
    assert not base.exists()


def test_model_kind_must_fit_dataset(app, housing_pipeline_dir, tmp_path):
    base = tmp_path / "models"
    args = ["housing", "--data", str(housing_pipeline_dir), "--model-base-path", str(base), "--model", "cnn"]
    result, lines = _run(app, args)
    assert result.exit_code == 2 and len(lines) == 1 and "--model cnn" in lines[0]
    assert not base.exists()
