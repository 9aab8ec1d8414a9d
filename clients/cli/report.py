"""The demo's report: one static HTML page (work/report/index.html) with its PNGs beside it."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ReportInputs:
    pipeline_stats: dict[str, dict]  # dataset → stats.json
    rejected: dict[str, list[dict]]  # dataset → rejected records
    models: dict[str, dict]  # dataset → {"version_dir", "metrics" (offline), "served_metrics"}
    latencies_ms: list[float]
    versions_answered: dict[str, dict[str, int]]  # model → {version: requests}
    sample_images: np.ndarray | None = None  # uint8 [N, 28, 28]
    sample_true: list[str] = field(default_factory=list)
    sample_predicted: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    drift: dict[str, dict] = field(default_factory=dict)  # model → tfgate drift's report (log_tools.drift)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(latencies_ms: list[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(latencies_ms, bins=40, color="#4477aa")
    for q, style in ((50, "--"), (99, ":")):
        value = float(np.percentile(latencies_ms, q))
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.1f} ms")
    ax.set_xlabel("latency per request (ms), client → gateway → model server")
    ax.set_ylabel("requests")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(images: np.ndarray, true: list[str], predicted: list[str], path: Path) -> None:
    plt = _pyplot()
    count = len(images)
    columns = 8
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.9))
    for ax, image, truth, guess in zip(np.ravel(axes), images, true, predicted, strict=False):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"{guess}\n(true: {truth})", fontsize=7, color="green" if guess == truth else "red")
        ax.axis("off")
    for ax in np.ravel(axes)[count:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(src: str, caption: str) -> str:
    src, caption = html.escape(src), html.escape(caption)
    return f'<figure><img src="{src}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def _metric_rows(offline: dict, served: dict, keys: list[tuple[str, str]]) -> list[list[object]]:
    return [[label, _fmt(offline.get(key)), _fmt(served.get(key))] for key, label in keys]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.0f}"
    return "—" if value is None else str(value)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}figure{display:inline-block;margin:.5em}
img{max-width:520px;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
"""


def write(inputs: ReportInputs, folder: Path) -> Path:
    """Write index.html and its images into `folder`; returns the page's path."""
    from tfgate.pipeline import datasets

    folder.mkdir(parents=True, exist_ok=True)
    head = f"<meta charset='utf-8'><title>tfgate demo report</title><style>{STYLE}</style>"
    parts = [f"<!doctype html><html><head>{head}</head><body>"]
    parts.append("<h1>tfgate demo report</h1><p>Pipeline → training → serving → predictions, on the bundled data.</p>")

    parts.append("<h2>Data</h2>")
    rows = []
    for dataset, stats in inputs.pipeline_stats.items():
        splits = stats["splits"]
        rows.append(
            [
                dataset,
                stats["input_rows"],
                splits["train"],
                splits["eval"],
                splits["test"],
                stats["rejected"],
                f"{stats['seconds']:.1f}",
            ]
        )
    parts.append(_table(["dataset", "input rows", "train", "eval", "test", "rejected", "seconds"], rows))
    for dataset, records in inputs.rejected.items():
        if records:
            shown = [[r.get("line", r.get("index")), r["reason"], r.get("raw", "")[:80]] for r in records[:50]]
            parts.append(f"<h3>Rejected {dataset} rows</h3>" + _table(["line / index", "reason", "raw"], shown))
        else:
            parts.append(f"<p>{html.escape(dataset)}: no row rejected.</p>")

    parts.append("<h2>Models</h2>")
    for dataset, model in inputs.models.items():
        version_dir = Path(model["version_dir"])
        extra = version_dir / "assets.extra"
        parts.append(f"<h3>{html.escape(dataset)} — version {html.escape(version_dir.name)}</h3>")
        keys = datasets.task(dataset).report_metrics
        parts.append(
            _table(
                ["test metric", "offline evaluation", "recomputed from served predictions"],
                _metric_rows(model["metrics"], model["served_metrics"], keys),
            )
        )
        for png in sorted(extra.glob("*.png")):
            target = f"{dataset}-{png.name}"
            shutil.copyfile(png, folder / target)
            parts.append(_figure(target, f"{dataset}: {png.stem.replace('_', ' ')}"))
    if inputs.sample_images is not None and len(inputs.sample_images):
        plot_samples(inputs.sample_images, inputs.sample_true, inputs.sample_predicted, folder / "fashion-samples.png")
        parts.append(_figure("fashion-samples.png", "Fashion-MNIST test images: served prediction (true label)"))

    parts.append("<h2>Serving</h2>")
    if inputs.latencies_ms:
        plot_latency(inputs.latencies_ms, folder / "latency.png")
        lat = np.asarray(inputs.latencies_ms)
        parts.append(
            _table(
                ["requests", "p50 ms", "p90 ms", "p99 ms"],
                [[len(lat), *(f"{np.percentile(lat, q):.2f}" for q in (50, 90, 99))]],
            )
        )
        parts.append(_figure("latency.png", "latency of the demo's single-record requests through the gateway"))
    rows = [[m, v, n] for m, versions in inputs.versions_answered.items() for v, n in sorted(versions.items())]
    parts.append("<h3>Versions that answered</h3>" + _table(["model", "version", "requests"], rows))

    if inputs.drift:
        parts.append("<h2>Drift of served traffic</h2><p>The requests the demo sent through the gateway (which "
                     "logs them), against the training split's statistics: Jensen–Shannon distance for numeric "
                     "features and images, L-infinity for categorical ones; a feature drifts above its threshold "
                     "and above the noise floor of that many served values.</p>")
        for model, drift in inputs.drift.items():
            rows = [[f["feature"], f["metric"].replace("_", "-"), _fmt(f["distance"]), _fmt(f["noise_floor"]),
                     f["threshold"], "yes" if f["drifted"] else "no"] for f in drift["features"]]
            verdict = ", ".join(drift["drifted"]) or "none"
            parts.append(f"<h3>{html.escape(model)}: {drift['rows']} served rows; drifted: {html.escape(verdict)}"
                         "</h3>" + _table(["feature", "metric", "distance", "noise floor", "threshold", "drifted"],
                                          rows))
            for png in drift["plots"]:
                target = f"drift-{model}-{Path(png).name}"
                shutil.copyfile(png, folder / target)
                parts.append(_figure(target, f"{model}: {Path(png).stem.removeprefix('drift-')} served vs training"))

    parts.append("<h2>Reproduce</h2><pre>" + html.escape("\n".join(inputs.commands)) + "</pre>")
    parts.append("</body></html>")
    page = folder / "index.html"
    page.write_text("\n".join(parts))
    (folder / "report.json").write_text(
        json.dumps(
            {
                "pipeline": inputs.pipeline_stats,
                "models": {
                    k: {"metrics": v["metrics"], "served_metrics": v["served_metrics"]}
                    for k, v in inputs.models.items()
                },
                "versions_answered": inputs.versions_answered,
                "drift": {m: {"rows": d["rows"], "drifted": d["drifted"]} for m, d in inputs.drift.items()},
                "latency_ms": {f"p{q}": float(np.percentile(inputs.latencies_ms, q)) for q in (50, 90, 99)}
                if inputs.latencies_ms
                else {},
            },
            indent=2,
            default=str,
        )
    )
    return page
