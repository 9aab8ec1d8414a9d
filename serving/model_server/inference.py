"""Request validation and response building for Predict, Classify, Regress and MultiInference.

Each API is split into prepare (validate, decode into numpy inputs), run (the servable, possibly
through the batcher) and build (response proto), so the same code serves gRPC, REST and warm-up.
How requests are checked and answered comes in an `InferenceOptions`, passed down from start-up.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from .. import tensor_codec as codec
from ..status import ServingError, invalid
from . import tensors
from .servable import Servable, Signature

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    check_method_name: bool = False  # --enable_signature_method_name_check
    as_tensor_content: bool = False  # --enable_serialization_as_tensor_content


DEFAULTS = InferenceOptions()


def fill_spec(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str) -> None:
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature_name


# ---- Predict
def check_inputs(sig: Signature, names) -> None:
    index = sig.input_index
    if len(names) == len(index) and all(n in index for n in names):
        return
    sent = set(names)
    want = set(sig.input_keys)
    if len(sent) != len(want):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(want)} len({{{','.join(sorted(sent))}}}) "
            f"!= len({{{','.join(sorted(want))}}}). Sent extra: {{{','.join(sorted(sent - want))}}}. "
            f"Missing but required: {{{','.join(sorted(want - sent))}}}.")
    for alias in sorted(sent):
        if alias not in want:
            raise invalid(f"input tensor alias not found in signature: {alias}. Inputs expected to be in the "
                          f"set {{{','.join(sig.input_keys)}}}.")


def check_dtype(sig: Signature, alias: str, dt: int) -> None:
    want = sig.input_dtypes[alias]
    if want != dt and want != types_pb2.DT_INVALID:
        idx = sig.input_index[alias]
        raise invalid(f"Expects arg[{idx}] to be {codec.dtype_name(want)} but {codec.dtype_name(dt)} "
                      f"is provided")


def check_output_filter(sig: Signature, output_filter) -> list[str]:
    if not output_filter:
        return sig.output_keys
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in sig.sigdef.outputs:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                          f"set {{{','.join(sig.output_keys)}}}.")
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def predict_prepare(servable: Servable, req: predict_pb2.PredictRequest):
    sig = servable.signature(req.model_spec.signature_name)
    sent = req.inputs
    check_inputs(sig, sent)
    inputs = {}
    for alias in sig.input_keys:
        tp = sent[alias]
        check_dtype(sig, alias, tp.dtype)
        # No check against the signature's declared shape: like TF Serving, the graph decides.
        inputs[alias] = tensors.to_numpy(tp, alias)
    wanted = check_output_filter(sig, req.output_filter)
    return sig, inputs, wanted


def predict_build(servable: Servable, sig: Signature, outputs: dict, wanted: list[str], opts: InferenceOptions):
    resp = predict_pb2.PredictResponse()
    fill_spec(resp.model_spec, servable, sig.name)
    as_content = opts.as_tensor_content
    for k in wanted:
        tensors.fill_proto(resp.outputs[k], outputs[k], as_content)
    return resp


def predict_sync(servable: Servable, req, opts: InferenceOptions):
    sig, inputs, wanted = predict_prepare(servable, req)
    return predict_build(servable, sig, servable.run(sig, inputs, wanted), wanted, opts)


# ---- Classify / Regress on serialized tf.Example
def examples_tensor(inp) -> np.ndarray:
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        ser = [e.SerializeToString() for e in inp.example_list.examples]
    elif kind == "example_list_with_context":
        # Context first, then the example: parsing the concatenation merges them, the example winning.
        ctx = inp.example_list_with_context.context.SerializeToString()
        ser = [ctx + e.SerializeToString() for e in inp.example_list_with_context.examples]
    else:
        ser = []
    if not ser:
        raise invalid("Input is empty.")
    arr = np.empty(len(ser), dtype=object)
    arr[:] = ser
    return arr


def _single_string_input(sig: Signature) -> str:
    if len(sig.input_keys) != 1:
        raise invalid("Expected one input Tensor.")
    alias = sig.input_keys[0]
    if sig.input_dtypes[alias] != types_pb2.DT_STRING:
        raise invalid(f"Expected input Tensor of DT_STRING for signature {sig.name}, got "
                      f"{codec.dtype_name(sig.input_dtypes[alias])}.")
    return alias


def classify_prepare(servable: Servable, spec, inp, opts: InferenceOptions):
    sig = servable.signature(spec.signature_name)
    if opts.check_method_name and sig.method_name != CLASSIFY:
        raise invalid(f"Expected classification signature method_name to be {CLASSIFY}. Was: "
                      f"{sig.method_name}")
    alias = _single_string_input(sig)
    outs = sig.sigdef.outputs
    if "classes" not in outs and "scores" not in outs:
        raise invalid(f"Expected classification signature outputs to contain at least one of classes and "
                      f"scores; signature {sig.name} has {{{','.join(sig.output_keys)}}}.")
    return sig, {alias: examples_tensor(inp)}


def classify_result(outputs: dict, n: int) -> classification_pb2.ClassificationResult:
    result = classification_pb2.ClassificationResult()
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    for arr, label in ((classes, "classes"), (scores, "scores")):
        if arr is not None and (arr.ndim != 2 or arr.shape[0] != n):
            if not (arr.ndim == 1 and arr.shape[0] == n):
                raise ServingError(__import__("grpc").StatusCode.INVALID_ARGUMENT,
                                   f"Expected Tensor shape: [{n} num_classes] but got {list(arr.shape)}"
                                   f" for {label}")
    if classes is not None and classes.ndim == 1:
        classes = classes.reshape(n, 1)
    if scores is not None and scores.ndim == 1:
        scores = scores.reshape(n, 1)
    k = (classes if classes is not None else scores).shape[1]
    for i in range(n):
        c = result.classifications.add()
        for j in range(k):
            cls = c.classes.add()
            if classes is not None:
                v = classes[i, j]
                cls.label = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            if scores is not None:
                cls.score = float(scores[i, j])
    return result


def classify_build(servable, sig, outputs, n):
    resp = classification_pb2.ClassificationResponse()
    fill_spec(resp.model_spec, servable, sig.name)
    resp.result.CopyFrom(classify_result(outputs, n))
    return resp


def regress_prepare(servable: Servable, spec, inp, opts: InferenceOptions):
    sig = servable.signature(spec.signature_name)
    if opts.check_method_name and sig.method_name != REGRESS:
        raise invalid(f"Expected regression signature method_name to be {REGRESS}. Was: {sig.method_name}")
    alias = _single_string_input(sig)
    if "outputs" not in sig.sigdef.outputs:
        raise invalid(f"No regression outputs found in SignatureDef: {sig.name}")
    return sig, {alias: examples_tensor(inp)}


def regress_result(outputs: dict, n: int) -> regression_pb2.RegressionResult:
    arr = outputs["outputs"]
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise invalid(f"Expected output Tensor shape to be either [{n}] or [{n}, 1] but got "
                      f"{list(arr.shape)}")
    result = regression_pb2.RegressionResult()
    for v in arr.tolist():
        result.regressions.add(value=float(v))
    return result


def regress_build(servable, sig, outputs, n):
    resp = regression_pb2.RegressionResponse()
    fill_spec(resp.model_spec, servable, sig.name)
    resp.result.CopyFrom(regress_result(outputs, n))
    return resp


def classify_sync(servable, req, opts: InferenceOptions):
    sig, inputs = classify_prepare(servable, req.model_spec, req.input, opts)
    n = len(next(iter(inputs.values())))
    return classify_build(servable, sig, servable.run(sig, inputs), n)


def regress_sync(servable, req, opts: InferenceOptions):
    sig, inputs = regress_prepare(servable, req.model_spec, req.input, opts)
    n = len(next(iter(inputs.values())))
    return regress_build(servable, sig, servable.run(sig, inputs), n)


# ---- MultiInference
def multi_inference_check(req: inference_pb2.MultiInferenceRequest) -> None:
    if not req.tasks:
        raise invalid("Tasks field is empty.")
    name = req.tasks[0].model_spec.name
    seen: set[str] = set()
    for task in req.tasks:
        if task.model_spec.name != name:
            raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        sname = task.model_spec.signature_name or "serving_default"
        if sname in seen:
            raise invalid(f"Duplicate evaluation of signature: {sname}")
        seen.add(sname)
        if task.method_name not in (CLASSIFY, REGRESS):
            raise ServingError(__import__("grpc").StatusCode.UNIMPLEMENTED,
                               f"Unsupported signature method_name: {task.method_name}")


def multi_inference_sync(servable, req, opts: InferenceOptions):
    multi_inference_check(req)
    resp = inference_pb2.MultiInferenceResponse()
    for task in req.tasks:
        r = resp.results.add()
        if task.method_name == CLASSIFY:
            sig, inputs = classify_prepare(servable, task.model_spec, req.input, opts)
            n = len(next(iter(inputs.values())))
            r.classification_result.CopyFrom(classify_result(servable.run(sig, inputs), n))
        else:
            sig, inputs = regress_prepare(servable, task.model_spec, req.input, opts)
            n = len(next(iter(inputs.values())))
            r.regression_result.CopyFrom(regress_result(servable.run(sig, inputs), n))
        fill_spec(r.model_spec, servable, sig.name)
    return resp
