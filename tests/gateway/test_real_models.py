"""The trained housing and fashion models (session fixtures) behind the real gateway: typed answers
equal direct `serving_default` answers from the same model server."""

from __future__ import annotations

import gzip
import io
import math

import grpc
import numpy as np
import pytest
from PIL import Image
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from tests.conftest import FASHION_DIR
from tfgate.serving.processes import model_config_text
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .helpers import Gateway

RENAMED = [f"class {i}" for i in range(10)]
FLOATS = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
          "households", "median_income"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory, model_server_factory, housing_model_base, fashion_model_base):
    config = model_config_text({"housing": str(housing_model_base), "fashion": str(fashion_model_base)})
    ms = model_server_factory(tmp_path_factory.mktemp("gw-real-ms"), model_config=config, rest=False)
    g = Gateway(tmp_path_factory.mktemp("gw-real"), {"models": {
        "housing": {"targets": [ms.grpc_target]}, "fashion": {"targets": [ms.grpc_target]},
        "fashion-renamed": {"targets": [ms.grpc_target], "backend_model_name": "fashion", "class_names": RENAMED}}})
    with grpc.insecure_channel(ms.grpc_target) as d, g.channel() as ch:
        yield prediction_service_pb2_grpc.PredictionServiceStub(d), pb_grpc.InferenceGatewayStub(ch)
    assert g.stop() == 0


def _direct(stub, model: str, inputs: dict) -> dict:
    import tensorflow as tf

    req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model))
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    resp = stub.Predict(req, timeout=60)
    return {k: tf.make_ndarray(v) for k, v in resp.outputs.items()}


def _test_images(n: int) -> np.ndarray:
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        fh.read(16)  # IDX header: magic, count, rows, cols
        return np.frombuffer(fh.read(784 * n), np.uint8).reshape(n, 28, 28).copy()


def _png(img: np.ndarray, mode: str) -> bytes:
    im = Image.fromarray(img, "L")
    if mode != "L":
        im = im.convert(mode)  # equal channels: converting back to L gives the same bytes
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_classify_fashion_equals_direct_for_pixels_and_png(servers):
    direct, gw = servers
    images = _test_images(6)
    images[5] = 0  # a blank one as well
    expect = _direct(direct, "fashion", {"image": images})
    probs = expect["probabilities"]
    k = 3
    requests = {
        "pixels": [pb.Image(pixels=img.tobytes()) for img in images],
        "png": [pb.Image(encoded=_png(img, "L")) for img in images],
        "png-rgb+pixels": [pb.Image(encoded=_png(img, "RGB")) if i % 2 else pb.Image(pixels=img.tobytes())
                           for i, img in enumerate(images)],
    }
    for kind, imgs in requests.items():
        out = gw.ClassifyFashion(pb.ClassifyFashionRequest(images=imgs, top_k=k), timeout=60)
        assert out.served_by.model_name == "fashion" and out.served_by.version == 1, kind
        assert len(out.classifications) == len(images), kind
        for i, c in enumerate(out.classifications):
            ids = [x.class_id for x in c.classes]
            assert ids == list(np.argsort(-probs[i], kind="stable")[:k]), (kind, i)
            assert ids[0] == expect["class_ids"][i]
            assert c.classes[0].class_name == expect["classes"][i].decode(), (kind, i)
            np.testing.assert_array_equal(np.array([x.probability for x in c.classes], np.float32),
                                          probs[i, ids], err_msg=kind)
    # JPEG and other sizes: a blank image stays exactly blank through JPEG and the resize to 28x28.
    blank = []
    for fmt, size in (("JPEG", (28, 28)), ("PNG", (56, 40))):
        buf = io.BytesIO()
        Image.new("RGB", size).save(buf, format=fmt)
        blank.append(pb.Image(encoded=buf.getvalue()))
    out = gw.ClassifyFashion(pb.ClassifyFashionRequest(images=blank), timeout=60)
    for c in out.classifications:
        assert c.classes[0].class_id == expect["class_ids"][5]
        assert np.float32(c.classes[0].probability) == probs[5, expect["class_ids"][5]]


def test_class_names_come_from_the_model_unless_configured(servers):
    direct, gw = servers
    images = _test_images(2)
    names = [n.decode() for n in _direct(direct, "fashion", {"image": images})["all_classes"][0]]
    assert len(names) == 10 and names[9] == "Ankle boot"
    out = gw.ClassifyFashion(pb.ClassifyFashionRequest(images=[pb.Image(pixels=i.tobytes()) for i in images],
                                                       top_k=10), timeout=60)
    for c in out.classifications:
        assert [x.class_name for x in c.classes] == [names[x.class_id] for x in c.classes]
    renamed = gw.ClassifyFashion(pb.ClassifyFashionRequest(
        images=[pb.Image(pixels=images[0].tobytes())], top_k=2, model=pb.ModelRef(name="fashion-renamed")), timeout=60)
    assert [x.class_name for x in renamed.classifications[0].classes] == [
        RENAMED[x.class_id] for x in renamed.classifications[0].classes]
    with pytest.raises(grpc.RpcError) as err:  # the model says how many classes it has
        gw.ClassifyFashion(pb.ClassifyFashionRequest(images=[pb.Image(pixels=images[0].tobytes())], top_k=11),
                           timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_k: must be between 1 and 10, got 11" in err.value.details()


def test_predict_housing_equals_direct_with_missing_bedrooms(servers):
    direct, gw = servers
    rng = np.random.default_rng(3)
    n = 6
    cols = {
        "longitude": rng.uniform(-124, -114, n), "latitude": rng.uniform(32, 42, n),
        "housing_median_age": rng.integers(1, 52, n), "total_rooms": rng.uniform(200, 6000, n),
        "total_bedrooms": rng.uniform(50, 1200, n), "population": rng.uniform(100, 4000, n),
        "households": rng.uniform(40, 1100, n), "median_income": rng.uniform(0.5, 15, n),
    }
    cols = {k: v.astype(np.float32) for k, v in cols.items()}
    missing = [0, 3]
    cols["total_bedrooms"][missing] = np.nan
    ocean = ["NEAR BAY", "INLAND", "<1H OCEAN", "NEAR OCEAN", "ISLAND", "INLAND"]
    records = []
    for i in range(n):
        r = {k: float(v[i]) for k, v in cols.items() if not (k == "total_bedrooms" and i in missing)}
        records.append(pb.HousingRecord(**r, ocean_proximity=ocean[i]))
    expect = _direct(direct, "housing", {**cols, "ocean_proximity": np.array([o.encode() for o in ocean])})
    out = gw.PredictHousing(pb.PredictHousingRequest(records=records), timeout=60)
    got = np.array(out.median_house_values, np.float32)
    assert got.shape == (n,) and all(math.isfinite(v) for v in got)
    np.testing.assert_array_equal(got, expect["median_house_value"].reshape(-1).astype(np.float32))
    assert out.served_by.model_name == "housing" and out.served_by.version == 1
    # An explicit NaN total_bedrooms means "unknown", like an absent one.
    explicit = pb.HousingRecord()
    explicit.CopyFrom(records[0])
    explicit.total_bedrooms = float("nan")
    absent, nan = (gw.PredictHousing(pb.PredictHousingRequest(records=[r]), timeout=60).median_house_values
                   for r in (records[0], explicit))
    assert math.isfinite(absent[0]) and absent[0] == nan[0]


def test_generic_predict_equals_direct_and_bad_inputs_are_invalid_argument(servers):
    from tfgate.v1 import tensor_pb2

    direct, gw = servers
    images = _test_images(2)
    expect = _direct(direct, "fashion", {"image": images})

    def image_tensor(arr, dtype=tensor_pb2.DATA_TYPE_UINT8):
        return tensor_pb2.Tensor(dtype=dtype, shape=list(arr.shape), content=arr.tobytes())

    out = gw.Predict(pb.PredictRequest(model=pb.ModelRef(name="fashion"), inputs={"image": image_tensor(images)},
                                       output_filter=["probabilities", "classes"]), timeout=60)
    assert set(out.outputs) == {"probabilities", "classes"}
    p = out.outputs["probabilities"]
    assert p.dtype == tensor_pb2.DATA_TYPE_FLOAT32 and list(p.shape) == [2, 10]
    np.testing.assert_array_equal(np.frombuffer(p.content, "<f4").reshape(2, 10), expect["probabilities"])
    assert list(out.outputs["classes"].string_values) == list(expect["classes"])
    bad = {
        "wrong shape": {"image": image_tensor(np.zeros([2, 27, 28], np.uint8))},
        "wrong dtype": {"image": image_tensor(np.zeros([1, 28, 28], np.float32), tensor_pb2.DATA_TYPE_FLOAT32)},
        "unknown input": {"pixels": image_tensor(images)},
    }
    for what, inputs in bad.items():
        with pytest.raises(grpc.RpcError) as err:
            gw.Predict(pb.PredictRequest(model=pb.ModelRef(name="fashion"), inputs=inputs), timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, err.value.details())
        assert next(iter(inputs)) in err.value.details(), (what, err.value.details())
