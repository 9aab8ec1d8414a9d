"""`GatewayClient`: the synchronous Python client of the tfgate gateway (`tfgate.v1.InferenceGateway`).

Example:
    >>> from clients import GatewayClient
    >>> with GatewayClient("127.0.0.1:9000", token="s3cret") as client:
    ...     print(client.predict_housing([{"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41,
    ...         "total_rooms": 880, "total_bedrooms": 129, "population": 322, "households": 126,
    ...         "median_income": 8.3252, "ocean_proximity": "NEAR BAY"}]).values)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import grpc
import numpy as np

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from ._core import ClientBase, Errors, FashionJob, HousingJob, Job, PredictJob, Progress, model_info, model_ref
from .errors import DeadlineExceeded, TfgateError, Unavailable, from_rpc_error
from .results import FashionClassifications, HousingPredictions, ModelInfo, PredictResult


class SyncClient(ClientBase):
    """Channel lifecycle, retries and concurrent chunks of the synchronous clients."""

    def _connect(self) -> None:
        self._channel = self.options.sync_channel()
        self._stub = self._make_stub(self._channel)
        self._lock = threading.Lock()

    def _make_stub(self, channel: grpc.Channel) -> Any:
        raise NotImplementedError

    # ----- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the channel; calls in flight are cancelled.

        Example:
            >>> client = GatewayClient("127.0.0.1:9000")
            >>> client.close()
        """
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- one request, with retries --------------------------------------------------------------
    def _call(self, method: str, request: Any, timeout: float | None,
              metadata: Sequence[tuple[str, str]] = ()) -> Any:
        opts = self.options
        fn = getattr(self._stub, method)
        md = opts.call_metadata(metadata)
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"{method}: deadline of {timeout} s spent on {attempt} attempts")
            try:
                return fn(request, timeout=remaining, metadata=md, wait_for_ready=opts.wait_for_ready)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            if not isinstance(err, Unavailable) or attempt >= opts.retries:
                raise err
            delay = opts.backoff_delay(attempt)
            attempt += 1
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise err
            time.sleep(delay)

    def _run(self, job: Job, timeout: float | None, progress: Progress | None,
             metadata: Sequence[tuple[str, str]]) -> None:
        def work(indices: list[int]) -> None:
            pending: list[int] | None = indices
            while pending:
                request = job.request(pending)
                try:
                    response = self._call(job.method, request, timeout, metadata)
                except TfgateError as err:
                    with self._lock:
                        pending = job.failed(pending, err)
                    continue
                with self._lock:
                    job.accept(pending, response)
                pending = None
            if progress is not None:
                progress(len(indices))

        if len(job.chunks) <= 1:
            for chunk in job.chunks:
                work(chunk)
            return
        pool = ThreadPoolExecutor(min(self.options.concurrency, len(job.chunks)), "tfgate-client")
        futures = [pool.submit(work, chunk) for chunk in job.chunks]
        try:
            for f in futures:
                f.result()  # in order: the first failing chunk's error is raised
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

class GatewayClient(SyncClient):
    """Synchronous client of the gateway; thread-safe; use it as a context manager (or call `close`).

    Connection options are those of `ClientBase.__init__` (target, TLS, token, deadline, retries,
    compression, message size, wait-for-ready, chunking).

    Example:
        >>> with GatewayClient("127.0.0.1:9000", timeout=10, retries=5) as client:
        ...     [m.name for m in client.list_models()]
        ['fashion', 'housing']
    """

    def _make_stub(self, channel: grpc.Channel) -> pb_grpc.InferenceGatewayStub:
        return pb_grpc.InferenceGatewayStub(channel)

    # ----- API ------------------------------------------------------------------------------------
    def predict_housing(
        self,
        records: Iterable[Mapping[str, Any]] | Any,
        *,
        model: str = "housing",
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        errors: Errors = "raise",
        progress: Progress | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> HousingPredictions:
        """Median house value (US dollars) of each record, in order.

        `records`: a list of dicts or a pandas DataFrame with the 9 raw columns (longitude, latitude,
        housing_median_age, total_rooms, total_bedrooms, population, households, median_income,
        ocean_proximity); total_bedrooms may be missing/None/NaN. Extra columns are ignored. More than
        `chunk_size` records are sent as concurrent requests. `errors="collect"` keeps going past bad
        records (their index and error in `.errors`, NaN values) instead of raising the first error.
        `progress(n)` is called as each request finishes with its number of records. `timeout` (seconds)
        overrides the client's default deadline per request.

        Example:
            >>> df = pandas.read_csv("data/housing/housing.csv")
            >>> preds = client.predict_housing(df.head(1000))
            >>> preds.values.shape, preds.version
            ((1000,), 1)
        """
        job = HousingJob(records, model_ref(model, version, label), self.options.chunk_size, errors,
                         self._max_chunk_bytes())
        self._run(job, self._timeout(timeout), progress, metadata)
        return job.result()

    def classify_fashion(
        self,
        images: np.ndarray | Iterable[Any],
        top_k: int = 3,
        *,
        model: str = "fashion",
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        errors: Errors = "raise",
        progress: Progress | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> FashionClassifications:
        """The `top_k` most probable Fashion-MNIST classes of each image, in order.

        `images`: a uint8 array [N, 28, 28] (or one [28, 28] image), or a list of image file paths
        and/or encoded PNG/JPEG bytes (decoded, made grayscale and resized by the gateway). Other
        arguments as in `predict_housing`.

        Example:
            >>> c = client.classify_fashion(["boot.png", "shirt.jpg"], top_k=2)
            >>> [[s.class_name for s in top] for top in c.top]
            [['Ankle boot', 'Sneaker'], ['Shirt', 'T-shirt/top']]
        """
        job = FashionJob(images, top_k, model_ref(model, version, label), self.options.chunk_size, errors,
                         self._max_chunk_bytes())
        self._run(job, self._timeout(timeout), progress, metadata)
        return job.result()

    def predict(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        version: int | None = None,
        label: str | None = None,
        signature: str | None = None,
        *,
        output_filter: Sequence[str] = (),
        chunk_size: int | None = None,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> PredictResult:
        """Run a signature (default `serving_default`) of any model the gateway serves on named arrays.

        With `chunk_size`, every input is split along its first axis into requests sent concurrently
        and each output is concatenated back along its first axis, in order.

        Example:
            >>> r = client.predict("fashion", {"image": np.zeros((2, 28, 28), np.uint8)})
            >>> r.outputs["probabilities"].shape, r.version
            ((2, 10), 1)
        """
        job = PredictJob(inputs, model_ref(model, version, label, signature), output_filter, chunk_size)
        self._run(job, self._timeout(timeout), None, metadata)
        return job.result()

    def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every model the gateway serves (that the token may use), with versions and their states.

        Example:
            >>> {m.name: [v.version for v in m.versions] for m in client.list_models()}
            {'fashion': [1], 'housing': [1]}
        """
        resp = self._call("ListModels", pb.ListModelsRequest(), self._timeout(timeout))
        return [model_info(m) for m in resp.models]

    def get_model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        """One model; raises `NotFound` if the gateway does not serve it.

        Example:
            >>> client.get_model("housing").versions[0].state
            'AVAILABLE'
        """
        resp = self._call("GetModel", pb.GetModelRequest(name=name), self._timeout(timeout))
        return model_info(resp.model)
