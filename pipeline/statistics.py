"""Per-feature statistics of raw data, and drift between training data and served requests.

Statistics are computed from raw values (numpy arrays, one per feature), merge across batches and
workers, and serialize to JSON:

- numeric: count, missing rate, mean, std, min, max, deciles and a quantile histogram (the bins' inner
  edges are the training quantiles; the outer bins are open, so served values beyond the training range
  still land in a bin). NaN is a missing value. Quantiles come from a uniform sample of at most
  `SAMPLE_SIZE` values (exact below that), mergeable because each value carries a random priority and
  a merge keeps the lowest priorities.
- categorical: value counts and frequencies (a missing value is an empty string or None).
- image: the pixel-intensity histogram (256 levels) over every pixel of every image, mean and std.

Drift compares served statistics with the training ones, feature by feature:
- numeric: Jensen–Shannon distance (base 2, so in [0, 1]) between the two histograms over the
  training bins plus a "missing" bin, so a change in the missing rate counts too;
- categorical: L-infinity distance (the largest difference in a value's frequency, missing included);
- image: Jensen–Shannon distance between the pixel-intensity histograms (`IMAGE_DRIFT_BINS` bins).
A feature drifts when its distance exceeds its threshold *and* the noise floor: the distance that
samples of the served size, drawn from the training distribution itself, stay under 99.9% of the time
(few served values are far from any distribution by chance alone).

Numpy only (matplotlib for the plots, imported when they are drawn): `tfgate drift` runs on a serving install.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

FORMAT = "tfgate-statistics/1"
NUMERIC, CATEGORICAL, IMAGE = "numeric", "categorical", "image"
KINDS = (NUMERIC, CATEGORICAL, IMAGE)
QUANTILE_BINS = 10
SAMPLE_SIZE = 100_000
IMAGE_LEVELS = 256
IMAGE_DRIFT_BINS = 32
DEFAULT_THRESHOLD = 0.1
MIN_SERVED = 30  # fewer served values than this: reported, never flagged
NOISE_QUANTILE = 0.999
NOISE_DRAWS = 2000
MISSING_LABEL = "<missing>"
STATISTICS_FILE = "train_statistics.json"


class StatisticsError(ValueError):
    """Statistics that cannot be computed or compared (unknown kind, wrong shapes, unreadable file)."""


# ---------------------------------------------------------------------------------------------
# Accumulators: add() batches, merge() partial results (Beam combiners, several log files).


class NumericAccumulator:
    kind = NUMERIC

    def __init__(self, sample_size: int = SAMPLE_SIZE, seed: int | None = None):
        self.sample_size = sample_size
        self.count = 0  # present values
        self.missing = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations (Chan et al.'s parallel update)
        self.min = math.inf
        self.max = -math.inf
        self.values = np.empty(0, np.float64)
        self.priorities = np.empty(0, np.float64)
        self._rng = np.random.default_rng(seed)

    def add(self, values) -> None:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        present = array[~np.isnan(array)]
        self.missing += array.size - present.size
        if present.size == 0:
            return
        if not np.all(np.isfinite(present)):
            raise StatisticsError("numeric values must be finite (NaN marks a missing value)")
        other = NumericAccumulator(self.sample_size, seed=0)
        other.count = int(present.size)
        other.mean = float(present.mean())
        other.m2 = float(((present - other.mean) ** 2).sum())
        other.min, other.max = float(present.min()), float(present.max())
        other.values, other.priorities = present, self._rng.random(present.size)
        self.merge(other)

    def merge(self, other: NumericAccumulator) -> NumericAccumulator:
        self.missing += other.missing
        if other.count:
            total = self.count + other.count
            delta = other.mean - self.mean
            self.mean += delta * other.count / total
            self.m2 += other.m2 + delta * delta * self.count * other.count / total
            self.count = total
            self.min, self.max = min(self.min, other.min), max(self.max, other.max)
            values = np.concatenate([self.values, other.values])
            priorities = np.concatenate([self.priorities, other.priorities])
            if values.size > self.sample_size:  # the lowest priorities are a uniform sample of the union
                keep = np.argpartition(priorities, self.sample_size)[: self.sample_size]
                values, priorities = values[keep], priorities[keep]
            self.values, self.priorities = values, priorities
        return self

    def to_json(self, bins: int = QUANTILE_BINS, reference: dict | None = None) -> dict:
        total = self.count + self.missing
        out = {
            "kind": NUMERIC,
            "count": total,
            "present": self.count,
            "missing": self.missing,
            "missing_rate": self.missing / total if total else 0.0,
            "mean": self.mean if self.count else None,
            "std": math.sqrt(self.m2 / self.count) if self.count else None,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sampled": int(self.values.size),
        }
        if self.count:
            out["quantiles"] = [float(q) for q in np.quantile(self.values, np.linspace(0, 1, 11))]
            inner = np.unique(np.quantile(self.values, np.arange(1, bins) / bins))
            out["histogram"] = {"edges": [float(e) for e in inner], "counts": self._bin_counts(inner)}
        if reference is not None and reference.get("histogram"):
            out["reference_histogram"] = {"edges": reference["histogram"]["edges"],
                                          "counts": self._bin_counts(np.asarray(reference["histogram"]["edges"]))}
        return out

    def _bin_counts(self, inner_edges: np.ndarray) -> list[int]:
        """Counts of the sample in (-inf, e1], (e1, e2], ..., (ek, inf), scaled to the present count."""
        counts = np.bincount(np.searchsorted(inner_edges, self.values, side="left"), minlength=inner_edges.size + 1)
        if self.values.size and self.values.size != self.count:
            counts = np.round(counts * (self.count / self.values.size))
        return [int(c) for c in counts]


class CategoricalAccumulator:
    kind = CATEGORICAL

    def __init__(self):
        self.counts: Counter = Counter()
        self.missing = 0

    def add(self, values) -> None:
        for value in np.asarray(values, dtype=object).reshape(-1):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                self.missing += 1
            else:
                self.counts[str(value)] += 1

    def merge(self, other: CategoricalAccumulator) -> CategoricalAccumulator:
        self.counts.update(other.counts)
        self.missing += other.missing
        return self

    def to_json(self, bins: int = QUANTILE_BINS, reference: dict | None = None) -> dict:
        present = sum(self.counts.values())
        total = present + self.missing
        ordered = dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return {
            "kind": CATEGORICAL,
            "count": total,
            "present": present,
            "missing": self.missing,
            "missing_rate": self.missing / total if total else 0.0,
            "unique": len(self.counts),
            "counts": ordered,
            "frequencies": {k: v / total for k, v in ordered.items()} if total else {},
        }


class ImageAccumulator:
    kind = IMAGE

    def __init__(self):
        self.histogram = np.zeros(IMAGE_LEVELS, np.int64)
        self.images = 0
        self.missing = 0
        self.shape: list[int] | None = None

    def add(self, values) -> None:
        """uint8 images [N, H, W(, C)], or a sequence of images (arrays or raw bytes); None = missing."""
        if isinstance(values, np.ndarray) and values.dtype != object:
            if values.dtype != np.uint8:
                raise StatisticsError(f"images must be uint8 pixels, got {values.dtype}")
            if values.ndim < 2:
                raise StatisticsError(f"images must be [N, height, width], got shape {list(values.shape)}")
            self._add_array(values)
            return
        for image in values:
            if image is None or (isinstance(image, bytes | str) and not image):
                self.missing += 1
            elif isinstance(image, bytes):
                self._add_array(np.frombuffer(image, np.uint8)[None, :])
            else:
                self._add_array(np.asarray(image, np.uint8)[None, ...])

    def _add_array(self, images: np.ndarray) -> None:
        self.images += images.shape[0]
        if images.shape[0] and self.shape is None:
            self.shape = [int(d) for d in images.shape[1:]]
        self.histogram += np.bincount(images.reshape(-1), minlength=IMAGE_LEVELS)

    def merge(self, other: ImageAccumulator) -> ImageAccumulator:
        self.histogram += other.histogram
        self.images += other.images
        self.missing += other.missing
        self.shape = self.shape or other.shape
        return self

    def to_json(self, bins: int = QUANTILE_BINS, reference: dict | None = None) -> dict:
        pixels = int(self.histogram.sum())
        levels = np.arange(IMAGE_LEVELS, dtype=np.float64)
        mean = float((levels * self.histogram).sum() / pixels) if pixels else None
        std = float(math.sqrt(((levels - mean) ** 2 * self.histogram).sum() / pixels)) if pixels else None
        total = self.images + self.missing
        return {
            "kind": IMAGE,
            "count": total,
            "present": self.images,
            "missing": self.missing,
            "missing_rate": self.missing / total if total else 0.0,
            "shape": self.shape,
            "pixels": pixels,
            "mean": mean,
            "std": std,
            "histogram": {"levels": IMAGE_LEVELS, "counts": [int(c) for c in self.histogram]},
        }


ACCUMULATORS = {NUMERIC: NumericAccumulator, CATEGORICAL: CategoricalAccumulator, IMAGE: ImageAccumulator}


def infer_kind(values) -> str:
    """numeric for numbers, image for uint8 arrays of 2+ dimensions per row, categorical otherwise."""
    array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if array.dtype == np.uint8 and array.ndim >= 3:
        return IMAGE
    if array.dtype.kind in "fiub":
        return NUMERIC
    return CATEGORICAL


@dataclass
class StatisticsAccumulator:
    """Statistics of several features; `kinds` fixes each feature's kind (else inferred from its first batch)."""

    kinds: dict[str, str] = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    rows: int = 0
    seed: int | None = None

    def add(self, columns: Mapping[str, object], rows: int | None = None) -> None:
        """One batch: {feature: values, one per row}. A feature absent from the batch counts as missing."""
        lengths = {name: len(values) for name, values in columns.items()}
        n = rows if rows is not None else (max(lengths.values()) if lengths else 0)
        for name, length in lengths.items():
            if length != n:
                raise StatisticsError(f"feature {name}: {length} values for {n} rows")
        for name in set(self.kinds) | set(columns):
            acc = self._accumulator(name, columns.get(name))
            if name in columns:
                acc.add(columns[name])
            else:
                acc.missing += n
        self.rows += n

    def _accumulator(self, name: str, values):
        acc = self.features.get(name)
        if acc is None:
            kind = self.kinds.get(name) or infer_kind(values)
            if kind not in ACCUMULATORS:
                raise StatisticsError(f"feature {name}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
            self.kinds[name] = kind
            acc = self.features[name] = (NumericAccumulator(seed=self.seed) if kind == NUMERIC
                                         else ACCUMULATORS[kind]())
        return acc

    def merge(self, other: StatisticsAccumulator) -> StatisticsAccumulator:
        for name, acc in other.features.items():
            mine = self.features.get(name)
            if mine is None:
                self.features[name] = acc
                self.kinds[name] = acc.kind
            elif mine.kind != acc.kind:
                raise StatisticsError(f"feature {name}: cannot merge {mine.kind} with {acc.kind} statistics")
            else:
                mine.merge(acc)
        self.rows += other.rows
        return self

    def to_json(self, bins: int = QUANTILE_BINS, reference: dict | None = None, **info) -> dict:
        """The statistics as a JSON-ready dict; with `reference` (training statistics), numeric features
        also carry their counts in the reference's bins (what drift compares)."""
        ref = (reference or {}).get("features", {})
        for name in self.kinds:  # a feature never seen still gets its (empty) statistics
            self._accumulator(name, None)
        return {
            "format": FORMAT,
            **info,
            "rows": self.rows,
            "features": {name: acc.to_json(bins, ref.get(name)) for name, acc in sorted(self.features.items())},
        }


def as_column(values: list, kind: str, shape: list[int] | None = None) -> object:
    """Loosely typed served values (numpy scalars and arrays, bytes, str, floats; None = missing) as
    the column a feature of `kind` takes. `shape`: the training images' shape, which raw image bytes
    (a tf.Example's) take when their size matches."""
    if kind == NUMERIC:
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if isinstance(v, np.ndarray):
                v = v.reshape(-1)[0] if v.size == 1 else None
            if isinstance(v, bytes | str):
                try:
                    v = float(v)
                except ValueError:
                    v = None
            if isinstance(v, int | float | np.number) and not isinstance(v, bool):
                out[i] = float(v)
        return out
    if kind == CATEGORICAL:
        column = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if isinstance(v, np.ndarray):
                v = v.reshape(-1)[0] if v.size == 1 else None
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            column[i] = None if v is None else str(v)
        return column
    if kind == IMAGE:
        size = math.prod(shape) if shape else None
        return [v if v is None else np.frombuffer(v, np.uint8).reshape(shape) if isinstance(v, bytes) and
                len(v) == size else v if isinstance(v, bytes) else np.asarray(v) for v in values]
    raise StatisticsError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")


def compute(columns: Mapping[str, object], kinds: Mapping[str, str] | None = None,
            reference: dict | None = None, seed: int | None = 0, **info) -> dict:
    """Statistics of one set of columns ({feature: values per row}) as a JSON-ready dict."""
    acc = StatisticsAccumulator(kinds=dict(kinds or {}), seed=seed)
    acc.add(columns)
    return acc.to_json(reference=reference, **info)


def save(stats: dict, path: str) -> str:
    """Write statistics JSON to `path` (a temporary name renamed when complete)."""
    temp = f"{path}.partial"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(stats, handle, indent=1, allow_nan=False)
        handle.write("\n")
    os.replace(temp, path)
    return path


def load(path: str) -> dict:
    """Statistics JSON from a file, or from a pipeline output folder (its `train_statistics.json`)."""
    if os.path.isdir(path):
        path = os.path.join(path, STATISTICS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            stats = json.load(handle)
    except FileNotFoundError:
        raise StatisticsError(f"{path}: no such statistics file (run `tfgate pipeline` to write it)") from None
    except (OSError, ValueError) as err:
        raise StatisticsError(f"{path}: not a statistics file ({err})") from None
    if not isinstance(stats, dict) or stats.get("format") != FORMAT:
        raise StatisticsError(f"{path}: not a tfgate statistics file (expected format {FORMAT})")
    return stats


# ---------------------------------------------------------------------------------------------
# Distances


def jensen_shannon(p, q) -> float:
    """Jensen–Shannon distance (the square root of the divergence, base 2: 0 same, 1 disjoint) of two
    histograms given as counts; each is normalized first."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise StatisticsError(f"histograms of different sizes: {p.size} and {q.size}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise StatisticsError("Jensen–Shannon distance of an empty histogram")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def l_infinity(p: Mapping[str, float], q: Mapping[str, float]) -> tuple[float, str]:
    """The largest absolute difference between two frequency maps, and the value where it occurs."""
    worst, where = 0.0, ""
    for key in sorted(set(p) | set(q)):
        diff = abs(p.get(key, 0.0) - q.get(key, 0.0))
        if diff > worst:
            worst, where = diff, key
    return worst, where


def _js_rows(p: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distances between the distribution p and each row of counts in `draws`."""
    q = draws / draws.sum(axis=1, keepdims=True)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    return np.sqrt(np.maximum(0.0, (kl_p + kl_q) / 2))


def noise_floor(train_counts, served_size: int, metric: str, seed: int = 0) -> float:
    """The distance that `served_size` values drawn from the training distribution stay under with
    probability NOISE_QUANTILE (multinomial draws from the training histogram)."""
    p = np.asarray(train_counts, np.float64)
    p = p / p.sum()
    draws = np.random.default_rng(seed).multinomial(served_size, p, size=NOISE_DRAWS).astype(np.float64)
    if metric == "l_infinity":
        distances = np.abs(draws / served_size - p).max(axis=1)
    else:
        distances = _js_rows(p, draws)
    return float(np.quantile(distances, NOISE_QUANTILE))


def _with_missing(counts: list[int], missing: int) -> np.ndarray:
    return np.asarray([*counts, missing], np.float64)


def _categorical_frequencies(stats: dict) -> dict[str, float]:
    total = stats["count"]
    freq = {k: v / total for k, v in stats["counts"].items()} if total else {}
    if stats["missing"]:
        freq[MISSING_LABEL] = stats["missing"] / total
    return freq


def image_bins(counts, bins: int = IMAGE_DRIFT_BINS) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    return counts.reshape(bins, -1).sum(axis=1)


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    metric: str  # "jensen_shannon" | "l_infinity" | "" (not compared)
    distance: float | None
    threshold: float
    drifted: bool
    train_count: int
    served_count: int
    noise_floor: float | None = None
    detail: str = ""


def compare(train: dict, served: dict, thresholds: Mapping[str, float] | None = None,
            default_threshold: float = DEFAULT_THRESHOLD, min_served: int = MIN_SERVED) -> list[FeatureDrift]:
    """One row per training feature: its distance to the served statistics and whether it drifted.

    `served` must have been computed with `reference=train` (numeric bins are the training ones).
    """
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(train["features"]))
    if unknown:
        raise StatisticsError(f"threshold for unknown feature(s) {', '.join(unknown)}; the training statistics "
                              f"have {', '.join(sorted(train['features']))}")
    rows = []
    for name, t in sorted(train["features"].items()):
        threshold = float(thresholds.get(name, default_threshold))
        s = served["features"].get(name)
        served_count = s["count"] if s else 0
        row = FeatureDrift(name, t["kind"], "", None, threshold, False, t["count"], served_count)
        rows.append(row)
        if s is None or served_count == 0:
            row.detail = "not in the served requests"
            continue
        if s["kind"] != t["kind"]:
            row.detail = f"served as {s['kind']}, trained as {t['kind']}"
            row.drifted = True
            continue
        if served_count < min_served:
            row.detail = f"only {served_count} served values (fewer than {min_served}): not compared"
            continue
        if t["kind"] == NUMERIC:
            if "histogram" not in t:
                row.detail = "no training values"
                continue
            ref = s.get("reference_histogram")
            if ref is None or ref["edges"] != t["histogram"]["edges"]:
                raise StatisticsError(f"feature {name}: served statistics were not computed against these "
                                      "training statistics (compute them with reference=the training statistics)")
            row.metric = "jensen_shannon"
            train_hist = _with_missing(t["histogram"]["counts"], t["missing"])
            row.distance = jensen_shannon(train_hist, _with_missing(ref["counts"], s["missing"]))
            row.noise_floor = noise_floor(train_hist, served_count, row.metric)
            if s.get("mean") is not None and t.get("mean") is not None:
                row.detail = f"mean {t['mean']:.4g} -> {s['mean']:.4g}"
            before, after = f"{t['missing_rate']:.1%}", f"{s['missing_rate']:.1%}"
            if before != after:
                row.detail += f"; missing {before} -> {after}"
        elif t["kind"] == CATEGORICAL:
            row.metric = "l_infinity"
            tf, sf = _categorical_frequencies(t), _categorical_frequencies(s)
            row.distance, where = l_infinity(tf, sf)
            row.noise_floor = noise_floor(list(tf.values()), served_count, row.metric)
            unseen = {k: v for k, v in sf.items() if k not in tf}
            parts = []
            if where:
                parts.append(f"largest change: {where} {tf.get(where, 0.0):.1%} -> {sf.get(where, 0.0):.1%}")
            if unseen:
                shown = ", ".join(f"{k} ({v:.1%})" for k, v in sorted(unseen.items(), key=lambda kv: -kv[1])[:3])
                parts.append(f"unseen in training: {shown}")
            row.detail = "; ".join(parts)
        else:
            row.metric = "jensen_shannon"
            if t.get("shape") and s.get("shape") and t["shape"] != s["shape"]:
                row.detail = f"served images of shape {s['shape']}, trained on {t['shape']}"
                row.drifted = True
                continue
            train_hist = image_bins(t["histogram"]["counts"])
            row.distance = jensen_shannon(train_hist, image_bins(s["histogram"]["counts"]))
            # one pixel per image: pixels of one image are not independent draws, so the images are
            # the sample (a cautious floor)
            row.noise_floor = noise_floor(train_hist, s["present"], row.metric)
            row.detail = f"mean pixel {t['mean']:.1f} -> {s['mean']:.1f}"
        row.drifted = row.distance > threshold and row.distance > row.noise_floor
    return rows


def drift_table(rows: Iterable[FeatureDrift]) -> list[dict]:
    return [asdict(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Plots


def plot(row: FeatureDrift, train: dict, served: dict, path: str) -> str:
    """A PNG comparing the training and served distributions of one feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, s = train["features"][row.feature], served["features"][row.feature]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        if row.kind == NUMERIC:
            edges = t["histogram"]["edges"]
            labels = [f"≤{edges[0]:.3g}"] + [f"{a:.3g}–{b:.3g}" for a, b in zip(edges, edges[1:], strict=False)]
            labels += [f">{edges[-1]:.3g}", MISSING_LABEL] if edges else ["all", MISSING_LABEL]
            p = _with_missing(t["histogram"]["counts"], t["missing"])
            q = _with_missing(s["reference_histogram"]["counts"], s["missing"])
            _bars(ax, labels, p / p.sum(), q / q.sum())
            ax.set_xlabel("training quantile bins")
        elif row.kind == CATEGORICAL:
            tf, sf = _categorical_frequencies(t), _categorical_frequencies(s)
            keys = sorted(set(tf) | set(sf), key=lambda k: -max(tf.get(k, 0.0), sf.get(k, 0.0)))[:20]
            _bars(ax, keys, np.array([tf.get(k, 0.0) for k in keys]), np.array([sf.get(k, 0.0) for k in keys]))
        else:
            p, q = image_bins(t["histogram"]["counts"]), image_bins(s["histogram"]["counts"])
            width = IMAGE_LEVELS // IMAGE_DRIFT_BINS
            x = np.arange(IMAGE_DRIFT_BINS) * width
            ax.step(x, p / p.sum(), where="post", label="training")
            ax.step(x, q / q.sum(), where="post", label="served")
            ax.set_xlabel("pixel intensity")
            ax.legend()
        ax.set_ylabel("share")
        metric = "Jensen–Shannon" if row.metric == "jensen_shannon" else "L-infinity"
        ax.set_title(f"{row.feature}: {metric} {row.distance:.3f} (threshold {row.threshold:g})"
                     if row.distance is not None else row.feature)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _bars(ax, labels, train_share, served_share) -> None:
    x = np.arange(len(labels))
    ax.bar(x - 0.2, train_share, 0.4, label="training")
    ax.bar(x + 0.2, served_share, 0.4, label="served")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.legend()
