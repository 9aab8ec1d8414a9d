"""What training, evaluation and export need to know about a dataset: one `Task` per dataset.

Each dataset defines its task beside its schema and preprocessing (`tfgate.pipeline.<dataset>.task`);
`tfgate.pipeline.datasets` lists them. The generic code (trainer, loop, export, evaluate, the command line) asks the
task and never branches on a dataset's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    """Training defaults, chosen so that every seed reaches the quality targets (benchmarks/train_bench.py
    checks five). The learning rate warms up, then decays along a cosine over `epochs`; AdamW's
    decoupled weight decay; early stopping on the eval loss after `patience` epochs without improvement."""

    epochs: int
    batch_size: int
    patience: int
    learning_rate: float
    weight_decay: float
    augment: bool


class Task(ABC):
    name: str
    label_key: str  # the transformed label
    required_features: tuple[str, ...]  # transformed features the pipeline output must have
    model_kinds: tuple[str, ...]  # --model choices; the first is the default
    metric: str  # the Keras metric's name ("rmse", "accuracy"): learning curves, reports
    report_metrics: tuple[tuple[str, str], ...]  # (metrics.json test key, how a report labels it)
    defaults: Defaults

    @property
    def default_model(self) -> str:
        return self.model_kinds[0]

    @abstractmethod
    def to_model_inputs(self, features: dict) -> dict:
        """Transformed features → model inputs: the one mapping training, evaluation and export share."""

    def augmentation(self) -> Callable | None:
        """A tf.data map over (inputs, label) for training only, or None."""
        return None

    @abstractmethod
    def build_model(self, kind: str, tft_output):
        """The uncompiled Keras model of `kind`."""

    @abstractmethod
    def loss(self, labels, predictions):
        """Per-example loss (Keras ops)."""

    @abstractmethod
    def keras_metric(self):
        """A new Keras metric named `self.metric`."""

    def batch_hits(self, labels, predictions):
        """Per-batch count behind the metric for the plain training loop (accuracy's correct answers); 0 if none."""
        import tensorflow as tf

        return tf.zeros([])

    @abstractmethod
    def test_metrics(self, outputs, labels, features: dict) -> tuple[dict, dict]:
        """Model outputs on the test split → (metrics.json's "test" entry, arrays for the plots and warm-up)."""

    @abstractmethod
    def table_rows(self, test: dict) -> list[tuple[str, str]]:
        """(name, value) rows for the printed evaluation table."""

    @abstractmethod
    def plots(self, folder: str, test: dict, arrays: dict) -> list[str]:
        """The dataset's own PNGs (beside the learning curves); returns the paths."""

    @abstractmethod
    def serving_module(self, model, tft_output):
        """The tf.Module exported as the SavedModel (raw features in, the transform graph inside)."""

    @abstractmethod
    def warmup_logs(self, model_name: str, arrays: dict) -> list:
        """TF Serving PredictionLog warm-up records for every exported signature."""

