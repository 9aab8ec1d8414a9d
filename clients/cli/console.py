"""Shared terminal output: one console for results, one for errors, and the exit-code convention."""

from __future__ import annotations

import logging
from typing import NoReturn

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)

EXIT_USAGE = 2  # bad input or usage: one readable line on stderr


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def quiet_library_logs() -> None:
    """Keep Beam's, TensorFlow's and absl's INFO chatter out of the progress output."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("apache_beam", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
