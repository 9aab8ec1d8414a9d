"""tf.distribute strategies by name; multi-worker reads its cluster from TF_CONFIG."""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


def read_tf_config() -> dict:
    """The parsed TF_CONFIG, or a ValueError saying what is wrong with it."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise ValueError("--strategy multi-worker needs TF_CONFIG (cluster and task) in the environment")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        _ = cluster[task_type][index]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise ValueError(f"TF_CONFIG is not a valid cluster/task description: {err}") from err
    return config


def is_chief(strategy_name: str) -> bool:
    """Only the chief writes the model version; other workers export to a scratch folder."""
    if strategy_name != "multi-worker":
        return True
    config = read_tf_config()
    task_type, index = config["task"]["type"], int(config["task"]["index"])
    if "chief" in config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
