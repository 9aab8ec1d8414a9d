"""The training split's statistics computed in Beam (pipeline/statistics_beam.py) equal the same
statistics computed in one pass, on real TFXIO RecordBatches of the bundled data."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest

from tests.conftest import HOUSING_CSV
from tfgate.pipeline import beam_pipeline, statistics_beam
from tfgate.pipeline import statistics as st

from .helpers import fashion_images, housing_columns


def test_housing_statistics_from_record_batches(tmp_path):
    lines = HOUSING_CSV.read_text().splitlines()[:601]
    fields = lines[5].split(",")
    fields[4] = ""  # one total_bedrooms missing, as in the full data
    lines[5] = ",".join(fields)
    source = tmp_path / "h.csv"
    source.write_text("\n".join(lines) + "\n")
    files = beam_pipeline.check_housing_input(str(source))
    with beam.Pipeline(options=beam_pipeline.pipeline_options([])) as p:
        batches, _, _, _ = beam_pipeline.housing_sources(p, files)
        all_rows = (batches["train"], batches["eval"], batches["test"]) | beam.Flatten()
        _ = all_rows | statistics_beam.WriteTrainStatistics("housing", str(tmp_path))
    written = st.load(str(tmp_path))
    rows = [r.split(",") for r in lines[1:]]
    columns = housing_columns(rows)
    for name, values in columns.items():  # TFXIO reads the CSV as float32
        if values.dtype == np.float64:
            columns[name] = values.astype(np.float32).astype(np.float64)
    expected = st.compute(columns, dataset="housing", split="train")
    assert written["rows"] == 600 and written["features"].keys() == expected["features"].keys()
    for name, stats in expected["features"].items():
        got = written["features"][name]
        for key in stats:
            if isinstance(stats[key], float):  # sums in another order
                assert got[key] == pytest.approx(stats[key], rel=1e-9), (name, key)
            else:
                assert got[key] == stats[key], (name, key)
    assert written["features"]["total_bedrooms"]["missing"] >= 1


def test_image_statistics_from_raw_bytes(tmp_path):
    import pyarrow as pa

    images = fashion_images("t10k")[:50]
    batch = pa.RecordBatch.from_arrays(
        [pa.array([[i.tobytes()] for i in images], pa.large_list(pa.large_binary())),
         pa.array([[1]] * 50, pa.large_list(pa.int64()))], ["image", "label"])
    fn = statistics_beam.StatisticsCombineFn("fashion")
    acc = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), batch.slice(0, 20)),
                                 fn.add_input(fn.create_accumulator(), batch.slice(20))])
    stats = fn.extract_output(acc)
    assert list(stats["features"]) == ["image"]  # the label is not a served feature
    expected = st.compute({"image": images}, kinds={"image": st.IMAGE})["features"]["image"]
    assert stats["features"]["image"] == expected and expected["shape"] == [28, 28]


def test_empty_split_still_names_every_feature():
    fn = statistics_beam.StatisticsCombineFn("housing")
    stats = fn.extract_output(fn.create_accumulator())
    assert len(stats["features"]) == 9 and all(f["count"] == 0 for f in stats["features"].values())


@pytest.mark.parametrize("dataset", ["housing", "fashion"])
def test_the_pipeline_writes_train_statistics_beside_stats_json(dataset, request):
    out = request.getfixturevalue(f"{dataset}_pipeline_dir")
    counts = json.loads((out / "stats.json").read_text())
    stats = st.load(str(out))
    assert (stats["dataset"], stats["split"], stats["rows"]) == (dataset, "train", counts["splits"]["train"])
    assert set(stats["features"]) == set(statistics_beam.FEATURES[dataset])
    for feature in stats["features"].values():
        assert feature["count"] == counts["splits"]["train"]
    if dataset == "fashion":
        assert stats["features"]["image"]["shape"] == [28, 28]
    else:
        assert 0 < stats["features"]["total_bedrooms"]["missing"] < 0.02 * stats["rows"]
