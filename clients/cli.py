"""The `tfgate` command line: one entry point for every stage.

Each area registers its own commands and imports its heavy dependencies (TensorFlow, Beam)
only inside them, so `tfgate --help` and the client commands work on a core install. A server-side
command on an install without its extra stops with one line naming the extra (exit 2), not a traceback.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec

import typer
from rich.markup import escape

from tfgate.clients.console import EXIT_USAGE, errors

app = typer.Typer(
    name="tfgate",
    help="Raw files to predictions over gRPC: pipeline, train, serve, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The top-level modules of each extra in pyproject.toml's [project.optional-dependencies]
# (tests/test_install.py keeps the two in step), and the extras each command imports.
EXTRA_MODULES = {
    "pipeline": ("tensorflow", "tensorflow_transform", "tfx_bsl", "apache_beam", "matplotlib", "tensorboard"),
    "serving": ("tensorflow", "tensorflow_serving", "grpc_health", "grpc_reflection", "prometheus_client",
                "aiohttp", "yaml", "PIL", "uvloop"),
}
COMMAND_EXTRAS = {
    "pipeline": ("pipeline",),
    "train": ("pipeline",),
    "model-server": ("serving",),
    "gateway": ("serving",),
    "demo": ("pipeline", "serving"),
}
# --help still works without the extra (model-server's TF Serving-style flags spell help four ways).
HELP_FLAGS = {"model-server": {"--help", "-help", "-h", "--helpfull"}}


def missing_extra(args: list[str]) -> str | None:
    """One line naming the extra the command in `args` needs, if one of its modules is not installed."""
    if not args or args[0] not in COMMAND_EXTRAS or HELP_FLAGS.get(args[0], {"--help"}).intersection(args[1:]):
        return None
    extras = COMMAND_EXTRAS[args[0]]
    missing = [m for m in dict.fromkeys(m for e in extras for m in EXTRA_MODULES[e]) if find_spec(m) is None]
    if not missing:
        return None
    shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
    names = " and ".join(extras)
    return (f"tfgate {args[0]} needs the {names} extra{'s' if len(extras) > 1 else ''} (not installed: {shown}): "
            f"pip install 'tfgate[{','.join(extras)}]'")


@app.callback()
def _root() -> None:
    """Raw files to predictions over gRPC: pipeline, train, serve, predict."""


def _register_commands() -> None:
    from tfgate.clients import commands as client_commands
    from tfgate.clients import demo
    from tfgate.pipeline import cli as pipeline_cli
    from tfgate.serving.gateway import cli as gateway_cli
    from tfgate.serving.model_server import cli as model_server_cli

    for module in (pipeline_cli, model_server_cli, gateway_cli, demo, client_commands):
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


if __name__ == "__main__":
    sys.exit(main())
