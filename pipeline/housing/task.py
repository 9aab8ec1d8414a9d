"""Training the housing model: defaults, loss and metrics, plots, the exported signatures, warm-up."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfgate.pipeline import housing
from tfgate.pipeline.housing import model
from tfgate.pipeline.training import evaluate, export
from tfgate.pipeline.training.task import Defaults, Task

# Raw rows for warm-up requests (one with total_bedrooms missing). Values from the census data.
WARMUP_ROWS = [
    {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
     "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
     "ocean_proximity": "NEAR BAY"},
    {"longitude": -118.3, "latitude": 34.05, "housing_median_age": 30.0, "total_rooms": 2000.0,
     "total_bedrooms": float("nan"), "population": 1200.0, "households": 400.0, "median_income": 3.5,
     "ocean_proximity": "<1H OCEAN"},
    {"longitude": -121.0, "latitude": 36.5, "housing_median_age": 15.0, "total_rooms": 3000.0,
     "total_bedrooms": 600.0, "population": 1500.0, "households": 550.0, "median_income": 4.2,
     "ocean_proximity": "INLAND"},
]  # fmt: skip


class HousingServing(export.ServingModule):
    """serving_default: the 9 raw columns ([N] each; NaN total_bedrooms = missing) → dollars;
    regress: serialized tf.Examples of the raw columns → dollars."""

    def __init__(self, keras_model, tft_output):
        super().__init__(keras_model, tft_output, housing.LABEL)

    def _predict(self, raw: dict) -> tf.Tensor:
        value = self.model(model.to_model_inputs(self.transform(raw)), training=False)
        return tf.reshape(value, [-1]) * housing.LABEL_SCALE

    def signatures(self) -> dict:
        names = housing.RAW_FEATURES
        specs = [
            tf.TensorSpec([None], tf.string if n == housing.CATEGORICAL_COLUMN else tf.float32, name=n) for n in names
        ]

        def serve(*columns):
            raw = dict(zip(names, columns, strict=True))
            for name in housing.OPTIONAL_COLUMNS:
                raw[name] = export.nan_to_sparse(raw[name])
            return {"median_house_value": self._predict(raw)}

        def regress(inputs):
            return {"outputs": self._predict(tf.io.parse_example(inputs, self._raw_spec))}

        self.serve = tf.function(serve, input_signature=specs)
        self.regress = tf.function(regress, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        return {
            "serving_default": self.serve.get_concrete_function(),
            "regress": self.regress.get_concrete_function(),
        }


class HousingTask(Task):
    name = housing.NAME
    label_key = housing.LABEL_XF
    required_features = (*model.NUMERIC_INPUTS, housing.CATEGORY_INDEX, housing.LABEL_XF)
    model_kinds = ("wide-deep",)
    metric = "rmse"
    report_metrics = (("rmse", "RMSE ($)"), ("mae", "MAE ($)"))
    defaults = Defaults(epochs=80, batch_size=128, patience=10, learning_rate=1e-3, weight_decay=1e-4, augment=False)

    def to_model_inputs(self, features: dict) -> dict:
        return model.to_model_inputs(features)

    def build_model(self, kind: str, tft_output):
        vocabulary = tft_output.vocabulary_size_by_name(housing.OCEAN_PROXIMITY_VOCAB)
        return model.wide_deep(vocabulary + housing.OCEAN_PROXIMITY_OOV_BUCKETS)

    def loss(self, labels, predictions):
        """Per-example squared error (the label in $100,000)."""
        import keras

        labels = keras.ops.cast(keras.ops.reshape(labels, [-1]), "float32")
        return keras.ops.square(keras.ops.reshape(predictions, [-1]) - labels)

    def keras_metric(self):
        import keras

        return keras.metrics.RootMeanSquaredError(name=self.metric)

    def test_metrics(self, outputs, labels, features: dict) -> tuple[dict, dict]:
        predicted = outputs.reshape(-1) * housing.LABEL_SCALE
        actual = labels.reshape(-1) * housing.LABEL_SCALE
        return evaluate.regression_metrics(predicted, actual), {"predicted": predicted, "actual": actual}

    def table_rows(self, test: dict) -> list[tuple[str, str]]:
        return [
            ("test RMSE", f"${test['rmse']:,.0f}"),
            ("test MAE", f"${test['mae']:,.0f}"),
            ("test examples", f"{test['examples']:,}"),
        ]

    def plots(self, folder: str, test: dict, arrays: dict) -> list[str]:
        path = os.path.join(folder, "predicted_vs_actual.png")
        evaluate.plot_predicted_vs_actual(arrays["predicted"], arrays["actual"], f"{housing.LABEL} ($)", path)
        return [path]

    def serving_module(self, keras_model, tft_output):
        return HousingServing(keras_model, tft_output)

    def warmup_logs(self, model_name: str, arrays: dict) -> list:
        """Predict on serving_default and Regress, batch sizes 1 and 3."""
        batches = [WARMUP_ROWS[:1], WARMUP_ROWS]
        logs = []
        for rows in batches:
            inputs = {
                name: np.array([r[name] for r in rows], object if name == housing.CATEGORICAL_COLUMN else np.float32)
                for name in housing.RAW_FEATURES
            }
            logs.append(export.predict_log(model_name, inputs))
        for rows in batches:
            logs.append(export.example_log(model_name, "regress", [export.example(r) for r in rows]))
        return logs


HOUSING = HousingTask()
