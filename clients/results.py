"""What the clients return: plain Python and numpy objects, each with the model version that answered.

Example:
    >>> preds = client.predict_housing(rows)
    >>> preds.values[:3], preds.version
    (array([452600., 358500., 352100.], dtype=float32), 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import TfgateError


@dataclass(frozen=True)
class ServedBy:
    """The model version that produced (part of) a result; `label` is the gateway label used, if any.

    Example:
        >>> ServedBy("housing", 2, "canary").version
        2
    """

    model_name: str
    version: int
    label: str = ""


def _single_version(versions: np.ndarray, errors: dict) -> int | None:
    ok = np.delete(versions, list(errors)) if errors else versions
    unique = np.unique(ok)
    return int(unique[0]) if unique.size == 1 else None


@dataclass
class HousingPredictions:
    """`values[i]` is the predicted median house value in US dollars of record i (NaN if it failed);
    `versions[i]` the model version that answered it (0 if it failed); `errors` maps the index of
    each failed record to its error (only with `errors="collect"`).

    Example:
        >>> p = client.predict_housing(df)
        >>> float(p.values[0]), p.version, p.errors
        (452600.0, 1, {})
    """

    values: np.ndarray
    versions: np.ndarray
    served_by: list[ServedBy] = field(default_factory=list)
    errors: dict[int, TfgateError] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def version(self) -> int | None:
        """The one version that answered every successful record, None if several did (canary split)."""
        return _single_version(self.versions, self.errors)


@dataclass(frozen=True)
class ClassScore:
    """One class of an image's top-k.

    Example:
        >>> ClassScore(9, "Ankle boot", 0.97).class_name
        'Ankle boot'
    """

    class_id: int
    class_name: str
    probability: float


@dataclass
class FashionClassifications:
    """`top[i]` is image i's top-k classes, most probable first (empty if it failed); `versions[i]`
    the model version that answered (0 if failed); `errors` maps failed image indices to errors.

    Example:
        >>> c = client.classify_fashion(images, top_k=3)
        >>> c.class_names[0], c.probabilities[0, 0], c.version
        ('Ankle boot', 0.97, 1)
    """

    top: list[list[ClassScore]]
    versions: np.ndarray
    served_by: list[ServedBy] = field(default_factory=list)
    errors: dict[int, TfgateError] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.top)

    @property
    def version(self) -> int | None:
        """The one version that answered every successful image, None if several did."""
        return _single_version(self.versions, self.errors)

    @property
    def class_ids(self) -> np.ndarray:
        """int64 [N, k] class ids, -1 for failed images."""
        k = max((len(t) for t in self.top), default=0)
        out = np.full((len(self.top), k), -1, dtype=np.int64)
        for i, t in enumerate(self.top):
            out[i, :len(t)] = [c.class_id for c in t]
        return out

    @property
    def probabilities(self) -> np.ndarray:
        """float32 [N, k] probabilities of the top-k classes, NaN for failed images."""
        k = max((len(t) for t in self.top), default=0)
        out = np.full((len(self.top), k), np.nan, dtype=np.float32)
        for i, t in enumerate(self.top):
            out[i, :len(t)] = [c.probability for c in t]
        return out

    @property
    def class_names(self) -> list[str]:
        """The most probable class name of each image ("" for failed images)."""
        return [t[0].class_name if t else "" for t in self.top]


@dataclass
class PredictResult:
    """Named output arrays of a `predict` call and the model version(s) that answered.

    Example:
        >>> r = client.predict("fashion", {"image": images})
        >>> r.outputs["probabilities"].shape, r.version
        ((2, 10), 1)
    """

    outputs: dict[str, np.ndarray]
    served_by: list[ServedBy] = field(default_factory=list)

    @property
    def version(self) -> int | None:
        """The version that answered (None if chunks were answered by different versions)."""
        versions = {s.version for s in self.served_by}
        return versions.pop() if len(versions) == 1 else None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


@dataclass(frozen=True)
class ModelVersionInfo:
    """One version of a model as the backends report it; `state` is e.g. "AVAILABLE".

    Example:
        >>> ModelVersionInfo(1, "AVAILABLE").state
        'AVAILABLE'
    """

    version: int
    state: str
    error_message: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """A model configured in the gateway.

    Example:
        >>> [m.name for m in client.list_models()]
        ['fashion', 'housing']
    """

    name: str
    versions: list[ModelVersionInfo]
    labels: dict[str, int]
    traffic_split: dict[str, int]
    targets: list[str]
    healthy_targets: int
