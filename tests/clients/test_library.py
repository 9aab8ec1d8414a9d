"""GatewayClient and AsyncGatewayClient against the real gateway and model server on loopback."""

from __future__ import annotations

import asyncio
import math
import threading

import numpy as np
import pandas as pd
import pytest

from tests.conftest import HOUSING_CSV
from tfgate.clients import (
    AsyncGatewayClient,
    GatewayClient,
    InvalidArgument,
    ResourceExhausted,
)

from .conftest import ALL_TOKEN
from .helpers import fashion_test_set, housing_rows, png_bytes


@pytest.fixture(scope="module")
def client(gateway):
    with GatewayClient(gateway.target, token=ALL_TOKEN, timeout=60) as c:
        yield c


def test_predict_housing_from_dicts_and_dataframe_agree_with_direct_predict(client):
    rows = housing_rows(300)
    rows[5] = {**rows[5], "total_bedrooms": ""}  # unknown: the model imputes it
    preds = client.predict_housing(rows)
    assert preds.values.dtype == np.float32 and preds.values.shape == (300,)
    assert preds.version == 1 and preds.served_by[0].model_name == "housing" and not preds.errors
    assert np.all(np.isfinite(preds.values)) and 1e4 < float(np.median(preds.values)) < 1e6
    df = pd.read_csv(HOUSING_CSV, nrows=300)
    df.loc[5, "total_bedrooms"] = np.nan
    np.testing.assert_allclose(client.predict_housing(df).values, preds.values, rtol=1e-5)
    # The same 9 columns through the generic Predict: the typed call adds nothing and loses nothing.
    cols = {c: df[c].to_numpy(np.float32) for c in df.columns if c not in ("ocean_proximity", "median_house_value")}
    cols["ocean_proximity"] = df["ocean_proximity"].to_numpy(object)
    out = client.predict("housing", cols)
    assert out.version == 1
    np.testing.assert_allclose(out["median_house_value"].reshape(-1), preds.values, rtol=1e-5)


def test_chunking_keeps_the_order_of_10000_rows(gateway):
    rows = housing_rows(10_000)
    with GatewayClient(gateway.target, token=ALL_TOKEN, chunk_size=333, concurrency=8, timeout=120) as c:
        done: list[int] = []
        lock = threading.Lock()

        def progress(n):
            with lock:
                done.append(n)

        forward = c.predict_housing(rows, progress=progress)
    assert len(done) == math.ceil(10_000 / 333) and sum(done) == 10_000
    # Reversed input, other chunk boundaries, one request at a time: a misplaced chunk would show.
    with GatewayClient(gateway.target, token=ALL_TOKEN, chunk_size=1000, concurrency=1, timeout=120) as c:
        backward = c.predict_housing(rows[::-1]).values[::-1]
    assert forward.values.shape == (10_000,) and np.all(forward.versions == 1)
    np.testing.assert_allclose(forward.values, backward, rtol=1e-4)
    # Row i repeats row i % 20640 of the file; rows with different inputs get different values.
    assert len(np.unique(forward.values)) > 9_000


def test_collect_mode_reports_bad_records_by_index_and_predicts_the_rest(client):
    rows = housing_rows(1200)
    rows[3] = {**rows[3], "median_income": "abc"}
    rows[700] = {**rows[700], "ocean_proximity": ""}
    rows[1100] = {**rows[1100], "latitude": "inf"}
    preds = client.predict_housing(rows, errors="collect")
    assert sorted(preds.errors) == [3, 700, 1100]
    assert "records[3].median_income" in preds.errors[3].message
    assert "records[700].ocean_proximity" in preds.errors[700].message
    assert "records[1100].latitude" in preds.errors[1100].message
    assert np.isnan(preds.values[[3, 700, 1100]]).all() and np.isfinite(np.delete(preds.values, [3, 700, 1100])).all()
    whole = client.predict_housing([r for i, r in enumerate(rows) if i not in (3, 700, 1100)]).values
    np.testing.assert_allclose(np.delete(preds.values, [3, 700, 1100]), whole, rtol=1e-5)
    with pytest.raises(InvalidArgument, match=r"records\[3\]\.median_income"):
        client.predict_housing(rows)


def test_server_side_errors_name_the_callers_index_across_chunks(gateway):
    # A JPEG header that is no image passes the client and fails in the gateway's decoder.
    images, _ = fashion_test_set(40)
    items: list = list(images)
    items[33] = b"\xff\xd8\xffnot really a jpeg"
    with GatewayClient(gateway.target, token=ALL_TOKEN, chunk_size=8) as c:
        with pytest.raises(InvalidArgument, match=r"images\[33\]\.encoded: cannot decode"):
            c.classify_fashion(items)
        got = c.classify_fashion(items, errors="collect")
    assert list(got.errors) == [33] and "images[33].encoded" in got.errors[33].message
    assert got.top[33] == [] and all(len(t) == 3 for i, t in enumerate(got.top) if i != 33)


def test_classify_fashion_pixels_paths_and_bytes_agree(client, tmp_path):
    images, labels = fashion_test_set(64)
    by_pixels = client.classify_fashion(images, top_k=3)
    assert by_pixels.class_ids.shape == (64, 3) and by_pixels.version == 1
    probs = by_pixels.probabilities
    assert np.all(np.diff(probs, axis=1) <= 0) and np.all((probs >= 0) & (probs <= 1))
    assert np.mean(by_pixels.class_ids[:, 0] == labels) > 0.5  # a briefly trained CNN, far above 10 %
    paths = []
    for i in range(4):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(png_bytes(images[i]))
        paths.append(p)
    mixed = [str(paths[0]), paths[1], png_bytes(images[2]), images[3]]
    got = client.classify_fashion(mixed, top_k=3)
    np.testing.assert_array_equal(got.class_ids, by_pixels.class_ids[:4])
    np.testing.assert_allclose(got.probabilities, probs[:4], rtol=1e-5)
    assert got.class_names == by_pixels.class_names[:4]
    big = client.classify_fashion([png_bytes(images[0], size=112)], top_k=1)  # resized by the gateway
    assert big.class_ids.shape == (1, 1)
    single = client.classify_fashion(images[5], top_k=10)
    assert sorted(single.class_ids[0].tolist()) == list(range(10))


def test_predict_any_signature_and_chunked_outputs_concatenate_in_order(client):
    images, _ = fashion_test_set(50)
    whole = client.predict("fashion", {"image": images}, version=1)
    assert whole["probabilities"].shape == (50, 10) and whole.served_by[0].version == 1
    assert whole["classes"].dtype == object and isinstance(whole["classes"][0], bytes)
    chunked = client.predict("fashion", {"image": images}, chunk_size=7, output_filter=["probabilities"])
    assert list(chunked.outputs) == ["probabilities"]
    np.testing.assert_allclose(chunked["probabilities"], whole["probabilities"], rtol=1e-5)
    with pytest.raises(InvalidArgument, match="same first dimension"):
        client.predict("fashion", {"image": images, "other": np.zeros(3)}, chunk_size=7)


def test_list_and_get_models(client):
    models = {m.name: m for m in client.list_models()}
    assert sorted(models) == ["down", "fashion", "housing", "slow"]
    housing = models["housing"]
    assert [(v.version, v.state) for v in housing.versions] == [(1, "AVAILABLE")]
    assert housing.healthy_targets == 1 and len(housing.targets) == 1
    assert client.get_model("fashion").versions[0].state == "AVAILABLE"


def test_options_compression_message_size_and_closed_channel(gateway):
    rows = housing_rows(100)
    with GatewayClient(gateway.target, token=ALL_TOKEN, compression="gzip") as c:
        assert c.predict_housing(rows).values.shape == (100,)
    with GatewayClient(gateway.target, token=ALL_TOKEN, max_message_bytes=2048, chunk_size=1000) as c:
        with pytest.raises(ResourceExhausted, match="(?i)larger than max"):
            c.predict("housing", {"x": np.zeros(4096, np.float32)})
    c = GatewayClient(gateway.target, token=ALL_TOKEN)
    with c:
        c.list_models()
    with pytest.raises(ValueError, match="(?i)closed channel"):
        c.list_models()
    with pytest.raises(ValueError, match="compression"):
        GatewayClient(gateway.target, compression="brotli")


def test_async_client_every_method(gateway):
    rows = housing_rows(2000)
    images, _ = fashion_test_set(20)

    async def main():
        async with AsyncGatewayClient(gateway.target, token=ALL_TOKEN, chunk_size=300, concurrency=3) as c:
            housing, fashion, models = await asyncio.gather(
                c.predict_housing(rows), c.classify_fashion(images, top_k=2), c.list_models())
            generic = await c.predict("fashion", {"image": images}, chunk_size=6)
            one = await c.get_model("housing")
            bad = await c.predict_housing([rows[0], {**rows[1], "households": None}], errors="collect")
        return housing, fashion, models, generic, one, bad

    housing, fashion, models, generic, one, bad = asyncio.run(main())
    with GatewayClient(gateway.target, token=ALL_TOKEN, chunk_size=1000) as c:
        sync_values = c.predict_housing(rows).values
        sync_fashion = c.classify_fashion(images, top_k=2)
    np.testing.assert_allclose(housing.values, sync_values, rtol=1e-5)
    assert housing.version == 1 and len(housing.served_by) == 1
    np.testing.assert_array_equal(fashion.class_ids, sync_fashion.class_ids)
    assert [m.name for m in models] == ["down", "fashion", "housing", "slow"]
    assert generic["probabilities"].shape == (20, 10) and one.name == "housing"
    top2 = np.argsort(-generic["probabilities"], axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(top2, fashion.class_ids)
    assert list(bad.errors) == [1] and "records[1].households: missing value" in bad.errors[1].message
