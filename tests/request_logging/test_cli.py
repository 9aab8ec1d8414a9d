"""`tfgate logs …` and `tfgate drift` as real subprocesses: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import TFGATE
from tfgate.pipeline import statistics as st

from .helpers import housing_columns, housing_rows
from .test_log_tools import _housing_batches, _write


def tfgate(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*TFGATE, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Training statistics of the housing train split, and logs of the test split with median_income x3."""
    root = tmp_path_factory.mktemp("cli")
    rows = housing_rows()
    st.save(st.compute(housing_columns(rows["train"])), str(root / st.STATISTICS_FILE))
    _write(str(root / "logs" / "housing"), [("housing", "predict_log", req, resp, "OK", 0.002)
                                             for req, resp in _housing_batches(rows["test"], 16, 3.0)])
    return root


def test_logs_summary(served):
    result = tfgate("logs", "summary", served / "logs", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records"] == summary["groups"][0]["count"] > 100
    assert summary["groups"][0]["latency_ms_p50"] == pytest.approx(2.0)
    table = tfgate("logs", "summary", served / "logs" / "housing")  # by filename prefix
    assert table.returncode == 0 and "housing" in table.stdout and "serving_default" in table.stdout


def test_logs_to_warmup_and_to_examples(served, tmp_path):
    warm = tfgate("logs", "to-warmup", served / "logs", "-o", tmp_path / "w" / "tf_serving_warmup_requests",
                  "--max-records", 7)
    assert warm.returncode == 0, warm.stderr
    assert "wrote 7 warm-up requests of model housing" in warm.stdout
    ex = tfgate("logs", "to-examples", served / "logs", "-o", tmp_path / "served.csv", "--labels", "none")
    assert ex.returncode == 0, ex.stderr
    assert (tmp_path / "served.csv").read_text().splitlines()[0].endswith(",median_house_value")


def test_drift_flags_and_exits_1(served, tmp_path):
    result = tfgate("drift", "--stats", served, "--logs", served / "logs", "-o", tmp_path / "out", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["drifted"] == ["median_income"]
    assert (tmp_path / "out" / "drift-median_income.png").is_file() and (tmp_path / "out" / "drift.json").is_file()
    # above its threshold for that feature: nothing drifted, exit 0
    relaxed = tfgate("drift", "--stats", served, "--logs", served / "logs", "--threshold", "median_income=0.99",
                     "-o", tmp_path / "out2")
    assert relaxed.returncode == 0, relaxed.stderr
    assert "median_income" in relaxed.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["logs", "summary", "{tmp}/nothing"], "nothing: no such file, folder or log filename prefix"),
    (["drift", "--stats", "{tmp}", "--logs", "{logs}"], "no such statistics file"),
    (["drift", "--stats", "{stats}", "--logs", "{logs}", "--threshold", "medianincome=0.2"],
     "threshold for unknown feature(s) medianincome"),
    (["drift", "--stats", "{stats}", "--logs", "{logs}", "--threshold", "2"], "must be in (0, 1]"),
    (["logs", "to-warmup", "{logs}", "-o", "{tmp}/w", "--max-records", "0"], "--max-records must be in 1..1000"),
    (["logs", "to-examples", "{logs}", "-o", "{tmp}/x", "--format", "idx"], "IDX output needs exactly one image"),
    (["logs", "summary", "{logs}", "--bogus"], "No such option: --bogus"),
])
def test_bad_input_is_one_line_exit_2(served, tmp_path, args, message):
    values = {"tmp": tmp_path, "logs": served / "logs", "stats": served}
    result = tfgate(*[a.format(**values) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
