"""The pipeline end to end: real Beam runner, real TF Transform, real files, the real CLI."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from tests.conftest import FASHION_DIR, HOUSING_CSV, TFGATE
from tfgate.pipeline import beam_pipeline, fashion, housing

HOUSING_ROWS = 20_640
FASHION_TRAIN, FASHION_TEST = 3_615, 4_443


def tfgate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*TFGATE, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_one_error_line(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2 and one readable `error:` line last on stderr (TensorFlow's start-up notes may precede it)."""
    assert result.returncode == 2, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and message in ours[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == ours[0]
    assert "Traceback" not in result.stderr


def read_split(out: Path, split: str) -> list[bytes]:
    files = sorted(str(f) for f in (out / "tfrecords").glob(f"{split}-*.tfrecord.gz"))
    assert files, f"no {split} shards in {out}"
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def rejected_records(out: Path) -> list[dict]:
    lines = []
    for path in sorted((out / "rejected").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return lines


def check_layout_and_counts(out: Path, expected_input_rows: int) -> dict:
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input_rows"] == expected_input_rows
    assert sum(stats["splits"].values()) + stats["rejected"] == expected_input_rows
    assert stats["rows_accounted"] is True and stats["seconds"] > 0
    assert len(rejected_records(out)) == stats["rejected"]
    transform_output = tft.TFTransformOutput(str(out))
    spec = transform_output.transformed_feature_spec()
    for split, count in stats["splits"].items():
        records = read_split(out, split)
        assert len(records) == count
        parsed = tf.io.parse_example(records[:64], spec)  # parses with the transformed spec
        assert set(parsed) == set(spec)
    return stats


def test_housing_full_data(housing_pipeline_dir):
    stats = check_layout_and_counts(housing_pipeline_dir, HOUSING_ROWS)
    assert stats["rejected"] == 0  # the 207 rows without total_bedrooms are imputed, not refused
    train, eval_, test = (stats["splits"][s] / HOUSING_ROWS for s in beam_pipeline.SPLITS)
    assert 0.78 < train < 0.82 and 0.08 < eval_ < 0.12 and 0.08 < test < 0.12
    transform_output = tft.TFTransformOutput(str(housing_pipeline_dir))
    assert set(transform_output.raw_feature_spec()) == set(housing.CSV_COLUMNS)
    assert isinstance(transform_output.raw_feature_spec()["total_bedrooms"], tf.io.VarLenFeature)
    vocab = transform_output.vocabulary_by_name(housing.OCEAN_PROXIMITY_VOCAB)
    assert sorted(v.decode() for v in vocab) == ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"]
    # Training statistics: the z-scored train split has mean ~0 and std ~1.
    parsed = tf.io.parse_example(read_split(housing_pipeline_dir, "train"), transform_output.transformed_feature_spec())
    for name in ("median_income_z", "total_bedrooms_z", "rooms_per_household_z"):
        values = parsed[name].numpy()
        assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 0.02, name
    missing = parsed[housing.MISSING_INDICATOR].numpy()
    assert 100 < missing.sum() < 207  # ~80% of the 207 rows without total_bedrooms


def test_fashion_full_subset(fashion_pipeline_dir):
    stats = check_layout_and_counts(fashion_pipeline_dir, FASHION_TRAIN + FASHION_TEST)
    assert stats["splits"]["test"] == FASHION_TEST
    assert stats["splits"]["train"] + stats["splits"]["eval"] == FASHION_TRAIN
    assert 0.07 < stats["splits"]["eval"] / FASHION_TRAIN < 0.13
    spec = tft.TFTransformOutput(str(fashion_pipeline_dir)).transformed_feature_spec()
    parsed = tf.io.parse_example(read_split(fashion_pipeline_dir, "test")[:100], spec)
    images = parsed[fashion.IMAGE_XF].numpy()
    assert images.shape == (100, 28, 28) and images.min() >= 0 and images.max() <= 1
    # The first official test image is an ankle boot (class 9); test order is not guaranteed, so
    # compare label histograms with the raw IDX labels instead.
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as handle:
        raw_labels = list(handle.read()[8:])
    all_test = tf.io.parse_example(read_split(fashion_pipeline_dir, "test"), spec)
    assert sorted(all_test[fashion.LABEL_XF].numpy().tolist()) == sorted(raw_labels)


CORRUPTIONS = {
    # inserted after data line N (1-based, header is line 1) → expected reason fragment
    3: ("-122.23,37.88,41.0,880.0,129.0,322.0,126.0,8.3252,452600.0", "expected 10 columns, found 9"),
    10: (
        "-122.23,37.88,forty,880.0,129.0,322.0,126.0,8.3252,452600.0,NEAR BAY",
        "non-numeric value for housing_median_age",
    ),
    20: (",37.88,41.0,880.0,129.0,322.0,126.0,8.3252,452600.0,NEAR BAY", "missing required value for longitude"),
    30: ("-122.23,37.88,41.0,880.0,129.0,322.0,126.0,8.3252,-1.0,NEAR BAY", "median_house_value out of range"),
    40: (
        '-122.23,37.88,41.0,880.0,129.0,322.0,126.0,8.3252,452600.0,"NEAR, BAY",extra',
        "expected 10 columns, found 11",
    ),
}


@pytest.fixture(scope="module")
def corrupted_csv(tmp_path_factory) -> tuple[Path, dict[int, str]]:
    lines = HOUSING_CSV.read_text().splitlines()[:301]  # header + 300 good rows
    expected, out = {}, [lines[0]]
    for number, line in enumerate(lines[1:], start=1):
        out.append(line)
        if number in CORRUPTIONS:
            bad, reason = CORRUPTIONS[number]
            out.append(bad)
            expected[len(out)] = reason  # its line number in the file
    path = tmp_path_factory.mktemp("corrupt") / "housing.csv"
    path.write_text("\n".join(out) + "\n")
    return path, expected


def test_cli_rejects_exactly_the_corrupted_lines(corrupted_csv, tmp_path):
    path, expected = corrupted_csv
    out = tmp_path / "out"
    result = tfgate("pipeline", "housing", "--input", path, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "rejected" in result.stdout and "train" in result.stdout  # the summary table
    stats = check_layout_and_counts(out, 305)
    assert stats["rejected"] == 5
    rejected = {r["line"]: r for r in rejected_records(out)}
    assert set(rejected) == set(expected)
    for line, reason in expected.items():
        assert reason in rejected[line]["reason"]
        assert rejected[line]["source"].endswith("housing.csv") and rejected[line]["raw"]


def permuted_columns_copy(path: Path, target: Path) -> Path:
    """The same CSV with its columns in reverse order (header included)."""
    rows = [housing.parse_row(line) for line in path.read_text().splitlines()]
    with target.open("w", newline="") as out:
        csv.writer(out).writerows(list(reversed(row)) for row in rows)
    return target


def test_same_input_same_splits(corrupted_csv, tmp_path):
    """Two runs, a different runner mode and a column-permuted file: the same rows in each split."""
    path, _ = corrupted_csv
    inputs = {"a": path, "b": permuted_columns_copy(path, tmp_path / "permuted.csv")}
    # Row identity: the exact label plus the coordinates' z-scores. The z-scores get a tolerance: TFT
    # accumulates in float32 and another runner mode combines partial sums in another order (~1e-4).
    runs = []
    for name, extra in (("a", []), ("b", ["--direct_num_workers=2", "--direct_running_mode=multi_threading"])):
        out = tmp_path / name
        beam_pipeline.run("housing", str(inputs[name]), str(out), extra)
        spec = tft.TFTransformOutput(str(out)).transformed_feature_spec()
        rows = {}
        for split in beam_pipeline.SPLITS:
            parsed = tf.io.parse_example(read_split(out, split), spec)
            rows[split] = np.array(
                sorted(zip(*(parsed[k].numpy().tolist() for k in ("label", "longitude_z", "latitude_z")), strict=True))
            )
        runs.append(rows)
    for split in beam_pipeline.SPLITS:
        assert runs[0][split].shape == runs[1][split].shape
        np.testing.assert_array_equal(runs[0][split][:, 0], runs[1][split][:, 0])
        np.testing.assert_allclose(runs[0][split], runs[1][split], atol=1e-3)
    assert all(len(runs[0][s]) for s in beam_pipeline.SPLITS)


def write_idx_gz(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(gzip.compress(header + payload))


@pytest.fixture(scope="module")
def truncated_fashion_dir(tmp_path_factory) -> Path:
    """Official files cut down: train with 50 images (header says 60), test with 40 (of 40)."""
    directory = tmp_path_factory.mktemp("fashion-truncated")
    with gzip.open(FASHION_DIR / "train-images-idx3-ubyte.gz") as f:
        train_images = f.read()[16 : 16 + 50 * 784 + 300]  # 50 whole images + part of the 51st
    with gzip.open(FASHION_DIR / "train-labels-idx1-ubyte.gz") as f:
        train_labels = f.read()[8 : 8 + 60]
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as f:
        test_images = f.read()[16 : 16 + 40 * 784]
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        test_labels = f.read()[8 : 8 + 40]
    write_idx_gz(directory / "train-images-idx3-ubyte.gz", 2051, (60, 28, 28), train_images)
    write_idx_gz(directory / "train-labels-idx1-ubyte.gz", 2049, (60,), train_labels)
    write_idx_gz(directory / "t10k-images-idx3-ubyte.gz", 2051, (40, 28, 28), test_images)
    write_idx_gz(directory / "t10k-labels-idx1-ubyte.gz", 2049, (40,), test_labels)
    return directory


def test_truncated_idx_records_are_rejected_with_their_index(truncated_fashion_dir, tmp_path):
    out = tmp_path / "out"
    stats = beam_pipeline.run("fashion", str(truncated_fashion_dir), str(out))
    check_layout_and_counts(out, 100)
    assert stats["rejected"] == 10 and stats["splits"]["test"] == 40
    rejected = rejected_records(out)
    assert sorted(r["index"] for r in rejected) == list(range(50, 60))
    assert all("truncated IDX record in images file" in r["reason"] for r in rejected)


def test_cut_gzip_stream_is_rejected_not_crashed(tmp_path):
    directory = tmp_path / "in"
    shutil.copytree(FASHION_DIR, directory)
    labels = directory / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:1200])  # compressed stream cut in the middle
    out = tmp_path / "out"
    stats = beam_pipeline.run("fashion", str(directory), str(out))
    check_layout_and_counts(out, FASHION_TRAIN + FASHION_TEST)
    assert 0 < stats["rejected"] < FASHION_TEST
    assert {r["reason"] for r in rejected_records(out)} == {"truncated IDX record in labels file"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["housing", "--input", "/nonexistent/housing.csv"], "input not found: /nonexistent/housing.csv"),
        (["housing", "--input", str(FASHION_DIR / "train-labels-idx1-ubyte.gz")], "is not a housing CSV"),
        (["fashion", "--input", str(HOUSING_CSV.parent)], "missing IDX file"),
        (["fashion", "--input", str(HOUSING_CSV)], "input directory not found"),
    ],
)
def test_cli_input_errors_exit_2_with_one_line(args, message, tmp_path):
    assert_one_error_line(tfgate("pipeline", *args, "--output", tmp_path / "out"), message)


def test_cli_wrong_idx_magic_and_unwritable_output(tmp_path):
    directory = tmp_path / "in"
    shutil.copytree(FASHION_DIR, directory)
    # labels where images belong: magic 2049 instead of 2051
    shutil.copy(directory / "t10k-labels-idx1-ubyte.gz", directory / "t10k-images-idx3-ubyte.gz")
    result = tfgate("pipeline", "fashion", "--input", directory, "--output", tmp_path / "out")
    assert_one_error_line(result, "magic number 2049, expected 2051")

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = tfgate("pipeline", "housing", "--input", HOUSING_CSV, "--output", blocker / "out")
    assert_one_error_line(result, "is not writable")


def test_download_verifies_local_files_offline_and_refuses_a_mismatch(tmp_path):
    # The bundled housing CSV is the full official one: verified in place, nothing fetched.
    local = tmp_path / "housing.csv"
    shutil.copy(HOUSING_CSV, local)
    from tfgate.pipeline import download

    assert download.fetch_housing(str(local)) is False
    # The bundled Fashion-MNIST files are a subset, so they do not match the official checksums.
    subset = tmp_path / "fashion"
    shutil.copytree(FASHION_DIR, subset)
    result = tfgate("pipeline", "fashion", "--download", "--input", subset, "--output", tmp_path / "out")
    assert_one_error_line(result, "checksum mismatch")
    assert "train-images-idx3-ubyte.gz" in result.stderr


@pytest.fixture()
def loopback_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder, standing in for the dataset's origin."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_download_from_a_mirror_checks_the_extracted_csv(loopback_mirror, tmp_path):
    from tfgate.pipeline import download

    root, url = loopback_mirror
    with tarfile.open(root / "housing.tgz", "w:gz") as tar:
        tar.add(HOUSING_CSV, arcname="housing.csv")
    target = tmp_path / "dl" / "housing.csv"
    assert download.fetch_housing(str(target), url) is True
    assert download.digest(str(target), "sha256") == download.HOUSING_CSV_SHA256

    tampered = tmp_path / "tampered.csv"
    tampered.write_text(HOUSING_CSV.read_text().replace("NEAR BAY", "NEAR BAE", 1))
    with tarfile.open(root / "housing.tgz", "w:gz") as tar:
        tar.add(tampered, arcname="housing.csv")
    result = tfgate("pipeline", "housing", "--download", "--mirror", url,
                    "--input", tmp_path / "dl2" / "housing.csv", "--output", tmp_path / "out")
    assert_one_error_line(result, "checksum mismatch")
    assert not (tmp_path / "dl2" / "housing.csv").exists()
