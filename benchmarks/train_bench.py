"""Training benchmark: full-size training of both models (quality figures), and training steps/s
reading the pipeline's TFRecords versus the same model, batch size and examples held in memory.

    python benchmarks/train_bench.py [--housing-data DIR] [--fashion-data DIR]

Without --*-data the pipeline is run first on the bundled data into a temporary folder.
Writes benchmarks/results/train.json (and the evaluation plots beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(REPO, "benchmarks", "results")
TARGETS = {"housing_test_rmse_max": 52_000, "fashion_test_accuracy_min": 0.85, "steps_ratio_min": 0.9}
BUNDLED = {
    "housing": os.path.join(REPO, "data", "housing", "housing.csv"),
    "fashion": os.path.join(REPO, "data", "fashion-mnist"),
}


def pipeline_output(dataset: str, given: str | None, scratch: str) -> str:
    if given:
        return given
    from tfgate.pipeline import beam_pipeline

    out = os.path.join(scratch, f"{dataset}-pipeline")
    print(f"running the {dataset} pipeline into {out}", flush=True)
    beam_pipeline.run(dataset, BUNDLED[dataset], out)
    return out


def full_training(dataset: str, data_dir: str, scratch: str, seed: int) -> dict:
    from tfgate.pipeline.training import train

    def on_epoch(epoch, total, logs, seconds):
        shown = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "learning_rate")
        print(f"  {dataset} epoch {epoch}/{total} {shown} ({seconds:.1f}s)", flush=True)

    result = train(dataset, data_dir, os.path.join(scratch, "models", dataset), seed=seed, on_epoch=on_epoch)
    extra = os.path.join(result.path, "assets.extra")
    for name in os.listdir(extra):
        if name.endswith(".png"):
            shutil.copy(os.path.join(extra, name), os.path.join(RESULTS, f"train_{dataset}_{name}"))
    test, training = result.metrics["test"], result.metrics["training"]
    quality = (
        {"rmse": round(test["rmse"], 1), "mae": round(test["mae"], 1)}
        if dataset == "housing"
        else {"accuracy": round(test["accuracy"], 4)}
    )
    return {
        "test": {**quality, "examples": test["examples"]},
        "model": training["model"],
        "epochs_run": training["epochs_run"],
        "best_epoch": training["best_epoch"],
        "batch_size": training["batch_size"],
        "fit_seconds": training["fit_seconds"],
        "total_seconds": round(result.seconds, 1),
    }


def steps_per_second(dataset: str, data_dir: str, seed: int, rounds: int) -> dict:
    """Alternate timed epochs from TFRecords and from memory on one model; medians per side."""
    import keras
    import tensorflow as tf
    import tensorflow_transform as tft

    from tfgate.pipeline import housing
    from tfgate.pipeline.training import data, models, trainer

    keras.utils.set_random_seed(seed)
    tft_output = tft.TFTransformOutput(data_dir)
    spec = tft_output.transformed_feature_spec()
    label_key, to_inputs = trainer.LABEL_KEYS[dataset], trainer.TO_MODEL_INPUTS[dataset]
    batch_size = trainer.DEFAULTS[dataset]["batch_size"]
    categories = 0
    if dataset == "housing":
        categories = tft_output.vocabulary_size_by_name(housing.OCEAN_PROXIMITY_VOCAB) + 1
    model = models.build(dataset, models.DEFAULT_MODEL[dataset], categories)

    from_files = data.make_dataset(data_dir, "train", spec, to_inputs, label_key, batch_size, shuffle=True, seed=seed)
    arrays = data.load_split(data_dir, "train", spec)
    labels = arrays.pop(label_key)
    inputs = {k: v.numpy() for k, v in to_inputs(arrays).items()}
    in_memory = (
        tf.data.Dataset.from_tensor_slices((inputs, labels))
        .cache()
        .shuffle(data.SHUFFLE_BUFFER, seed=seed)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    steps = -(-len(labels) // batch_size)
    timings = {"tfrecords": [], "in_memory": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ds in (from_files, in_memory):  # warm-up: tracing and the first pass over the files
            model.fit(ds, epochs=1, verbose=0)
        for _ in range(rounds):
            for name, ds in (("tfrecords", from_files), ("in_memory", in_memory)):
                start = time.perf_counter()
                model.fit(ds, epochs=1, verbose=0)
                timings[name].append(steps / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "rounds": rounds,
        "tfrecords": round(medians["tfrecords"], 2),
        "in_memory": round(medians["in_memory"], 2),
        "ratio": round(medians["tfrecords"] / medians["in_memory"], 3),
        "all_runs": {name: [round(v, 2) for v in values] for name, values in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--housing-data")
    parser.add_argument("--fashion-data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per side for steps/s")
    parser.add_argument("--output", default=os.path.join(RESULTS, "train.json"))
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="tfgate-train-bench-")
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "targets": TARGETS,
    }
    try:
        for dataset in ("housing", "fashion"):
            data_dir = pipeline_output(dataset, getattr(args, f"{dataset}_data"), scratch)
            print(f"{dataset}: full training", flush=True)
            report[dataset] = full_training(dataset, data_dir, scratch, args.seed)
            print(f"{dataset}: steps/s, TFRecords vs in memory", flush=True)
            report[dataset]["steps_per_second"] = steps_per_second(dataset, data_dir, args.seed, args.rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["met"] = {
        "housing_rmse": report["housing"]["test"]["rmse"] <= TARGETS["housing_test_rmse_max"],
        "fashion_accuracy": report["fashion"]["test"]["accuracy"] >= TARGETS["fashion_test_accuracy_min"],
        "steps_ratio": all(report[d]["steps_per_second"]["ratio"] >= TARGETS["steps_ratio_min"]
                           for d in ("housing", "fashion")),
    }  # fmt: skip
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
