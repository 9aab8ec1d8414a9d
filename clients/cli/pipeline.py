"""`tfgate pipeline` and `tfgate train`: typer commands; heavy imports happen inside them."""

from __future__ import annotations

import os
import threading
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from .console import console, fail, quiet_library_logs


class DatasetName(StrEnum):  # tfgate.pipeline.datasets.NAMES (not imported: the pipeline loads inside a command)
    housing = "housing"
    fashion = "fashion"


def pipeline_command(
    ctx: typer.Context,
    dataset: DatasetName = typer.Argument(..., help="Which dataset to preprocess."),
    input_path: str = typer.Option(
        ...,
        "--input",
        help="housing: a CSV file or glob (local or gs://); fashion: the folder of the four IDX .gz files.",
    ),
    output: str = typer.Option(..., "--output", help="Output folder (local or gs://); a rerun replaces it."),
    download: bool = typer.Option(
        False,
        "--download",
        help="Fetch the full official dataset into --input first (files already there are verified).",
    ),
    mirror: str = typer.Option(
        None,
        "--mirror",
        envvar="TFGATE_DATA_MIRROR",
        help="Base URL holding the dataset files for --download (housing.tgz, or the four Fashion-MNIST .gz).",
    ),
    job_file: str = typer.Option(
        None,
        "--job-file",
        help="With --runner=DataflowRunner --dry_run=True: write the built job (Beam's Job message, the options "
        "and the portable pipeline Dataflow would run) to this file as JSON.",
    ),
) -> None:
    """Validate, split, analyze and transform a dataset with Beam + TF Transform.

    Any further option goes to Beam unchanged, e.g. --direct_num_workers=2
    --direct_running_mode=multi_processing, or --runner=DataflowRunner --project=P --region=R
    --temp_location=gs://B/tmp --sdk_container_image=IMAGE (add --dry_run=True to build the job without
    submitting it). The local default runner is FnApiRunner (works offline).
    """
    beam_args = list(ctx.args)
    if download:
        _download(dataset, input_path, mirror)
    elif not any(ch in input_path for ch in "*?[") and "://" not in input_path:
        # a plain local path; gs://, s3://, ... are checked through Beam's file systems
        if not os.path.exists(input_path):
            fail(f"input not found: {input_path}")
    quiet_library_logs()
    from tfgate.pipeline import beam_pipeline

    with _elapsed_status(f"pipeline {dataset.value}: reading {input_path}"):
        try:
            stats = beam_pipeline.run(dataset.value, input_path, output, beam_args, job_file=job_file)
        except beam_pipeline.PipelineInputError as err:
            fail(str(err))
        except ValueError as err:  # Beam rejects unknown or malformed pipeline options this way
            if "option" in str(err).lower() or "argument" in str(err).lower():
                fail(f"bad Beam option: {err}")
            raise
    if stats.get("dry_run"):
        console.print(
            f"Dataflow job {stats['job_name']} built, not submitted (dry run): {stats['transforms']} transforms"
            + (f"; written to {job_file}" if job_file else ""),
            highlight=False,
            soft_wrap=True,
        )
        return
    _print_stats(stats, output)


def _download(dataset: DatasetName, input_path: str, mirror: str | None) -> None:
    from tfgate.pipeline import download

    try:
        with _elapsed_status(f"checking / downloading the full {dataset.value} dataset"):
            download.fetch(dataset.value, input_path, mirror)
    except download.DownloadError as err:
        fail(str(err))


class _elapsed_status:
    """A spinner with elapsed seconds while a long step runs (Beam gives no row progress locally)."""

    def __init__(self, message: str):
        self.message = message
        self._done = threading.Event()

    def __enter__(self):
        self._status = console.status(self.message)
        self._status.__enter__()
        start = time.monotonic()

        def tick():
            while not self._done.wait(0.5):
                self._status.update(f"{self.message} · {time.monotonic() - start:.0f}s")

        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        return self._status.__exit__(*exc)


def _print_stats(stats: dict, output: str) -> None:
    table = Table(title=f"pipeline {stats['dataset']} → {output}")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for split, rows in stats["splits"].items():
        table.add_row(split, f"{rows:,}")
    table.add_row("rejected", f"{stats['rejected']:,}")
    table.add_row("input rows", f"{stats['input_rows']:,}")
    table.add_row("seconds", f"{stats['seconds']:.1f}")
    console.print(table)
    if stats["rejected"]:
        console.print(f"rejected rows and reasons: {Path(output) / 'rejected'}")


class StrategyName(StrEnum):
    default = "default"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


def train_command(
    dataset: DatasetName = typer.Argument(..., help="Which model to train."),
    data: str = typer.Option(..., "--data", help="Pipeline output folder (tfgate pipeline --output)."),
    model_base_path: str = typer.Option(
        ..., "--model-base-path", help="Model repository folder; the new version goes to DIR/<version>/."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Most epochs to run (early stopping may end sooner)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Global batch size."),
    seed: int = typer.Option(None, "--seed", help="Seed for weights, shuffling, dropout (reproducible)."),
    model: str = typer.Option(None, "--model", help="fashion: cnn (default) or mlp (lighter); housing: wide-deep."),
    strategy: StrategyName = typer.Option(
        StrategyName.default, "--strategy", help="tf.distribute strategy; multi-worker reads TF_CONFIG."
    ),
    version: int = typer.Option(None, "--version", help="Version number (default: the next integer)."),
    steps_per_epoch: int = typer.Option(
        None, "--steps-per-epoch", help="Training steps per epoch (default: one pass over the train split)."
    ),
    logdir: str = typer.Option(
        None, "--logdir", help="TensorBoard folder (default: <base's parent>/tensorboard/<base name>/<version>)."
    ),
) -> None:
    """Train a Keras model on the pipeline's TFRecords and export a versioned SavedModel.

    The SavedModel takes raw features (the transform graph is inside), carries TF Serving warm-up
    records, and its assets.extra/ holds the test-split metrics.json and plots.
    """
    quiet_library_logs()
    from tfgate.pipeline.training import TrainingInputError, train

    def on_epoch(epoch: int, total: int, logs: dict, seconds: float) -> None:
        shown = " · ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
        console.print(f"epoch {epoch}/{total} · {shown} · {seconds:.1f}s", highlight=False, soft_wrap=True)

    try:
        with _elapsed_status(f"train {dataset.value}: {data}"):
            result = train(
                dataset.value,
                data,
                model_base_path,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                model=model,
                strategy=strategy.value,
                version=version,
                steps_per_epoch=steps_per_epoch,
                logdir=logdir,
                on_epoch=on_epoch,
            )
    except TrainingInputError as err:
        fail(str(err))
    if result.path is None:
        epochs_run = len(result.history.get("loss", []))
        console.print(f"worker finished after {epochs_run} epochs (the chief exports the model)")
        return
    _print_evaluation(result)


def _print_evaluation(result) -> None:
    from tfgate.pipeline import datasets

    table = Table(title=f"train {result.dataset} → {result.path}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in datasets.task(result.dataset).table_rows(result.metrics["test"]):
        table.add_row(name, value)
    training = result.metrics["training"]
    table.add_row("epochs run (best)", f"{training['epochs_run']} ({training['best_epoch']})")
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
    if "confusion_matrix" in result.metrics["test"]:
        _print_confusion(result.metrics["test"])


def _print_confusion(test: dict) -> None:
    names = test["class_names"]
    table = Table(title="confusion matrix (rows: true class, columns: predicted class number)")
    table.add_column("true class")
    for i in range(len(names)):
        table.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(names, test["confusion_matrix"], strict=True)):
        table.add_row(f"{i} {name}", *(str(count) for count in row))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(
        "pipeline",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(pipeline_command)
    app.command("train")(train_command)
