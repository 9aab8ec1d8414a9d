"""`tfgate train` trains only on pipeline output whose stats.json says every input row was accounted for."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import TFGATE
from tfgate.pipeline.training import TrainingInputError, data

GOOD = {"input_rows": 100, "splits": {"train": 80, "eval": 9, "test": 8}, "rejected": 3, "rows_accounted": True}


def pipeline_output(path, stats: dict | str | None):
    """The layout `tfgate pipeline` writes (empty shards), with the given stats.json (None: none at all)."""
    for sub in ("metadata", "transform_fn", "transformed_metadata", "tfrecords"):
        (path / sub).mkdir(parents=True)
    for split in data.SPLITS:
        (path / "tfrecords" / f"{split}-00000-of-00001.tfrecord.gz").write_bytes(b"")
    if stats is not None:
        (path / "stats.json").write_text(stats if isinstance(stats, str) else json.dumps(stats))
    return path


def train(data_dir, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([*TFGATE, "train", "housing", "--data", str(data_dir), "--model-base-path",
                           str(tmp_path / "models")], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({**GOOD, "rows_accounted": False, "splits": {"train": 80, "eval": 9, "test": 7}},
         "stats.json: the pipeline's rows did not add up (100 input rows, 96 written + 3 rejected)"),
        (None, "has no stats.json: the pipeline run did not finish"),
    ],
)
def test_train_refuses_output_whose_rows_did_not_add_up(stats, message, tmp_path):
    done = train(pipeline_output(tmp_path / "data", stats), tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    ours = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and message in ours[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({**GOOD, "input_rows": 101}, "did not add up (101 input rows, 97 written + 3 rejected)"),
        ({**GOOD, "rows_accounted": "yes"}, "did not add up"),
        ({**GOOD, "splits": {"train": 80}}, "is not the pipeline's stats (KeyError"),
        ("{not json", "is not the pipeline's stats (JSONDecodeError"),
    ],
)
def test_row_accounting_checks_the_numbers_not_only_the_flag(stats, message, tmp_path):
    directory = pipeline_output(tmp_path / "data", stats)
    with pytest.raises(TrainingInputError, match=re.escape(message)):
        data.check_row_accounting(str(directory))


def test_accounted_output_passes(tmp_path):
    data.check_row_accounting(str(pipeline_output(tmp_path / "data", GOOD)))
