"""A seeded run repeats exactly, augmentation included; another seed does not."""

from __future__ import annotations

import numpy as np
import tensorflow_transform as tft

from tfgate.pipeline import datasets, fashion
from tfgate.pipeline.training import data, train


def _batches(data_dir, seed, epochs=2):
    """The first two augmented training batches of each of `epochs` passes (one iterator per pass, as fit())."""
    spec = tft.TFTransformOutput(str(data_dir)).transformed_feature_spec()
    ds = data.make_dataset(
        str(data_dir), "train", spec, lambda f: f[fashion.IMAGE_XF], fashion.LABEL_XF, 32,
        shuffle=True, seed=seed, augment=datasets.task("fashion").augmentation(),
    )  # fmt: skip
    return [[(x.numpy(), y.numpy()) for x, y in ds.take(2)] for _ in range(epochs)]


def test_augmented_input_repeats_with_its_seed(fashion_pipeline_dir):
    first, again, other = (_batches(fashion_pipeline_dir, s) for s in (11, 11, 12))
    for epoch_a, epoch_b in zip(first, again, strict=True):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    # Each pass draws new shifts and flips (and a new order); another seed draws others.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    # Augmented images keep their shape and pixel range.
    images = first[0][0][0]
    assert images.shape == (32, 28, 28) and images.min() >= 0.0 and images.max() <= 1.0


def test_seeded_fashion_run_repeats(fashion_pipeline_dir, tmp_path):
    """Two short default-settings runs (cosine schedule, AdamW, augmentation) with one seed: identical."""
    runs = [
        train("fashion", str(fashion_pipeline_dir), str(tmp_path / name), epochs=1, steps_per_epoch=4, seed=5)
        for name in ("a", "b")
    ]
    a, b = runs
    assert a.metrics["training"]["augmentation"] and "cosine" in a.metrics["training"]["schedule"]
    assert a.history == b.history
    assert a.metrics["test"] == b.metrics["test"]
    for mine, theirs in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
