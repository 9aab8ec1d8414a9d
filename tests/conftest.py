"""Session-wide fixtures: one pipeline run per dataset and one trained model per dataset.

Expensive artefacts are built once per pytest session and shared by every test folder.
Model and server fixtures live in their own plugin modules, listed below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
HOUSING_CSV = DATA / "housing" / "housing.csv"
FASHION_DIR = DATA / "fashion-mnist"
# The installed `tfgate` entry point, run as a real subprocess.
TFGATE = [str(Path(sys.executable).with_name("tfgate"))]

pytest_plugins = [
    "tests.fixtures_models",
    "tests.fixtures_servers",
]


@pytest.fixture(scope="session")
def housing_pipeline_dir(tmp_path_factory) -> Path:
    """The pipeline run once on the full bundled housing CSV (20,640 rows)."""
    from tfgate.pipeline import beam_pipeline

    out = tmp_path_factory.mktemp("housing-pipeline")
    beam_pipeline.run("housing", str(HOUSING_CSV), str(out))
    return out


@pytest.fixture(scope="session")
def fashion_pipeline_dir(tmp_path_factory) -> Path:
    """The pipeline run once on the bundled Fashion-MNIST subset (3,615 + 4,443 images)."""
    from tfgate.pipeline import beam_pipeline

    out = tmp_path_factory.mktemp("fashion-pipeline")
    beam_pipeline.run("fashion", str(FASHION_DIR), str(out))
    return out
