"""`tfgate demo`: the main job on the bundled data, offline, one stage after another.

Each stage shows progress and its result; a failing stage stops the run with its message and
leaves nothing running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from clients.console import console, fail

REPO = Path(__file__).resolve().parent.parent
BUNDLED_HOUSING = REPO / "data" / "housing" / "housing.csv"
BUNDLED_FASHION = REPO / "data" / "fashion-mnist"


@dataclass
class DemoRun:
    workdir: Path
    epochs: int | None
    results: dict = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)


def stage_pipeline(run: DemoRun) -> None:
    from pipeline import beam_pipeline

    for dataset, source in (("housing", BUNDLED_HOUSING), ("fashion", BUNDLED_FASHION)):
        stats = beam_pipeline.run(dataset, str(source), str(run.path(dataset)))
        run.results[f"pipeline_{dataset}"] = stats
        splits = ", ".join(f"{k} {v:,}" for k, v in stats["splits"].items())
        console.print(f"  {dataset}: {splits}; rejected {stats['rejected']:,}; {stats['seconds']:.1f}s")


STAGES: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("pipeline (Beam + TF Transform) for housing and Fashion-MNIST", stage_pipeline),
]


def demo_command(
    workdir: Path = typer.Option(Path("work"), "--workdir", help="Where every artefact of the run goes."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default: each model's own)."),
) -> None:
    """Run the main job on the bundled data: pipeline → train → serve → predict → report."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for name in ("apache_beam", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    run = DemoRun(workdir=workdir, epochs=epochs)
    started = time.monotonic()
    for number, (title, stage) in enumerate(STAGES, start=1):
        console.rule(f"[bold]{number}/{len(STAGES)} {title}")
        stage_started = time.monotonic()
        try:
            with console.status(title):
                stage(run)
        except Exception as err:  # any stage failure ends the demo with one clear line
            fail(f"demo stage '{title}' failed: {type(err).__name__}: {err}", code=1)
        console.print(f"  done in {time.monotonic() - stage_started:.1f}s")
    console.rule(f"[bold green]demo finished in {time.monotonic() - started:.0f}s; artefacts in {workdir}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
