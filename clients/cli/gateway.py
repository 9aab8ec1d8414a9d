"""`tfgate gateway --config FILE [--workers N]`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(
        config: Path = typer.Option(..., "--config", help="YAML config file (fields overridable by "
                                    "TFGATE_GATEWAY__SECTION__FIELD environment variables)."),
        workers: int = typer.Option(0, "--workers", help="Processes sharing the port (SO_REUSEPORT); "
                                    "0 = the config's `workers` (default 1)."),
    ) -> None:
        """Run the gRPC gateway in front of TF Serving / tfgate model-server replicas."""
        from tfgate.serving.gateway import run

        raise typer.Exit(run(str(config), workers or None))
