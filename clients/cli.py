"""The `tfgate` command line: one entry point for every stage.

Each area registers its own commands and imports its heavy dependencies (TensorFlow, Beam)
only inside them, so `tfgate --help` and the client commands work on a core install.
"""

from __future__ import annotations

import os
import sys

import typer

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
    from clients import commands as client_commands
    from clients import demo
    from pipeline import cli as pipeline_cli
    from serving.gateway import cli as gateway_cli
    from serving.model_server import cli as model_server_cli

    for module in (pipeline_cli, model_server_cli, gateway_cli, demo, client_commands):
        module.register(app)


def main() -> None:
    # TensorFlow's C++ start-up chatter drowns progress output; TF_CPP_MIN_LOG_LEVEL=0 brings it back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _register_commands()
    app(prog_name="tfgate")


if __name__ == "__main__":
    sys.exit(main())
