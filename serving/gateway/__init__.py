"""The tfgate gateway: the project's own gRPC API (protos/tfgate/v1) in front of TF Serving replicas."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Runs the gateway on `--config FILE [--workers N]` (default: sys.argv[1:]) until SIGTERM or
    SIGINT; returns the process exit code. The model server package has the same entry point."""
    from .process import main as run_args

    return run_args(sys.argv[1:] if argv is None else list(argv))


def run(config: str, workers: int | None = None) -> int:
    """`main` for a caller that has parsed the options: one process, or `workers` (default: the
    config's) sharing the port."""
    from .process import run as run_config

    return run_config(config, workers)
