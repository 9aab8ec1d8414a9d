"""`tfgate drift --stats DIR --logs LOGS`: served inputs against the training statistics, feature by feature.

Prints a table, writes `drift.json`, the served statistics and a PNG per drifting feature to --output.
Exit codes: 0 nothing drifted, 1 some feature drifted, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import console, fail
from .logs import _run, wide
from .predict import OneLineCommand

EXIT_DRIFT = 1


class DriftFormat(StrEnum):
    table = "table"
    json = "json"


def _thresholds(values: list[str]) -> tuple[float | None, dict[str, float]]:
    """`0.2` sets the default; `FEATURE=0.2` one feature's."""
    default, per_feature = None, {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            fail(f"--threshold {value}: expected a number or FEATURE=NUMBER")
        if not 0 < threshold <= 1:
            fail(f"--threshold {value}: must be in (0, 1]")
        if name:
            per_feature[name] = threshold
        else:
            default = threshold
    return default, per_feature


def drift_command(
    stats: Annotated[Path, typer.Option("--stats", help="Pipeline output folder (its train_statistics.json) or "
                                        "a statistics JSON file.")],
    logs: Annotated[list[str], typer.Option("--logs", help="Log files, folders or filename prefixes (repeatable).")],
    model: Annotated[str | None, typer.Option("--model", help="The model (needed when the logs hold several).")]
    = None,
    threshold: Annotated[list[str] | None, typer.Option("--threshold", help="Default threshold (0.1), or "
                                                        "FEATURE=VALUE for one feature; repeatable.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for drift.json, the served statistics "
                                         "and a PNG per drifting feature.")] = Path("drift"),
    fmt: Annotated[DriftFormat, typer.Option("--format", help="Output format.")] = DriftFormat.table,
) -> None:
    """Compare served inputs with the training data; exit 1 when a feature drifted."""
    from tfgate.pipeline import statistics as st

    default, per_feature = _thresholds(threshold or [])
    report = _run(lambda t: t.drift, str(stats), logs, str(output), model, per_feature,
                  default if default is not None else st.DEFAULT_THRESHOLD)
    if fmt is DriftFormat.json:
        console.print_json(json.dumps(report))
    else:
        table = Table(title=f"drift of model {report['model']}: {report['rows']} served rows vs training data")
        for column in ("feature", "kind", "metric", "distance", "noise floor", "threshold", "drifted", "detail"):
            table.add_column(column, justify="right" if column in ("distance", "noise floor", "threshold") else "left",
                             no_wrap=column != "detail")
        for f in report["features"]:
            table.add_row(f["feature"], f["kind"], f["metric"].replace("_", "-"),
                          "" if f["distance"] is None else f"{f['distance']:.3f}",
                          "" if f["noise_floor"] is None else f"{f['noise_floor']:.3f}", f"{f['threshold']:g}",
                          "[bold red]yes[/]" if f["drifted"] else "no", f["detail"])
        wide().print(table)
        if report["plots"]:
            console.print(f"plots: {', '.join(report['plots'])}")
    if report["drifted"]:
        raise typer.Exit(EXIT_DRIFT)


def register(app: typer.Typer) -> None:
    app.command("drift", cls=OneLineCommand)(drift_command)
