"""`tfgate model-server`: tensorflow_model_server's flags, parsed by tfgate.serving.model_server.flags (absl style)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "model-server",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
        help="TF-Serving-compatible model server; flags as tensorflow_model_server (--help lists them).",
    )
    def model_server(ctx: typer.Context) -> None:
        from tfgate.serving.model_server import main

        raise typer.Exit(main(list(ctx.args)))
