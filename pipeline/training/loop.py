"""A plain distributed training loop, used for --strategy multi-worker.

Keras 3.15's fit() cannot run under MultiWorkerMirroredStrategy with more than one worker: it
reduces nested batches and scalar logs with strategy.reduce(..., axis=0), which the collective
all-reduce rejects. This loop does the same job with strategy.run and the same compiled model,
optimizer (its learning-rate schedule included), early stopping on the eval split and TensorBoard scalars.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf


def fit(
    net, dist, train_ds, eval_ds, *, task, batch_size, epochs, patience, logdir, on_epoch=None,
    steps_per_epoch=None,
):  # fmt: skip
    """Train `net` (compiled inside dist.scope(), its learning-rate schedule included); return a
    Keras-style history dict."""
    metric = task.metric

    def sums(y, pred):
        return task.loss(y, pred), task.batch_hits(y, pred)  # the compiled loss, per example

    def train_replica(x, y):
        with tf.GradientTape() as tape:
            pred = net(x, training=True)
            losses, correct = sums(y, pred)
            # Mean over the global batch (the optimizer sums gradients across replicas); a constant
            # divisor, because a worker's share of the last batch may be empty.
            loss = tf.reduce_sum(losses) / float(batch_size)
        grads = tape.gradient(loss, net.trainable_variables)
        net.optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return tf.reduce_sum(losses), correct, tf.cast(tf.shape(losses)[0], tf.float32)

    def eval_replica(x, y):
        losses, correct = sums(y, net(x, training=False))
        return tf.reduce_sum(losses), correct, tf.cast(tf.shape(losses)[0], tf.float32)

    def summed(fn):
        @tf.function
        def step(x, y):
            return [dist.reduce("SUM", v, axis=None) for v in dist.run(fn, args=(x, y))]

        return step

    train_step, eval_step = summed(train_replica), summed(eval_replica)

    def run_epoch(step, data, limit=None):
        totals = np.zeros(3)
        for i, (x, y) in enumerate(data):
            if limit is not None and i >= limit:
                break
            totals += [float(v) for v in step(x, y)]
        loss = totals[0] / max(totals[2], 1.0)
        score = float(np.sqrt(loss)) if metric == "rmse" else totals[1] / max(totals[2], 1.0)
        return float(loss), float(score)

    dist_train = dist.experimental_distribute_dataset(train_ds)
    dist_eval = dist.experimental_distribute_dataset(eval_ds)
    train_iter = iter(dist_train) if steps_per_epoch else None
    writer = tf.summary.create_file_writer(logdir)
    history: dict[str, list[float]] = {"loss": [], metric: [], "val_loss": [], f"val_{metric}": []}
    best, best_weights, waited = np.inf, None, 0
    for epoch in range(epochs):
        started = time.monotonic()
        loss, score = run_epoch(train_step, train_iter if steps_per_epoch else dist_train, steps_per_epoch)
        val_loss, val_score = run_epoch(eval_step, dist_eval)
        logs = {"loss": loss, metric: score, "val_loss": val_loss, f"val_{metric}": val_score}
        for key, value in logs.items():
            history[key].append(value)
        with writer.as_default():
            for key, value in logs.items():
                tf.summary.scalar(f"epoch_{key}", value, step=epoch)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, logs, time.monotonic() - started)
        if val_loss < best:
            best, best_weights, waited = val_loss, net.get_weights(), 0
            continue
        waited += 1
        if waited >= patience:
            break
    writer.close()
    if best_weights is not None:
        net.set_weights(best_weights)
    return history
