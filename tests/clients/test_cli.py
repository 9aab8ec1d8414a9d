"""`tfgate predict housing`, `tfgate classify fashion`, `tfgate models` as real subprocesses."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.conftest import FASHION_DIR, HOUSING_CSV
from tfgate.clients import GatewayClient

from .conftest import ALL_TOKEN
from .helpers import fashion_test_set, housing_rows, png_bytes, run_tfgate


@pytest.fixture(scope="module")
def env(gateway):
    return {"TFGATE_TARGET": gateway.target, "TFGATE_TOKEN": ALL_TOKEN}


@pytest.fixture(scope="module")
def csv_with_bad_rows(tmp_path_factory):
    """1,500 rows of the bundled CSV with three bad ones (file lines 4, 9 and 1001)."""
    lines = HOUSING_CSV.read_text().splitlines()[:1501]
    lines[3] = lines[3].replace("NEAR BAY", "NEAR BAY,extra")       # line 4: one field too many
    for index, column, value in ((8, 3, "abc"), (1000, 7, "")):       # line 9: total_rooms; 1001: median_income
        fields = lines[index].split(",")
        fields[column] = value
        lines[index] = ",".join(fields)
    path = tmp_path_factory.mktemp("cli") / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_predict_housing_csv_output_with_bad_rows(csv_with_bad_rows, env, gateway, tmp_path):
    out = tmp_path / "preds.csv"
    r = run_tfgate("predict", "housing", "--csv", str(csv_with_bad_rows), "--output", str(out), env=env)
    assert r.returncode == 1, r.stderr
    assert "line 4: expected 10 fields, got 11" in r.stderr
    assert "line 9: total_rooms: 'abc' is not a number" in r.stderr
    assert "line 1001: median_income: missing value" in r.stderr
    assert "summary: 1,500 rows, 1,497 predicted, 3 errors" in r.stderr and "rows/s" in r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1497 and list(rows[0]) == ["line", "predicted_median_house_value", "model_version",
                                                   "median_house_value"]
    assert [int(x["line"]) for x in rows[:4]] == [2, 3, 5, 6] and {x["model_version"] for x in rows} == {"1"}
    # Same numbers as the library gives for the same rows.
    good = [row for i, row in enumerate(housing_rows(1500), start=2) if i not in (4, 9, 1001)]
    with GatewayClient(gateway.target, token=ALL_TOKEN) as c:
        expected = c.predict_housing(good).values
    np.testing.assert_allclose([float(x["predicted_median_house_value"]) for x in rows], expected, rtol=1e-4,
                               atol=0.01)


def test_predict_housing_whole_file_json_and_progress(env):
    r = run_tfgate("predict", "housing", "--csv", str(HOUSING_CSV), "--format", "json", "--chunk-size", "1000",
                   env={**env, "COLUMNS": "100"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["predictions"]) == 20640 and doc["errors"] == []
    assert doc["summary"]["rows"] == 20640 and doc["summary"]["predicted"] == 20640
    assert doc["summary"]["model_versions"] == [1] and doc["summary"]["rows_per_second"] > 0
    assert 0 < doc["summary"]["mae"] < 200_000  # a briefly trained model, still far from random
    assert doc["predictions"][0]["line"] == 2 and doc["predictions"][0]["median_house_value"] == 452600.0
    assert "predicting" in r.stderr and "20640/20640" in r.stderr  # the progress bar's final state


def test_predict_housing_table_and_csv_to_stdout(env, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("\n".join(HOUSING_CSV.read_text().splitlines()[:4]) + "\n")
    table = run_tfgate("predict", "housing", "--csv", str(small), env=env)
    assert table.returncode == 0, table.stderr
    assert "predicted_median_house_value" in table.stdout and "452,600" in table.stdout
    assert "summary: 3 rows, 3 predicted, 0 errors" in table.stderr
    as_csv = run_tfgate("predict", "housing", "--csv", str(small), "--format", "csv", env=env)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["line"] for r in rows] == ["2", "3", "4"] and as_csv.returncode == 0


def test_classify_fashion_files_idx_and_labels(env, tmp_path):
    images, labels = fashion_test_set(3)
    paths = []
    for i in range(3):
        p = tmp_path / f"item{i}.png"
        p.write_bytes(png_bytes(images[i]))
        paths.append(str(p))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = run_tfgate("classify", "fashion", *paths, str(broken), str(tmp_path / "missing.png"), "--top-k", "2",
                   "--format", "json", env=env)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert [c["image"] for c in doc["classifications"]] == paths
    assert all(len(c["top"]) == 2 and c["model_version"] == 1 for c in doc["classifications"])
    assert {e["image"] for e in doc["errors"]} == {str(broken), str(tmp_path / "missing.png")}
    assert f"image {broken}:" in r.stderr and "cannot decode" in r.stderr and "No such file" in r.stderr
    idx = run_tfgate("classify", "fashion", "--idx", str(FASHION_DIR / "t10k-images-idx3-ubyte.gz"),
                     "--labels", str(FASHION_DIR / "t10k-labels-idx1-ubyte.gz"), "--limit", "1500",
                     "--format", "csv", "--top-k", "1", env=env)
    assert idx.returncode == 0, idx.stderr
    rows = list(csv.DictReader(io.StringIO(idx.stdout)))
    assert len(rows) == 1500 and list(rows[0]) == ["image", "model_version", "class_id_1", "class_name_1",
                                                   "probability_1", "label"]
    assert "summary: 1,500 images, 1,500 predicted, 0 errors" in idx.stderr and "accuracy 0." in idx.stderr
    # The first images by file and by IDX get the same answer.
    assert [c["top"][0]["class_id"] for c in doc["classifications"]] == [int(x["class_id_1"]) for x in rows[:3]]
    assert int(rows[0]["label"]) == labels[0]


def test_models_table_json_csv(env):
    table = run_tfgate("models", env=env)
    assert table.returncode == 0, table.stderr
    assert "housing" in table.stdout and "1 AVAILABLE" in table.stdout
    doc = json.loads(run_tfgate("models", "--format", "json", env=env).stdout)
    assert [m["name"] for m in doc["models"]] == ["down", "fashion", "housing", "slow"]
    assert doc["models"][2]["versions"] == [{"version": 1, "state": "AVAILABLE", "error_message": ""}]
    rows = list(csv.DictReader(io.StringIO(run_tfgate("models", "--format", "csv", env=env).stdout)))
    assert {(r["name"], r["version"], r["state"]) for r in rows} >= {("housing", "1", "AVAILABLE"),
                                                                     ("fashion", "1", "AVAILABLE")}


@pytest.mark.parametrize("args, message", [
    (["predict", "housing"], "Missing option '--csv'"),
    (["predict", "housing", "--csv", "nope.csv"], "--csv nope.csv: No such file or directory"),
    (["predict", "housing", "--csv", str(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")], "--csv"),
    (["predict", "housing", "--csv", str(HOUSING_CSV), "--bogus"], "No such option: --bogus"),
    (["predict", "housing", "--csv", str(HOUSING_CSV), "--format", "xml"], "'xml' is not one of"),
    (["classify", "fashion"], "give image files or --idx FILE"),
    (["classify", "fashion", "a.png", "--idx", "x.gz"], "not both"),
    (["classify", "fashion", "--idx", str(HOUSING_CSV)], "not an IDX file"),
    (["classify", "fashion", "a.png", "--top-k", "11"], "--top-k"),
    (["predict", "fashion"], "No such command 'fashion'"),
    (["models", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca /nonexistent/ca.pem: no such file"),
])
def test_usage_errors_exit_2_with_one_line(args, message, env):
    r = run_tfgate(*args, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_token_from_env_or_option_and_unreachable_gateway(gateway, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("\n".join(HOUSING_CSV.read_text().splitlines()[:3]) + "\n")
    no_token = run_tfgate("models", "--target", gateway.target)
    assert no_token.returncode == 1 and "UNAUTHENTICATED" in no_token.stderr
    assert run_tfgate("models", "--target", gateway.target, "--token", ALL_TOKEN).returncode == 0
    rows = run_tfgate("predict", "housing", "--csv", str(small), "--target", gateway.target)
    assert rows.returncode == 1 and "lines 2, 3: UNAUTHENTICATED" in rows.stderr
    down = run_tfgate("predict", "housing", "--csv", str(small), "--target", "127.0.0.1:1", "--timeout", "3")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr and "2 errors" in down.stderr
