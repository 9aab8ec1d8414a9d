"""The training split's per-feature statistics, computed in the Beam pipeline (pipeline/statistics.py
does the arithmetic) and written beside stats.json as `train_statistics.json`: what `tfgate drift`
compares served requests with.

Only the raw features a model is served with are described (never the label): housing's 8 numeric
columns and `ocean_proximity`, fashion's `image` (28x28 pixels).
"""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from tfgate.pipeline import fashion, housing
from tfgate.pipeline import statistics as st

STATISTICS_FILE = st.STATISTICS_FILE  # OUTPUT_DIR/train_statistics.json
FEATURES = {
    "housing": {**{c: st.NUMERIC for c in housing.NUMERIC_COLUMNS}, housing.CATEGORICAL_COLUMN: st.CATEGORICAL},
    "fashion": {fashion.IMAGE: st.IMAGE},
}
IMAGE_SHAPES = {"fashion": {fashion.IMAGE: [fashion.HEIGHT, fashion.WIDTH]}}


def batch_columns(batch: pa.RecordBatch, kinds: dict[str, str], shapes: dict[str, list[int]] | None = None) -> dict:
    """A TFXIO RecordBatch (one list per row and feature; an empty list is a missing value) as
    statistics columns. Features absent from the batch are left out (counted as missing)."""
    shapes = shapes or {}
    out = {}
    n = batch.num_rows
    for name, kind in kinds.items():
        index = batch.schema.get_field_index(name)
        if index < 0:
            continue
        column = batch.column(index)
        lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
        if (lengths > 1).any():
            raise st.StatisticsError(f"feature {name}: several values in one row")
        present = lengths == 1
        flat = pc.list_flatten(column)
        if kind == st.NUMERIC:
            values = np.full(n, np.nan)
            values[present] = flat.to_numpy(zero_copy_only=False)
            out[name] = values
        else:
            values = [None] * n
            for i, value in zip(np.flatnonzero(present), flat.to_pylist(), strict=True):
                values[i] = value
            out[name] = st.as_column(values, kind, shapes.get(name))
    return out


class StatisticsCombineFn(beam.CombineFn):
    def __init__(self, dataset: str):
        self.dataset = dataset
        self.kinds = FEATURES[dataset]
        self.shapes = IMAGE_SHAPES.get(dataset, {})

    def create_accumulator(self) -> st.StatisticsAccumulator:
        return st.StatisticsAccumulator(kinds=dict(self.kinds))

    def add_input(self, acc: st.StatisticsAccumulator, batch: pa.RecordBatch) -> st.StatisticsAccumulator:
        acc.add(batch_columns(batch, self.kinds, self.shapes), rows=batch.num_rows)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: st.StatisticsAccumulator) -> dict:
        return acc.to_json(dataset=self.dataset, split="train")


def _write(stats: dict, path: str) -> str:
    with FileSystems.create(path) as handle:
        handle.write((json.dumps(stats, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return path


class WriteTrainStatistics(beam.PTransform):
    """PCollection[RecordBatch] of the train split -> OUTPUT_DIR/train_statistics.json."""

    def __init__(self, dataset: str, output_dir: str):
        super().__init__()
        self.dataset = dataset
        self.path = FileSystems.join(output_dir, st.STATISTICS_FILE)

    def expand(self, batches):
        return (
            batches
            | "Combine" >> beam.CombineGlobally(StatisticsCombineFn(self.dataset))
            | "Write" >> beam.Map(_write, self.path)
        )
