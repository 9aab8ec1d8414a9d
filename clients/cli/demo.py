"""`tfgate demo`: the main job on the bundled data, offline, one stage after another.

pipeline → train → model server + gateway on loopback → predictions through the `tfgate` CLI →
test metrics recomputed from the served predictions (they must equal the offline evaluation) →
report → servers stopped. A failing stage stops the run with its message and leaves nothing running.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from .console import console, fail, quiet_library_logs

HOUSING_CSV = ("housing", "housing.csv")
FASHION_DIR = ("fashion-mnist",)
FASHION_TEST_IMAGES = ("fashion-mnist", "t10k-images-idx3-ubyte.gz")
FASHION_TEST_LABELS = ("fashion-mnist", "t10k-labels-idx1-ubyte.gz")
LATENCY_REQUESTS = 300
# Served and offline metrics come from two graphs (SavedModel on raw rows vs Keras on transformed
# rows) that agree to ~1e-6 relative; dollars metrics may differ by that much, accuracy not at all.
HOUSING_METRIC_RTOL = 1e-4


def bundled(parts: tuple[str, ...]) -> Path:
    """A file of the sample data. A wheel ships data/ as package data in tfgate/data (pyproject.toml
    maps it); an editable install maps only code, so a source checkout reads its own data/."""
    packaged = Path(str(importlib.resources.files("tfgate"))) / "data"
    checkout = Path(__file__).resolve().parents[2] / "data"
    for root in (packaged, checkout):
        if root.joinpath(*parts).exists():
            return root.joinpath(*parts)
    raise FileNotFoundError(
        f"sample data {'/'.join(parts)} is neither in {packaged} nor in {checkout}; reinstall tfgate "
        "(the wheel ships it) or run from a source checkout"
    )


@dataclass
class DemoRun:
    workdir: Path
    epochs: int | None
    model_kinds: dict[str, str]  # dataset -> --model
    results: dict = field(default_factory=dict)
    servers: list = field(default_factory=list)
    gateway_target: str = ""
    commands: list[str] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)


def stage_pipeline(run: DemoRun) -> None:
    from tfgate.pipeline import beam_pipeline

    for dataset, source in (("housing", bundled(HOUSING_CSV)), ("fashion", bundled(FASHION_DIR))):
        stats = beam_pipeline.run(dataset, str(source), str(run.path(dataset)))
        run.results.setdefault("pipeline", {})[dataset] = stats
        splits = ", ".join(f"{k} {v:,}" for k, v in stats["splits"].items())
        console.print(f"  {dataset}: {splits}; rejected {stats['rejected']:,}; {stats['seconds']:.1f}s")
        run.commands.append(f"tfgate pipeline {dataset} --input {_rel(source)} --output {run.path(dataset)}")


def stage_train(run: DemoRun) -> None:
    from tfgate.pipeline import datasets
    from tfgate.pipeline.training import train

    for dataset in ("housing", "fashion"):
        kind = run.model_kinds.get(dataset)

        def on_epoch(epoch: int, total: int, logs: dict, seconds: float, dataset=dataset) -> None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, float) and k != "learning_rate")
            console.print(f"  {dataset} epoch {epoch}/{total}: {shown} ({seconds:.0f}s)")

        result = train(
            dataset,
            str(run.path(dataset)),
            str(run.path("models", dataset)),
            epochs=run.epochs,
            seed=42,
            model=kind,
            on_epoch=on_epoch,
        )
        test_metrics = result.metrics["test"]
        run.results.setdefault("models", {})[dataset] = {"version_dir": result.path, "metrics": test_metrics}
        shown = ", ".join(f"{name} {value}" for name, value in datasets.task(dataset).table_rows(test_metrics)[:2])
        console.print(f"  {dataset} v{result.version}: {shown}")
        options = f" --epochs {run.epochs}" if run.epochs else ""
        options += f" --model {kind}" if kind else ""
        base = run.path("models", dataset)
        run.commands.append(f"tfgate train {dataset} --data {run.path(dataset)} --model-base-path {base}{options}")


def stage_serve(run: DemoRun) -> None:
    from tfgate.serving.processes import model_config_text, start_gateway, start_model_server

    serving_dir = run.path("serving")
    config = model_config_text({m: str(run.path("models", m).resolve()) for m in ("housing", "fashion")})
    monitoring = serving_dir / "monitoring.config"
    serving_dir.mkdir(parents=True, exist_ok=True)
    monitoring.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
    server = start_model_server(serving_dir, model_config=config, flags=[f"--monitoring_config_file={monitoring}"])
    run.servers.append(server)
    console.print(f"  model server: gRPC {server.grpc_target}, REST {server.rest_url} (pid {server.pid})")
    # The gateway logs every request (the report's drift panel reads them); files finished after 1 s.
    models = {m: {"targets": [server.grpc_target], "logging": {"filename_prefix": str(run.path("request-logs", m))}}
              for m in ("housing", "fashion")}
    gateway = start_gateway(serving_dir, {"request_log": {"max_file_seconds": 1}, "models": models})
    run.servers.append(gateway)
    run.gateway_target = gateway.target
    console.print(
        f"  gateway: gRPC {gateway.target}, metrics http://127.0.0.1:{gateway.metrics_port}/metrics (pid {gateway.pid})"
    )
    run.commands += [
        f"tfgate model-server --port=8500 --rest_api_port=8501 --model_config_file={serving_dir / 'models.config'}",
        "tfgate gateway --config gateway.yaml   # models: {housing: {targets: [127.0.0.1:8500]}, fashion: …}",
    ]


def housing_test_rows(target: Path) -> int:
    """Write the raw rows of the pipeline's test split (same validation, same hash) as a CSV."""
    from tfgate.pipeline import beam_pipeline, housing

    with bundled(HOUSING_CSV).open() as source, target.open("w") as out:
        out.write(next(source))
        count = 0
        for line in source:
            fields = housing.parse_row(line.rstrip("\n"))
            if (
                housing.validate_row(fields) is None
                and beam_pipeline.housing_split(housing.normalize_row(fields)) == "test"
            ):
                out.write(line)
                count += 1
    return count


def _cli(run: DemoRun, *args: str) -> dict:
    """Run the `tfgate` client command line as a subprocess and return its JSON output."""
    from tfgate.serving.processes import tfgate_command

    output = run.path("predictions", f"{args[0]}-{args[1]}.json")
    cmd = [*tfgate_command(), *args, "--target", run.gateway_target, "--format", "json", "--output", str(output)]
    run.commands.append(" ".join(["tfgate", *args, "--target", "127.0.0.1:9000", "--format", "json"]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[1:3])}` exited {done.returncode}: {done.stderr.strip()[-500:]}")
    console.print(f"  {done.stderr.strip().splitlines()[-1]}")
    return json.loads(output.read_text())


def stage_predict(run: DemoRun) -> None:
    import numpy as np

    from tfgate.pipeline.training import evaluate

    run.path("predictions").mkdir(parents=True, exist_ok=True)
    test_csv = run.path("predictions", "housing-test.csv")
    rows = housing_test_rows(test_csv)
    expected = run.results["pipeline"]["housing"]["splits"]["test"]
    if rows != expected:
        raise RuntimeError(f"recomputed {rows} housing test rows, the pipeline wrote {expected}")
    housing_out = _cli(run, "predict", "housing", "--csv", str(test_csv))
    fashion_out = _cli(
        run,
        "classify",
        "fashion",
        "--idx",
        str(bundled(FASHION_TEST_IMAGES)),
        "--labels",
        str(bundled(FASHION_TEST_LABELS)),
        "--top-k",
        "3",
    )
    if housing_out["errors"] or fashion_out["errors"]:
        raise RuntimeError(f"served predictions had errors: {housing_out['errors'][:3]} {fashion_out['errors'][:3]}")

    predicted = np.array([p["predicted_median_house_value"] for p in housing_out["predictions"]])
    actual = np.array([p["median_house_value"] for p in housing_out["predictions"]])
    served = {"housing": evaluate.regression_metrics(predicted, actual)}
    classes = fashion_out["classifications"]
    top1 = np.array([c["top"][0]["class_id"] for c in classes])
    labels = np.array([c["label"] for c in classes])
    served["fashion"] = {"accuracy": float((top1 == labels).mean()), "examples": len(classes)}
    for dataset, metrics in served.items():
        run.results["models"][dataset]["served_metrics"] = metrics
    run.results["versions_answered"] = {
        "housing": dict(Counter(str(p["model_version"]) for p in housing_out["predictions"])),
        "fashion": dict(Counter(str(c["model_version"]) for c in classes)),
    }
    names = {t["class_id"]: t["class_name"] for c in classes for t in c["top"]}  # the model's own names
    run.results["samples"] = {
        "true": [names.get(c["label"], str(c["label"])) for c in classes[:24]],
        "predicted": [c["top"][0]["class_name"] for c in classes[:24]],
    }
    run.results["latencies_ms"] = measure_latency(run, test_csv)


def measure_latency(run: DemoRun, test_csv: Path) -> list[float]:
    """Single-record PredictHousing calls through the gateway, one at a time, timed at the client."""
    from tfgate.clients import GatewayClient

    with test_csv.open() as handle:
        records = [
            {k: (v if k == "ocean_proximity" else float(v) if v else None) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
    records = records[:: max(1, len(records) // LATENCY_REQUESTS)][:LATENCY_REQUESTS]  # spread over the split
    for record in records:
        record.pop("median_house_value")
        if record["total_bedrooms"] is None:
            del record["total_bedrooms"]
    latencies = []
    with GatewayClient(run.gateway_target, timeout=10) as client:
        client.predict_housing(records[:5])  # connection set-up is not request latency
        for record in records:
            start = time.perf_counter()
            client.predict_housing([record])
            latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def stage_check(run: DemoRun) -> None:
    """The served predictions must reproduce the offline test metrics."""
    models = run.results["models"]
    for key in ("rmse", "mae"):
        offline, served = models["housing"]["metrics"][key], models["housing"]["served_metrics"][key]
        if abs(served - offline) > HOUSING_METRIC_RTOL * offline:
            raise RuntimeError(f"housing {key}: served ${served:,.2f} differs from offline ${offline:,.2f}")
        console.print(f"  housing {key}: offline ${offline:,.2f} = served ${served:,.2f}")
    offline, served = models["fashion"]["metrics"]["accuracy"], models["fashion"]["served_metrics"]["accuracy"]
    if served != offline:
        raise RuntimeError(f"fashion accuracy: served {served:.6f} differs from offline {offline:.6f}")
    console.print(f"  fashion accuracy: offline {offline:.4f} = served {served:.4f}")


def served_drift(run: DemoRun) -> dict[str, dict]:
    """The demo's own served traffic (the gateway's request logs) against each model's training statistics."""
    from tfgate.serving import log_tools, request_log

    logs = run.path("request-logs")
    deadline = time.monotonic() + 30
    while request_log.log_files([str(logs)])[1] and time.monotonic() < deadline:
        time.sleep(0.2)  # the gateway finishes a file 1 s after opening it
    out = {}
    for dataset in ("housing", "fashion"):
        out[dataset] = log_tools.drift(str(run.path(dataset)), [str(logs / dataset)],
                                       output_dir=str(run.path("drift", dataset)), model=dataset)
        drifted = ", ".join(out[dataset]["drifted"]) or "none"
        console.print(f"  {dataset}: {out[dataset]['rows']} served rows against the training split; drifted: {drifted}")
    run.results["drift"] = {d: {"rows": r["rows"], "drifted": r["drifted"]} for d, r in out.items()}
    run.commands += [f"tfgate drift --stats work/{d} --logs work/request-logs/{d} -o work/drift/{d}"
                     for d in ("housing", "fashion")]
    return out


def stage_report(run: DemoRun) -> None:
    import gzip

    import numpy as np

    from . import report

    with gzip.open(bundled(FASHION_TEST_IMAGES)) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:24]
    rejected = {}
    for dataset in ("housing", "fashion"):
        rejected[dataset] = [
            json.loads(line)
            for path in sorted(run.path(dataset, "rejected").glob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line
        ]
    drift = served_drift(run)
    page = report.write(
        report.ReportInputs(
            pipeline_stats=run.results["pipeline"],
            rejected=rejected,
            models=run.results["models"],
            latencies_ms=run.results["latencies_ms"],
            versions_answered=run.results["versions_answered"],
            sample_images=images,
            sample_true=run.results["samples"]["true"],
            sample_predicted=run.results["samples"]["predicted"],
            commands=run.commands,
            drift=drift,
        ),
        run.path("report"),
    )
    console.print(f"  report: {page}")


STAGES: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("pipeline (Beam + TF Transform) for housing and Fashion-MNIST", stage_pipeline),
    ("training and SavedModel export for both models", stage_train),
    ("model server and gateway on loopback", stage_serve),
    ("predictions through the tfgate client command line", stage_predict),
    ("served test metrics against the offline evaluation", stage_check),
    ("report", stage_report),
]


def _rel(path: Path) -> str:
    """`path` as the user would type it from here: relative inside the current folder, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _stop_servers(run: DemoRun) -> None:
    for server in reversed(run.servers):
        server.stop()
    run.servers.clear()


def demo_command(
    workdir: Path = typer.Option(Path("work"), "--workdir", help="Where every artefact of the run goes."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default: each model's own)."),
    fashion_model: str = typer.Option("cnn", "--fashion-model", help="cnn (default) or mlp (faster)."),
    serve: bool = typer.Option(False, "--serve", help="Keep the servers up afterwards until Ctrl-C."),
) -> None:
    """Run the main job on the bundled data: pipeline → train → serve → predict → check → report."""
    quiet_library_logs()
    run = DemoRun(workdir=workdir.resolve(), epochs=epochs, model_kinds={"fashion": fashion_model})
    started = time.monotonic()
    try:
        for number, (title, stage) in enumerate(STAGES, start=1):
            console.rule(f"[bold]{number}/{len(STAGES)} {title}")
            stage_started = time.monotonic()
            try:
                with console.status(title):
                    stage(run)
            except Exception as err:  # any stage failure ends the demo with one clear line
                fail(f"demo stage '{title}' failed: {type(err).__name__}: {err}", code=1)
            console.print(f"  done in {time.monotonic() - stage_started:.1f}s")
        (run.path("demo.json")).write_text(
            json.dumps({k: v for k, v in run.results.items() if k != "latencies_ms"}, indent=2, default=str)
        )
        console.rule(
            f"[bold green]demo finished in {time.monotonic() - started:.0f}s; "
            f"report: {run.path('report', 'index.html')}"
        )
        if serve:
            console.print(
                f"serving; try:\n  tfgate models --target {run.gateway_target}\n"
                f"  tfgate classify fashion --idx {_rel(bundled(FASHION_TEST_IMAGES))} --target {run.gateway_target}"
                " --top-k 3\nCtrl-C stops the servers."
            )
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    finally:
        _stop_servers(run)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
