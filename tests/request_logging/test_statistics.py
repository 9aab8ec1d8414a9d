"""Per-feature statistics and drift (pipeline/statistics.py): known values, merging, JSON, and the
bundled data split as the pipeline splits it (an unchanged test split is not flagged; a changed
feature is flagged alone)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tfgate.pipeline import statistics as st

from .helpers import CATEGORICAL, fashion_images, housing_columns, housing_rows


@pytest.fixture(scope="module")
def housing():
    rows = housing_rows()
    train = st.compute(housing_columns(rows["train"]), dataset="housing", split="train")
    return train, rows


@pytest.fixture(scope="module")
def fashion():
    train_images = fashion_images("train")
    train = st.compute({"image": train_images}, kinds={"image": st.IMAGE})
    return train, fashion_images("t10k")


def _drifted(train, columns, **kw) -> list[str]:
    served = st.compute(columns, kinds={f: v["kind"] for f, v in train["features"].items()}, reference=train)
    return [r.feature for r in st.compare(train, served, **kw) if r.drifted]


# ----- distances on known inputs -------------------------------------------------------------


def test_jensen_shannon_known_values():
    assert st.jensen_shannon([1, 2, 3], [2, 4, 6]) == 0.0  # counts are normalized first
    assert st.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint, base 2
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): JSD = (log2(4/3) + (log2(2/3) + 1) / 2) / 2
    expected = math.sqrt((math.log2(4 / 3) + (math.log2(2 / 3) + 1) / 2) / 2)
    assert st.jensen_shannon([4, 0], [3, 3]) == pytest.approx(expected)
    assert expected == pytest.approx(0.5579, abs=1e-4)
    with pytest.raises(st.StatisticsError, match="different sizes"):
        st.jensen_shannon([1, 2], [1, 2, 3])


def test_l_infinity_known_values():
    assert st.l_infinity({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == (0.0, "")
    assert st.l_infinity({"a": 0.7, "b": 0.3}, {"a": 0.4, "b": 0.4, "c": 0.2}) == (pytest.approx(0.3), "a")
    assert st.l_infinity({"a": 1.0}, {"z": 1.0}) == (1.0, "a")


# ----- statistics --------------------------------------------------------------------------


def test_numeric_statistics_and_quantile_histogram():
    values = np.concatenate([np.arange(1000, dtype=np.float64), [np.nan] * 250])
    s = st.compute({"x": values})["features"]["x"]
    assert (s["kind"], s["count"], s["present"], s["missing"]) == ("numeric", 1250, 1000, 250)
    assert s["missing_rate"] == pytest.approx(0.2)
    assert s["mean"] == pytest.approx(499.5) and s["std"] == pytest.approx(np.arange(1000).std())
    assert (s["min"], s["max"]) == (0.0, 999.0)
    assert s["histogram"]["edges"] == pytest.approx([99.9 * i for i in range(1, 10)])
    assert s["histogram"]["counts"] == [100] * 10  # quantile bins: equal mass


def test_merged_batches_equal_one_pass():
    rng = np.random.default_rng(0)
    parts = [rng.normal(5, 2, 3000), rng.normal(9, 1, 500), np.array([np.nan, 1.0])]
    merged = st.StatisticsAccumulator(seed=0)
    for part in parts:
        batch = st.StatisticsAccumulator(seed=1)
        batch.add({"x": part, "c": np.array(["a"] * (len(part) - 1) + [None], dtype=object)})
        merged.merge(batch)
    whole = np.concatenate(parts)
    one = st.compute({"x": whole, "c": np.array(sum([["a"] * (len(p) - 1) + [None] for p in parts], []),
                                                 dtype=object)})
    m = merged.to_json()
    for key in ("count", "missing", "min", "max", "histogram"):
        assert m["features"]["x"][key] == one["features"]["x"][key]
    assert m["features"]["x"]["mean"] == pytest.approx(np.nanmean(whole))
    assert m["features"]["x"]["std"] == pytest.approx(np.nanstd(whole))
    assert m["features"]["c"] == one["features"]["c"]


def test_sample_bounds_memory_and_stays_uniform():
    acc = st.NumericAccumulator(sample_size=20_000, seed=3)
    for start in range(0, 100_000, 10_000):  # sorted batches: a biased sample would show
        acc.add(np.arange(start, start + 10_000, dtype=np.float64))
    assert acc.values.size == 20_000 and acc.count == 100_000
    s = acc.to_json()
    # a 20,000-value sample puts a decile within ~350 (one standard deviation) of the truth
    assert s["histogram"]["edges"] == pytest.approx([10_000 * i for i in range(1, 10)], abs=2000)
    assert sum(s["histogram"]["counts"]) == 100_000


def test_categorical_and_image_statistics():
    s = st.compute({"c": np.array(["a", "b", "a", b"a", "", None], dtype=object)})["features"]["c"]
    assert s["counts"] == {"a": 3, "b": 1} and s["missing"] == 2
    assert s["frequencies"] == {"a": 0.5, "b": pytest.approx(1 / 6)}
    images = np.zeros((2, 4, 4), np.uint8)
    images[1] = 255
    s = st.compute({"image": images})["features"]["image"]
    assert (s["kind"], s["count"], s["shape"], s["pixels"]) == ("image", 2, [4, 4], 32)
    assert s["histogram"]["counts"][0] == 16 and s["histogram"]["counts"][255] == 16
    assert s["mean"] == pytest.approx(127.5) and s["std"] == pytest.approx(127.5)
    # raw bytes (a tf.Example's image) count the same as arrays
    as_bytes = st.compute({"image": [i.tobytes() for i in images]}, kinds={"image": st.IMAGE})["features"]["image"]
    assert as_bytes["histogram"] == s["histogram"]


def test_bad_input_is_named():
    with pytest.raises(st.StatisticsError, match="feature b: 2 values for 3 rows"):
        st.compute({"a": np.zeros(3), "b": np.zeros(2)})
    with pytest.raises(st.StatisticsError, match="unknown kind 'text'"):
        st.compute({"a": np.zeros(3)}, kinds={"a": "text"})
    with pytest.raises(st.StatisticsError, match="must be finite"):
        st.compute({"a": np.array([1.0, np.inf])})


def test_json_round_trip_and_load_errors(tmp_path, housing):
    train, _ = housing
    path = st.save(train, str(tmp_path / st.STATISTICS_FILE))
    assert st.load(str(tmp_path)) == json.loads(json.dumps(train))
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(st.StatisticsError, match="no such statistics file"):
        st.load(str(tmp_path / "missing"))
    (tmp_path / "other.json").write_text('{"dataset": "housing"}')
    with pytest.raises(st.StatisticsError, match="not a tfgate statistics file"):
        st.load(str(tmp_path / "other.json"))
    assert path.endswith(st.STATISTICS_FILE)


# ----- drift on the bundled data ---------------------------------------------------------------


def test_housing_test_split_unchanged_is_not_flagged(housing):
    train, rows = housing
    assert len(rows["test"]) > 1500
    served = st.compute(housing_columns(rows["test"]), reference=train)
    table = st.compare(train, served)
    assert [r.feature for r in table if r.drifted] == []
    assert len(table) == 9 and all(r.distance is not None and r.distance < 0.1 for r in table)
    # a small random sample of it neither: its distances are larger, but within what chance gives
    picked = np.random.default_rng(5).choice(len(rows["test"]), 60, replace=False)
    small = st.compute(housing_columns([rows["test"][i] for i in picked]), reference=train)
    table = st.compare(train, small)
    assert [r.feature for r in table if r.drifted] == []
    assert any(r.distance > 0.1 for r in table)


def test_housing_median_income_times_three_flags_only_it(housing):
    train, rows = housing
    columns = housing_columns(rows["test"])
    columns["median_income"] = columns["median_income"] * 3
    assert _drifted(train, columns) == ["median_income"]
    # with a threshold above its distance it is not flagged
    assert _drifted(train, columns, thresholds={"median_income": 0.99}) == []


def test_housing_unseen_ocean_proximity_flags_only_it(housing):
    train, rows = housing
    columns = housing_columns(rows["test"])
    columns[CATEGORICAL][: len(columns[CATEGORICAL]) // 2] = "ON THE MOON"
    served = st.compute(columns, reference=train)
    table = {r.feature: r for r in st.compare(train, served)}
    assert [f for f, r in table.items() if r.drifted] == [CATEGORICAL]
    assert table[CATEGORICAL].metric == "l_infinity" and table[CATEGORICAL].distance > 0.4
    assert "unseen in training: ON THE MOON" in table[CATEGORICAL].detail


def test_missing_values_count_as_drift(housing):
    train, rows = housing
    columns = housing_columns(rows["test"])
    columns["total_bedrooms"][::2] = np.nan  # half the values missing instead of ~1%
    assert _drifted(train, columns) == ["total_bedrooms"]


def test_fashion_test_images_not_flagged_inverted_flagged(fashion):
    train, test_images = fashion
    assert _drifted(train, {"image": test_images}) == []
    assert _drifted(train, {"image": 255 - test_images}) == ["image"]
    assert _drifted(train, {"image": 255 - test_images[:40]}) == ["image"]  # few images, still far beyond chance


def test_threshold_for_unknown_feature_is_refused(housing):
    train, rows = housing
    served = st.compute(housing_columns(rows["test"][:100]), reference=train)
    with pytest.raises(st.StatisticsError, match="threshold for unknown feature"):
        st.compare(train, served, thresholds={"median_incme": 0.2})


def test_served_without_reference_bins_is_refused(housing):
    train, rows = housing
    served = st.compute(housing_columns(rows["test"][:100]))
    with pytest.raises(st.StatisticsError, match="not computed against these training statistics"):
        st.compare(train, served)


def test_plot_per_drifting_feature(tmp_path, housing, fashion):
    train, rows = housing
    columns = housing_columns(rows["test"])
    columns["median_income"] = columns["median_income"] * 3
    columns[CATEGORICAL][:] = "ON THE MOON"
    served = st.compute(columns, reference=train)
    written = [st.plot(r, train, served, str(tmp_path / f"{r.feature}.png"))
               for r in st.compare(train, served) if r.drifted]
    ftrain, test_images = fashion
    fserved = st.compute({"image": 255 - test_images}, kinds={"image": st.IMAGE}, reference=ftrain)
    written += [st.plot(r, ftrain, fserved, str(tmp_path / "image.png")) for r in st.compare(ftrain, fserved)]
    assert len(written) == 3
    for path in written:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
