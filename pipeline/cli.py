"""`tfgate pipeline` and `tfgate train`: typer commands; heavy imports happen inside them."""

from __future__ import annotations

import logging
import os
import threading
import time
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from clients.console import console, fail


class DatasetName(str, Enum):
    housing = "housing"
    fashion = "fashion"


def _quiet_logs() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("apache_beam", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
) -> None:
    """Validate, split, analyze and transform a dataset with Beam + TF Transform.

    Any further option goes to Beam unchanged, e.g. --direct_num_workers=2
    --direct_running_mode=multi_processing, or --runner=DataflowRunner --project=P --region=R
    --temp_location=gs://B/tmp. The local default runner is FnApiRunner (works offline).
    """
    beam_args = list(ctx.args)
    if download:
        _download(dataset, input_path, mirror)
    elif not any(ch in input_path for ch in "*?[") and not input_path.startswith("gs://"):
        if not os.path.exists(input_path):
            fail(f"input not found: {input_path}")
    _quiet_logs()
    from pipeline import beam_pipeline

    with _elapsed_status(f"pipeline {dataset.value}: reading {input_path}"):
        try:
            stats = beam_pipeline.run(dataset.value, input_path, output, beam_args)
        except beam_pipeline.PipelineInputError as err:
            fail(str(err))
        except ValueError as err:  # Beam rejects unknown or malformed pipeline options this way
            if "option" in str(err).lower() or "argument" in str(err).lower():
                fail(f"bad Beam option: {err}")
            raise
    _print_stats(stats, output)


def _download(dataset: DatasetName, input_path: str, mirror: str | None) -> None:
    from pipeline import download

    try:
        with _elapsed_status(f"checking / downloading the full {dataset.value} dataset"):
            if dataset is DatasetName.housing:
                download.fetch_housing(input_path, mirror)
            else:
                download.fetch_fashion(input_path, mirror)
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


def register(app: typer.Typer) -> None:
    app.command(
        "pipeline",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(pipeline_command)
