"""`train()`: pipeline output → a trained Keras model → an evaluated, versioned SavedModel."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tfgate.pipeline import datasets
from tfgate.pipeline.training import data, distribute, evaluate, models
from tfgate.pipeline.training.errors import TrainingInputError

# The learning rate warms up linearly over the first WARMUP_FRACTION of the steps (Task.Defaults).
WARMUP_FRACTION = 0.05
EpochCallback = Callable[[int, int, dict, float], None]


@dataclass
class TrainResult:
    dataset: str
    version: int
    path: str | None  # the published version directory (None on a non-chief worker)
    metrics: dict
    history: dict
    seconds: float
    model: object = field(default=None, repr=False)  # the trained Keras model


def task_of(dataset: str):
    try:
        return datasets.task(dataset)
    except KeyError as err:
        raise TrainingInputError(err.args[0]) from None


def _validate(task, kind, strategy, epochs, batch_size, steps_per_epoch, version, data_dir, model_base_path):
    if kind not in task.model_kinds:
        raise TrainingInputError(
            f"--model {kind} does not apply to {task.name}; choose {' or '.join(task.model_kinds)}"
        )
    if strategy not in distribute.STRATEGIES:
        raise TrainingInputError(f"unknown strategy {strategy!r}; expected {', '.join(distribute.STRATEGIES)}")
    if epochs < 1 or batch_size < 1 or (steps_per_epoch is not None and steps_per_epoch < 1):
        raise TrainingInputError("--epochs, --batch-size and --steps-per-epoch must be at least 1")
    if version is not None and version < 1:
        raise TrainingInputError(f"--version must be a positive integer, got {version}")
    data.check_layout(data_dir)
    if os.path.exists(model_base_path) and not os.path.isdir(model_base_path):
        raise TrainingInputError(f"--model-base-path {model_base_path} exists and is not a directory")
    if version is not None and os.path.exists(os.path.join(model_base_path, str(version))):
        raise TrainingInputError(f"version {version} already exists in {model_base_path}")
    if strategy == "multi-worker":
        try:
            distribute.read_tf_config()
        except ValueError as err:
            raise TrainingInputError(str(err)) from err


def _load_transform_output(task, data_dir: str):
    import tensorflow_transform as tft

    try:
        tft_output = tft.TFTransformOutput(data_dir)
        spec = tft_output.transformed_feature_spec()
        tft_output.raw_feature_spec()
    except Exception as err:  # unreadable metadata: report it as bad input, not a crash
        raise TrainingInputError(f"{data_dir}: cannot read the transform output ({err})") from err
    missing = [name for name in task.required_features if name not in spec]
    if missing:
        raise TrainingInputError(
            f"{data_dir} is not {task.name} pipeline output (transformed features lack {', '.join(missing)})"
        )
    return tft_output, spec


def default_logdir(model_base_path: str, version: int) -> str:
    """TensorBoard logs beside the model base path, so the base path holds only versions."""
    base = os.path.abspath(model_base_path)
    return os.path.join(os.path.dirname(base), "tensorboard", os.path.basename(base), str(version))


def _learning_rate(peak: float, epochs: int, steps_per_epoch: int):
    """Warm-up, then cosine decay, over the whole run (so a shorter --epochs decays sooner)."""
    import keras

    total = max(1, epochs * steps_per_epoch)
    warmup = int(total * WARMUP_FRACTION)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak, total - warmup, warmup_target=peak if warmup else None, warmup_steps=warmup,
    )  # fmt: skip


def _train_steps(data_dir: str, batch_size: int, steps_per_epoch: int | None) -> int:
    if steps_per_epoch:
        return steps_per_epoch
    rows = data.split_sizes(data_dir).get("train", 0)
    return max(1, -(-rows // batch_size))


def _callbacks(patience: int, logdir: str, on_epoch: EpochCallback | None, epochs: int):
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, dict(logs or {}), time.monotonic() - self._start)

    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.TensorBoard(log_dir=logdir, write_graph=False, profile_batch=0),
        Progress(),
    ]


def _predict(model, inputs: dict, batch_size: int = 1024) -> np.ndarray:
    """Plain model calls, outside any strategy (no collectives: only the chief evaluates)."""
    import tensorflow as tf

    count = len(next(iter(inputs.values())))

    @tf.function(autograph=False)
    def call(x):
        return model(x, training=False)

    parts = []
    for start in range(0, count, batch_size):
        parts.append(call({k: v[start : start + batch_size] for k, v in inputs.items()}).numpy())
    return np.concatenate(parts)


def evaluate_test(task, model, data_dir: str, spec: dict) -> tuple[dict, dict]:
    """Test-split metrics from the Keras model on the transformed rows, and arrays for the plots."""
    features = data.load_split(data_dir, "test", spec)
    labels = features.pop(task.label_key)
    inputs = {k: v.numpy() for k, v in task.to_model_inputs(features).items()}
    return task.test_metrics(_predict(model, inputs), labels, features)


def train(
    dataset: str,
    data_dir: str,
    model_base_path: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    model: str | None = None,
    strategy: str = "default",
    version: int | None = None,
    patience: int | None = None,
    steps_per_epoch: int | None = None,
    logdir: str | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train `dataset` on pipeline output `data_dir` and publish `model_base_path/<version>/`.

    Raises TrainingInputError (before writing anything) for a bad data directory, option or version.
    """
    started = time.monotonic()
    task = task_of(dataset)
    defaults = task.defaults
    kind = model or task.default_model
    epochs = defaults.epochs if epochs is None else epochs
    batch_size = defaults.batch_size if batch_size is None else batch_size
    patience = defaults.patience if patience is None else patience
    _validate(task, kind, strategy, epochs, batch_size, steps_per_epoch, version, data_dir, model_base_path)
    tft_output, spec = _load_transform_output(task, data_dir)

    import keras

    # MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    dist = distribute.make_strategy(strategy)
    chief = distribute.is_chief(strategy)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    version = version if version is not None else export_next_version(model_base_path)
    scratch = None if chief else tempfile.mkdtemp(prefix="tfgate-worker-")
    logdir = logdir or default_logdir(model_base_path, version)
    if not chief:
        logdir = os.path.join(scratch, "logs")

    augment = task.augmentation() if defaults.augment else None
    train_ds = data.make_dataset(
        data_dir, "train", spec, task.to_model_inputs, task.label_key, batch_size, shuffle=True, seed=seed,
        augment=augment,
    )  # fmt: skip
    if steps_per_epoch:
        train_ds = train_ds.repeat()
    eval_ds = data.make_dataset(data_dir, "eval", spec, task.to_model_inputs, task.label_key, batch_size, shuffle=False)
    with dist.scope():
        steps = _train_steps(data_dir, batch_size, steps_per_epoch)
        learning_rate = _learning_rate(defaults.learning_rate, epochs, steps)
        net = models.build(task, kind, tft_output, learning_rate=learning_rate, weight_decay=defaults.weight_decay)

    fit_started = time.monotonic()
    if strategy == "multi-worker":
        from tfgate.pipeline.training import loop

        history = loop.fit(
            net, dist, train_ds, eval_ds, task=task, batch_size=batch_size, epochs=epochs, patience=patience,
            logdir=logdir, on_epoch=on_epoch, steps_per_epoch=steps_per_epoch,
        )  # fmt: skip
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ran out of data.*")
            warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
            fit = net.fit(
                train_ds,
                validation_data=eval_ds,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                callbacks=_callbacks(patience, logdir, on_epoch, epochs),
                verbose=0,
            )
        history = {k: [float(v) for v in values] for k, values in fit.history.items() if k != "learning_rate"}
    fit_seconds = time.monotonic() - fit_started
    val_loss = history.get("val_loss", [])
    training = {
        "model": kind,
        "epochs_requested": epochs,
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else None,
        "best_val_loss": float(min(val_loss)) if val_loss else None,
        "batch_size": batch_size,
        "learning_rate": defaults.learning_rate,
        "schedule": "warm-up + cosine decay",
        "weight_decay": defaults.weight_decay,
        "augmentation": augment is not None,
        "seed": seed,
        "strategy": strategy,
        "replicas": int(dist.num_replicas_in_sync),
        "fit_seconds": round(fit_seconds, 2),
        "tensorboard_logdir": logdir,
    }

    from tfgate.pipeline.training import export

    if not chief:
        # Workers take part in saving too (collective reads), but into a folder that is thrown away.
        try:
            export.save(task, net, tft_output, os.path.join(scratch, "model"), [])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        metrics = {"dataset": dataset, "training": training}
        return TrainResult(dataset, version, None, metrics, history, time.monotonic() - started, net)

    test_metrics, arrays = evaluate_test(task, net, data_dir, spec)
    metrics = {"dataset": dataset, "version": version, "test": test_metrics, "training": training}
    warmup = task.warmup_logs(dataset, arrays)

    os.makedirs(model_base_path, exist_ok=True)
    temp_dir = export.temp_dir_for(model_base_path, version)
    try:
        export.save(task, net, tft_output, temp_dir, warmup)
        training["seconds"] = round(time.monotonic() - started, 2)
        evaluate.write_report(task, os.path.join(temp_dir, export.ASSETS_EXTRA), metrics, history, arrays)
        path = export.publish(temp_dir, model_base_path, version)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return TrainResult(dataset, version, path, metrics, history, time.monotonic() - started, net)


def export_next_version(model_base_path: str) -> int:
    from tfgate.pipeline.training import export

    return export.next_version(model_base_path)
