"""The `tfgate` command line: one entry point for every stage, and the composition root.

One module per command group (predict, pipeline, model_server, gateway, demo, logs, drift); this package is the only
place that imports `tfgate.pipeline` and `tfgate.serving`, and only inside a command, so `tfgate --help`
and the client commands work on a core install (no TensorFlow). A server-side command on an install
without its extra stops with one line naming the extra (exit 2, extras.py), not a traceback.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from .console import EXIT_USAGE, errors
from .extras import missing_extra

app = typer.Typer(
    name="tfgate",
    help="Raw files to predictions over gRPC: pipeline, train, serve, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Raw files to predictions over gRPC: pipeline, train, serve, predict."""


def _register_commands() -> None:
    from . import demo, drift, gateway, logs, model_server, pipeline, predict

    for module in (pipeline, model_server, gateway, demo, predict, logs, drift):
        module.register(app)


def main() -> None:
    # TensorFlow's C++ start-up chatter drowns progress output; TF_CPP_MIN_LOG_LEVEL=0 brings it back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    problem = missing_extra(sys.argv[1:])
    if problem:
        errors.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    _register_commands()
    app(prog_name="tfgate")
