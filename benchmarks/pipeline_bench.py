"""Pipeline throughput against the floor cost of parsing and serialization, measured in one run.

For housing ×1, ×4, ×16 (rows replicated) and Fashion-MNIST:
- baseline: one plain Python process reads the same input, validates it the same way and writes
  tf.Example TFRecords (GZIP) of the same raw features; no Beam, no analysis;
- pipeline: `beam_pipeline.run` with FnApiRunner, 2 workers (multi_processing).
Prints a table and writes benchmarks/results/pipeline.json and pipeline.png.

    python benchmarks/pipeline_bench.py [--workers 2] [--scales 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfgate.pipeline import beam_pipeline, fashion, housing  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
HOUSING_CSV = REPO / "data" / "housing" / "housing.csv"
FASHION_DIR = REPO / "data" / "fashion-mnist"


def replicate_csv(times: int, directory: Path) -> tuple[Path, int]:
    header, *rows = HOUSING_CSV.read_text().splitlines()
    path = directory / f"housing-x{times}.csv"
    with path.open("w") as out:
        out.write(header + "\n")
        for _ in range(times):
            out.write("\n".join(rows) + "\n")
    return path, len(rows) * times


def housing_example(fields: list[str]) -> bytes:
    feature = {}
    for name, value in zip(housing.CSV_COLUMNS, fields, strict=True):
        value = value.strip()
        if name == housing.CATEGORICAL_COLUMN:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)] if value else []))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def baseline_housing(csv_path: Path, out_dir: Path) -> int:
    written = 0
    with tf.io.TFRecordWriter(str(out_dir / "housing.tfrecord.gz"), options="GZIP") as writer:
        with csv_path.open() as handle:
            next(handle)
            for line in handle:
                fields = housing.parse_row(line.rstrip("\n"))
                if housing.validate_row(fields) is None:
                    writer.write(housing_example(fields))
                    written += 1
    return written


def baseline_fashion(directory: Path, out_dir: Path) -> int:
    written = 0
    with tf.io.TFRecordWriter(str(out_dir / "fashion.tfrecord.gz"), options="GZIP") as writer:
        for images, labels in fashion.SOURCE_FILES.values():
            for _, image, label, reason in fashion.read_pairs(str(directory / images), str(directory / labels)):
                if reason is None:
                    writer.write(fashion.to_example(image, label))
                    written += 1
    return written


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    beam_args = [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing"]
    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        inputs = [(f"housing x{s}", "housing", *replicate_csv(s, scratch)) for s in args.scales]
        inputs.append(("fashion", "fashion", FASHION_DIR, None))
        for name, dataset, path, rows in inputs:
            base_out = scratch / f"baseline-{name.replace(' ', '')}"
            base_out.mkdir()
            baseline = baseline_housing if dataset == "housing" else baseline_fashion
            base_seconds, base_rows = timed(baseline, path, base_out)
            print(f"{name}: baseline {base_rows:,} rows in {base_seconds:.1f}s; running the pipeline…", flush=True)
            pipe_out = scratch / f"pipeline-{name.replace(' ', '')}"
            pipe_seconds, stats = timed(beam_pipeline.run, dataset, str(path), str(pipe_out), beam_args)
            rows = stats["input_rows"]
            assert stats["rows_accounted"] and (dataset != "housing" or rows == base_rows)
            cases.append(
                {
                    "case": name,
                    "rows": rows,
                    "baseline_seconds": round(base_seconds, 3),
                    "pipeline_seconds": round(pipe_seconds, 3),
                    "baseline_rows_per_s": round(rows / base_seconds, 1),
                    "pipeline_rows_per_s": round(rows / pipe_seconds, 1),
                    "ratio_pipeline_to_baseline": round(base_seconds / pipe_seconds, 3),
                }
            )
            print(f"  pipeline {pipe_seconds:.1f}s, ratio {cases[-1]['ratio_pipeline_to_baseline']:.2f}", flush=True)

    housing_cases = [c for c in cases if c["case"].startswith("housing")]
    rows = np.array([c["rows"] for c in housing_cases], dtype=float)
    seconds = np.array([c["pipeline_seconds"] for c in housing_cases])
    slope, startup = np.polyfit(rows, seconds, 1)
    fitted = startup + slope * rows
    r2 = 1 - ((seconds - fitted) ** 2).sum() / ((seconds - seconds.mean()) ** 2).sum()
    largest = housing_cases[-1]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workers": args.workers,
        "cases": cases,
        "housing_linear_fit": {
            "startup_seconds": round(startup, 2),
            "seconds_per_million_rows": round(slope * 1e6, 2),
            "r_squared": round(float(r2), 4),
            "rows_per_s_after_startup_at_largest": round(largest["rows"] / (largest["pipeline_seconds"] - startup), 1),
        },
        "target": "at the largest housing scale the pipeline reaches >= 0.25x the baseline's rows/s",
        "target_met": largest["ratio_pipeline_to_baseline"] >= 0.25,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(cases, startup, slope)
    print_table(result)
    return 0


def plot(cases: list[dict], startup: float, slope: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    housing_cases = [c for c in cases if c["case"].startswith("housing")]
    rows = [c["rows"] for c in housing_cases]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rows, [c["pipeline_seconds"] for c in housing_cases], "o-", label="pipeline (Beam + TFT)")
    ax.plot(rows, [c["baseline_seconds"] for c in housing_cases], "s-", label="baseline (plain Python)")
    ax.plot(rows, [startup + slope * r for r in rows], "--", color="grey", label="linear fit of pipeline")
    ax.set_xlabel("housing rows")
    ax.set_ylabel("seconds")
    ax.set_title("Pipeline time vs rows (housing)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "pipeline.png", dpi=120)


def print_table(result: dict) -> None:
    print(f"\n{'case':<12}{'rows':>10}{'baseline r/s':>14}{'pipeline r/s':>14}{'ratio':>8}")
    for c in result["cases"]:
        print(
            f"{c['case']:<12}{c['rows']:>10,}{c['baseline_rows_per_s']:>14,.0f}"
            f"{c['pipeline_rows_per_s']:>14,.0f}{c['ratio_pipeline_to_baseline']:>8.2f}"
        )
    fit = result["housing_linear_fit"]
    print(
        f"\nlinear fit: start-up {fit['startup_seconds']}s, {fit['seconds_per_million_rows']}s per million rows, "
        f"R² {fit['r_squared']}; target met: {result['target_met']}"
    )


if __name__ == "__main__":
    sys.exit(main())
