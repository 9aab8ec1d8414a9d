"""`AsyncGatewayClient`: the asyncio client of the tfgate gateway, same methods as `GatewayClient`.

Example:
    >>> import asyncio
    >>> from clients import AsyncGatewayClient
    >>> async def main():
    ...     async with AsyncGatewayClient("127.0.0.1:9000") as client:
    ...         return await client.list_models()
    >>> asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from ._core import ClientBase, Errors, FashionJob, HousingJob, Job, PredictJob, Progress, model_info, model_ref
from .errors import DeadlineExceeded, TfgateError, Unavailable, from_rpc_error
from .results import FashionClassifications, HousingPredictions, ModelInfo, PredictResult


class AsyncGatewayClient(ClientBase):
    """asyncio client of the gateway. Create it inside a running event loop (the channel belongs to
    that loop); `async with` closes the channel. Options as `GatewayClient`.

    Example:
        >>> async with AsyncGatewayClient("127.0.0.1:9000", token="s3cret") as client:
        ...     preds = await client.predict_housing(records)
    """

    def _connect(self) -> None:
        self._channel = self.options.aio_channel()
        self._stub = pb_grpc.InferenceGatewayStub(self._channel)

    async def close(self) -> None:
        """Close the channel.

        Example:
            >>> await client.close()
        """
        await self._channel.close()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any, timeout: float | None,
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
                return await fn(request, timeout=remaining, metadata=md, wait_for_ready=opts.wait_for_ready)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            if not isinstance(err, Unavailable) or attempt >= opts.retries:
                raise err
            delay = opts.backoff_delay(attempt)
            attempt += 1
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise err
            await asyncio.sleep(delay)

    async def _run(self, job: Job, timeout: float | None, progress: Progress | None,
                   metadata: Sequence[tuple[str, str]]) -> None:
        gate = asyncio.Semaphore(self.options.concurrency)

        async def work(indices: list[int]) -> None:
            async with gate:
                pending: list[int] | None = indices
                while pending:
                    try:
                        response = await self._call(job.method, job.request(pending), timeout, metadata)
                    except TfgateError as err:
                        pending = job.failed(pending, err)
                        continue
                    job.accept(pending, response)
                    pending = None
            if progress is not None:
                progress(len(indices))

        tasks = [asyncio.ensure_future(work(chunk)) for chunk in job.chunks]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def predict_housing(
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
        """Median house value (US dollars) of each record, in order; see `GatewayClient.predict_housing`.

        Example:
            >>> preds = await client.predict_housing(df)
            >>> preds.values[:2]
            array([452600., 358500.], dtype=float32)
        """
        job = HousingJob(records, model_ref(model, version, label), self.options.chunk_size, errors,
                         self._max_chunk_bytes())
        await self._run(job, self._timeout(timeout), progress, metadata)
        return job.result()

    async def classify_fashion(
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
        """Top-k classes of each image, in order; see `GatewayClient.classify_fashion`.

        Example:
            >>> (await client.classify_fashion(pixels, top_k=1)).class_names[:2]
            ['Ankle boot', 'T-shirt/top']
        """
        job = FashionJob(images, top_k, model_ref(model, version, label), self.options.chunk_size, errors,
                         self._max_chunk_bytes())
        await self._run(job, self._timeout(timeout), progress, metadata)
        return job.result()

    async def predict(
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
        """Run a signature of any model on named arrays; see `GatewayClient.predict`.

        Example:
            >>> r = await client.predict("fashion", {"image": np.zeros((1, 28, 28), np.uint8)})
            >>> r["class_ids"].shape
            (1,)
        """
        job = PredictJob(inputs, model_ref(model, version, label, signature), output_filter, chunk_size)
        await self._run(job, self._timeout(timeout), None, metadata)
        return job.result()

    async def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every model the gateway serves, with versions; see `GatewayClient.list_models`.

        Example:
            >>> [m.name for m in await client.list_models()]
            ['fashion', 'housing']
        """
        resp = await self._call("ListModels", pb.ListModelsRequest(), self._timeout(timeout))
        return [model_info(m) for m in resp.models]

    async def get_model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        """One model; raises `NotFound` if the gateway does not serve it.

        Example:
            >>> (await client.get_model("housing")).healthy_targets
            1
        """
        resp = await self._call("GetModel", pb.GetModelRequest(name=name), self._timeout(timeout))
        return model_info(resp.model)
