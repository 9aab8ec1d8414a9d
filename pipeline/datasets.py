"""The datasets tfgate knows, each a package beside this module: `tfgate.pipeline.<name>` (raw schema,
reading and the TF Transform preprocessing_fn) and `tfgate.pipeline.<name>.task` (model, metrics, export)."""

from __future__ import annotations

NAMES = ("housing", "fashion")


def task(name: str):
    """The dataset's training task (imports Keras); KeyError names the known datasets."""
    from tfgate.pipeline.fashion.task import FASHION
    from tfgate.pipeline.housing.task import HOUSING

    found = {t.name: t for t in (HOUSING, FASHION)}
    if name not in found:
        raise KeyError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    return found[name]
