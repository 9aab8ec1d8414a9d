"""Reading the pipeline's transformed TFRecords with tf.data, and checking a data directory first."""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from tfgate.pipeline.training.errors import TrainingInputError

SPLITS = ("train", "eval", "test")
PIPELINE_SUBDIRS = ("metadata", "transform_fn", "transformed_metadata")
SHUFFLE_BUFFER = 20_000  # both bundled training sets fit whole, so each epoch is a full shuffle


def split_pattern(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, "tfrecords", f"{split}-*.tfrecord.gz")


def check_layout(data_dir: str) -> None:
    """Cheap checks with no TensorFlow graph work: the folder looks like pipeline output with all splits."""
    if not tf.io.gfile.isdir(data_dir):
        raise TrainingInputError(f"data directory not found: {data_dir}")
    for sub in PIPELINE_SUBDIRS:
        if not tf.io.gfile.isdir(os.path.join(data_dir, sub)):
            raise TrainingInputError(f"{data_dir} is not pipeline output (no {sub}/); run `tfgate pipeline` first")
    for split in SPLITS:
        if not tf.io.gfile.glob(split_pattern(data_dir, split)):
            raise TrainingInputError(f"missing {split} split: nothing matches {split_pattern(data_dir, split)}")
    check_row_accounting(data_dir)


def check_row_accounting(data_dir: str) -> None:
    """The pipeline writes stats.json last; train only on output whose rows added up."""
    path = os.path.join(data_dir, "stats.json")
    if not tf.io.gfile.exists(path):
        raise TrainingInputError(f"{data_dir} has no stats.json: the pipeline run did not finish; rerun it")
    try:
        with tf.io.gfile.GFile(path) as handle:
            stats = json.load(handle)
        rows, rejected = int(stats["input_rows"]), int(stats["rejected"])
        written = sum(int(stats["splits"][split]) for split in SPLITS)
        accounted = stats["rows_accounted"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainingInputError(f"{path} is not the pipeline's stats ({type(err).__name__}: {err})") from err
    if accounted is not True or written + rejected != rows:
        raise TrainingInputError(
            f"{path}: the pipeline's rows did not add up ({rows} input rows, {written} written + {rejected} "
            f"rejected); rerun tfgate pipeline before training"
        )


def split_sizes(data_dir: str) -> dict[str, int]:
    """Rows per split from the pipeline's stats.json (empty when absent)."""
    path = os.path.join(data_dir, "stats.json")
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return dict(json.load(handle).get("splits", {}))


def make_dataset(
    data_dir: str,
    split: str,
    feature_spec: dict,
    to_model_inputs,
    label_key: str,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
    shard_by_data: bool = True,
    augment=None,
) -> tf.data.Dataset:
    """(model inputs, label) batches from GZIP tf.Examples: parallel reads, batched parsing, prefetch.

    `augment(features, seed)` (training only) rewrites a parsed batch of transformed features; `seed`
    is a stateless-RNG seed, new for every batch and epoch, drawn from `seed` (so a seeded run repeats).
    """
    files = sorted(tf.io.gfile.glob(split_pattern(data_dir, split)))
    deterministic = seed is not None or not shuffle
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP", buffer_size=1 << 20),
        cycle_length=max(1, min(len(files), 4)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    # Batch first, then parse the whole batch in one parse_example call (much cheaper per row).
    ds = ds.batch(batch_size)

    def parse(serialized, batch_seed=None):
        features = tf.io.parse_example(serialized, feature_spec)
        label = features.pop(label_key)
        if augment is not None:
            features = augment(features, batch_seed)
        return to_model_inputs(features), label

    if augment is not None:
        # One int64 per batch, a different stream each epoch (a new iterator per epoch).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    options = tf.data.Options()
    if shard_by_data:
        # Splits are a handful of files, fewer than workers can need: shard by record instead.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def shift_and_flip(key: str, max_shift: int = 2):
    """An `augment` for [N, H, W] images under `key`: each image moved by up to `max_shift` pixels
    along each axis (zero fill) and mirrored left-right with probability 1/2."""

    def augment(features: dict, seed: tf.Tensor) -> dict:
        images = features[key]
        count, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        seeds = tf.random.experimental.stateless_split(seed, 3)
        span = 2 * max_shift + 1
        dy = tf.random.stateless_uniform([count], seeds[0], 0, span, dtype=tf.int32)
        dx = tf.random.stateless_uniform([count], seeds[1], 0, span, dtype=tf.int32)
        padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift]])
        # A per-image crop of the padded image: gather its rows, then its columns.
        rows = dy[:, None] + tf.range(height)[None, :]
        cols = dx[:, None] + tf.range(width)[None, :]
        moved = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        mirror = tf.random.stateless_uniform([count], seeds[2]) < 0.5
        moved = tf.where(mirror[:, None, None], tf.reverse(moved, [2]), moved)
        return {**features, key: moved}

    return augment


def load_split(data_dir: str, split: str, feature_spec: dict) -> dict:
    """A whole split as numpy arrays of transformed features (for evaluation, tests and the benchmark)."""
    files = sorted(tf.io.gfile.glob(split_pattern(data_dir, split)))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    ds = ds.map(lambda s: tf.io.parse_example(s, feature_spec))
    parts: dict[str, list] = {}
    for batch in ds:
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}
