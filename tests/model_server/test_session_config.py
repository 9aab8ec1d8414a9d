"""The Session every version runs in gets TF Serving's thread and GPU flags (no GPU here: the
config is what is checked; ops land on a visible GPU by TensorFlow's placement, as in TF Serving)."""

from __future__ import annotations

import numpy as np

from tests.model_server import models
from tfgate.serving.model_server import flags
from tfgate.serving.model_server.servable import Servable, session_config
from tfgate.serving.model_server.server import _session_config


def test_flags_become_the_session_config():
    opts = flags.parse(["--model_base_path=/m", "--per_process_gpu_memory_fraction=0.4",
                        "--tensorflow_intra_op_parallelism=3", "--tensorflow_session_parallelism=2"])
    config = _session_config(opts)
    assert config.gpu_options.per_process_gpu_memory_fraction == 0.4
    # The specific flag wins; session_parallelism fills the one not given.
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (3, 2)
    default = session_config()
    assert default.gpu_options.per_process_gpu_memory_fraction == 0.0  # TF chooses
    assert (default.intra_op_parallelism_threads, default.inter_op_parallelism_threads) == (0, 0)


def test_each_version_session_is_built_with_it(tmp_path):
    path = models.make_half_plus(tmp_path, 1)
    config = session_config(intra_op=1, inter_op=1, gpu_memory_fraction=0.25)
    servable = Servable("hp", 1, path, ["serve"], config)
    servable.load()
    try:
        assert servable._session._config == config
        sig = servable.signature("serving_default")
        assert servable.run(sig, {"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
    finally:
        servable.close()


def test_output_filters_fetch_what_is_asked_and_are_capped(tmp_path, monkeypatch):
    from tfgate.serving.model_server import servable as servable_module

    monkeypatch.setattr(servable_module, "MAX_CALLABLES", 2)
    servable = Servable("hp", 1, models.make_half_plus(tmp_path, 1), ["serve"])
    servable.load()
    try:
        sig = servable.signature("two_inputs")
        feed = {"a": np.array([3.0], np.float32), "b": np.array([1.0], np.float32)}
        assert servable.run(sig, feed, ["diff"]) == {"diff": [2.0]}
        assert servable.run(sig, feed, ["sum"]) == {"sum": [4.0]}  # a second callable: the cap
        assert servable.run(sig, feed, ["sum", "diff"]) == {"sum": [4.0], "diff": [2.0]}  # all outputs, picked
        assert len(servable._callables) == 3
        assert servable.run(sig, feed) == {"diff": [2.0], "sum": [4.0]}
        assert len(servable._callables) == 3
    finally:
        servable.close()
