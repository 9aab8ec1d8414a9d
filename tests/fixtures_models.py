"""Session fixtures for trained models (owned by the training work; see tests/conftest.py).

Each model is trained once per session, in-process and briefly (quality is checked by the
benchmark run, not here). `*_model_base` return the model base path `DIR`, holding `DIR/1/`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def housing_training(housing_pipeline_dir, tmp_path_factory):
    """The TrainResult (metrics, history, in-memory Keras model) of the session's housing model."""
    from tfgate.pipeline.training import train

    base = tmp_path_factory.mktemp("housing-models") / "housing"
    return train("housing", str(housing_pipeline_dir), str(base), epochs=4, seed=7)


@pytest.fixture(scope="session")
def fashion_training(fashion_pipeline_dir, tmp_path_factory):
    """The TrainResult of the session's fashion model: the default CNN, two short epochs."""
    from tfgate.pipeline.training import train

    base = tmp_path_factory.mktemp("fashion-models") / "fashion"
    return train("fashion", str(fashion_pipeline_dir), str(base), epochs=2, batch_size=128, seed=7)


@pytest.fixture(scope="session")
def housing_model_base(housing_training) -> Path:
    """Model base path with version 1 of the housing model (raw features in, dollars out)."""
    return Path(housing_training.path).parent


@pytest.fixture(scope="session")
def fashion_model_base(fashion_training) -> Path:
    """Model base path with version 1 of the fashion model (uint8 images in, class names out)."""
    return Path(fashion_training.path).parent
