"""Test-split evaluation: metrics.json, and PNG plots beside it (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import os

import numpy as np


def regression_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict:
    error = predicted.astype(np.float64) - actual.astype(np.float64)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "examples": int(error.size),
    }


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    predicted = probabilities.argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros([k, k], np.int64)  # rows: true class, columns: predicted class
    np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        predicted_i = confusion[:, i].sum()
        actual_i = confusion[i, :].sum()
        per_class[name] = {
            "precision": float(confusion[i, i] / predicted_i) if predicted_i else 0.0,
            "recall": float(confusion[i, i] / actual_i) if actual_i else 0.0,
            "support": int(actual_i),
        }
    return {
        "accuracy": float(np.trace(confusion) / confusion.sum()),
        "examples": int(confusion.sum()),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "class_names": list(class_names),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: dict, path: str, metric: str) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", metric), strict=True):
        epochs = np.arange(1, len(history.get(key, [])) + 1)
        ax.plot(epochs, history.get(key, []), marker=".", label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker=".", label=f"eval {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, names: list[str], path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > confusion.max() / 2 else "black")  # fmt: skip
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_predicted_vs_actual(predicted: np.ndarray, actual: np.ndarray, label: str, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(actual, predicted, s=4, alpha=0.4)
    top = float(max(actual.max(), predicted.max()))
    ax.plot([0, top], [0, top], color="red", linewidth=1)
    ax.set_xlabel(f"actual {label}")
    ax.set_ylabel("predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(task, folder: str, metrics: dict, history: dict, arrays: dict) -> list[str]:
    """metrics.json, the learning curves and `task`'s own PNGs into `folder` (the version's
    assets.extra); returns the files written."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "metrics.json")
    with open(path, "w") as handle:
        json.dump(metrics, handle, indent=2)
    curves = os.path.join(folder, "learning_curves.png")
    plot_learning_curves(history, curves, task.metric)
    return [path, curves, *task.plots(folder, metrics["test"], arrays)]
