"""`tfgate logs summary|to-warmup|to-examples LOGS...`: what the request logs hold, and turning them into
a warm-up file or training input. LOGS: log files, folders or a `filename_prefix`.

Exit codes: 0 done, 2 bad input (one line on stderr). Needs TensorFlow's protobuf modules, not its runtime.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .console import console, errors, fail
from .predict import OneLineCommand, OneLineGroup

Logs = Annotated[list[str], typer.Argument(help="Log files, folders (searched recursively) or filename prefixes.",
                                           show_default=False)]
Model = Annotated[str | None, typer.Option("--model", help="Only this model (needed when the logs hold several).")]


class SummaryFormat(StrEnum):
    table = "table"
    json = "json"


class ExampleFormat(StrEnum):
    auto = "auto"
    csv = "csv"
    idx = "idx"
    tfrecord = "tfrecord"


class Labels(StrEnum):
    predicted = "predicted"
    none = "none"


def _tools():
    """The log tools, with TensorFlow's protobuf modules loaded without its runtime (start-up in ~1 s)."""
    from tfgate.serving import log_tools, tfs_protos

    tfs_protos.install_light_tensorflow()
    return log_tools


def _run(fn, *args, **kwargs):
    log_tools = _tools()
    from tfgate.pipeline.statistics import StatisticsError
    from tfgate.serving.request_log import RequestLogError

    try:
        return fn(log_tools)(*args, **kwargs)
    except (log_tools.LogToolError, RequestLogError, StatisticsError) as err:
        fail(str(err))
    except OSError as err:
        fail(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))


def wide() -> Console:
    """The results console, wide enough for a table when stdout is a file or a pipe (rich assumes 80)."""
    return console if console.is_terminal else Console(width=200)


def _ms(value) -> str:
    return "" if value is None else f"{value:.2f}"


def summary_command(logs: Logs, model: Model = None,
                    fmt: Annotated[SummaryFormat, typer.Option("--format", help="Output format.")] = SummaryFormat.table
                    ) -> None:
    """Requests per model, version, signature, API and status, with latency percentiles (ms)."""
    result = _run(lambda t: t.summary, logs, model)
    if fmt is SummaryFormat.json:
        console.print_json(json.dumps(result))
        return
    table = Table(title=f"{result['records']} logged requests in {result['files']} file(s)")
    for column in ("model", "version", "signature", "api", "status", "count", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="right" if column in ("version", "count") or "ms" in column else "left")
    for g in result["groups"]:
        table.add_row(g["model"], str(g["version"] or ""), g["signature"], g["api"], g["status"], str(g["count"]),
                      _ms(g["latency_ms_p50"]), _ms(g["latency_ms_p90"]), _ms(g["latency_ms_p99"]))
    wide().print(table)
    if result["partial_files"]:
        errors.print(f"{len(result['partial_files'])} file(s) still being written (*.partial) were not read")


def to_warmup_command(logs: Logs,
                      output: Annotated[Path, typer.Option("--output", "-o", help="The warm-up file to write (e.g. "
                                                           "MODEL/VERSION/assets.extra/tf_serving_warmup_requests).")],
                      model: Model = None,
                      max_records: Annotated[int, typer.Option("--max-records", help="At most this many requests "
                                                               "(TF Serving reads at most 1000).")] = 100) -> None:
    """A tf_serving_warmup_requests file from successful logged requests (every API and signature)."""
    result = _run(lambda t: t.to_warmup, logs, str(output), model, max_records)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(result["by_api_signature"].items()))
    console.print(f"wrote {result['records']} warm-up requests of model {result['model']} to {output} ({shown})")


def to_examples_command(logs: Logs,
                        output: Annotated[Path, typer.Option("--output", "-o", help="CSV or TFRecord file, or the "
                                                             "folder of IDX files.")],
                        model: Model = None,
                        fmt: Annotated[ExampleFormat, typer.Option("--format", help="csv (tabular), idx (images), "
                                                                   "tfrecord (raw tf.Examples); auto picks csv or "
                                                                   "idx.")] = ExampleFormat.auto,
                        labels: Annotated[Labels, typer.Option("--labels", help="predicted: the model's own "
                                                               "predictions, to be checked before retraining; none: "
                                                               "an empty label column (CSV).")] = Labels.predicted,
                        label_column: Annotated[str | None, typer.Option("--label-column", help="Name of the label "
                                                                         "column (default: the model's output).")]
                        = None) -> None:
    """Served raw features as `tfgate pipeline` input, to relabel and retrain on."""
    result = _run(lambda t: t.to_examples, logs, str(output), model, fmt.value, labels.value, label_column)
    console.print(f"wrote {result['rows']} rows of model {result['model']} to {output} ({result['format']}, labels: "
                  f"{result['labels']} in column {result['label_column']})")


def register(app: typer.Typer) -> None:
    logs = typer.Typer(cls=OneLineGroup, no_args_is_help=True, help="Request logs: summary, warm-up file, examples.")
    logs.command("summary", cls=OneLineCommand)(summary_command)
    logs.command("to-warmup", cls=OneLineCommand)(to_warmup_command)
    logs.command("to-examples", cls=OneLineCommand)(to_examples_command)
    app.add_typer(logs, name="logs")
