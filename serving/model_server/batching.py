"""Server-side batching: concurrent requests for the same servable, signature and input layout are
merged into one call, padded up to an allowed batch size, and split back.

Like TF Serving's BasicBatchScheduler: a queue per (servable, signature, input layout); a batch closes
when it reaches `max_batch_size` or its oldest task has waited `batch_timeout_micros`; at most
`num_batch_threads` batches of a queue run at once; a queue holding `max_enqueued_batches` full
batches answers UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import os
import time

import numpy as np

from .errors import ServingError, invalid, unavailable
from .servable import Servable, Signature


@dataclasses.dataclass
class BatchingParameters:
    # TF Serving's defaults when --enable_batching is given without a parameters file.
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: list[int] = dataclasses.field(default_factory=list)
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> BatchingParameters:
        p = cls()
        for k in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                  "allowed_batch_sizes", "pad_variable_length_inputs"):
            if k in d:
                setattr(p, k, d[k])
        p.validate()
        return p

    def validate(self) -> None:
        if self.max_batch_size <= 0:
            raise invalid("max_batch_size must be positive")
        if self.num_batch_threads <= 0:
            raise invalid("num_batch_threads must be positive")
        if self.allowed_batch_sizes:
            sizes = self.allowed_batch_sizes
            if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
                raise invalid("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise invalid("Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                              f"{sizes[-1]}; expected {self.max_batch_size}")


@dataclasses.dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    size: int
    future: asyncio.Future
    enqueued: float


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class _Queue:
    def __init__(self, batcher: Batcher, servable: Servable, sig: Signature):
        self.b = batcher
        self.servable = servable
        self.sig = sig
        self.tasks: collections.deque[_Task] = collections.deque()
        self.size = 0
        self.workers = 0
        self.waiters: list[asyncio.Future] = []  # workers holding an open batch until full or timeout

    def put(self, task: _Task) -> None:
        p = self.b.params
        if self.size + task.size > p.max_enqueued_batches * p.max_batch_size:
            raise unavailable("The batch scheduling queue to which this task was submitted is full")
        self.tasks.append(task)
        self.size += task.size
        # Wake waiting workers only when a batch is full: a wake-up per task costs more than the task.
        if self.waiters and self.size >= p.max_batch_size:
            for w in self.waiters:
                if not w.done():
                    w.set_result(None)
            self.waiters.clear()
        if self.workers < p.num_batch_threads:
            self.workers += 1
            asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        p = self.b.params
        loop = asyncio.get_running_loop()
        try:
            while self.tasks:
                timeout = p.batch_timeout_micros / 1e6
                while timeout > 0 and self.tasks and self.size < p.max_batch_size:
                    left = self.tasks[0].enqueued + timeout - time.monotonic()
                    if left <= 0:
                        break
                    # One future and one timer per batch (asyncio.wait_for would add a task).
                    wake = loop.create_future()
                    self.waiters.append(wake)
                    timer = loop.call_later(left, _resolve, wake)
                    try:
                        await wake
                    finally:
                        timer.cancel()
                        if wake in self.waiters:
                            self.waiters.remove(wake)
                batch: list[_Task] = []
                total = 0
                while self.tasks and total + self.tasks[0].size <= p.max_batch_size:
                    t = self.tasks.popleft()
                    self.size -= t.size
                    if t.future.cancelled():  # its caller gave up (deadline, disconnect): skip the work
                        continue
                    batch.append(t)
                    total += t.size
                if batch:
                    await self._run(batch, total)
        finally:
            self.workers -= 1

    async def _run(self, batch: list[_Task], total: int) -> None:
        p = self.b.params
        now = time.monotonic()
        target = total
        if p.allowed_batch_sizes:
            target = p.allowed_batch_sizes[bisect.bisect_left(p.allowed_batch_sizes, total)]
        merged = {}
        for k in self.sig.input_keys:
            parts = [t.inputs[k] for t in batch]
            if target > total:  # pad with copies of the first row, as TF Serving does
                parts.append(np.repeat(parts[0][:1], target - total, axis=0))
            merged[k] = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        m = self.b.metrics
        if m:
            m.batch(self.servable.name, self.sig.name, total, target - total,
                    [now - t.enqueued for t in batch])
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self.b.executor, self.servable.run, self.sig, merged)
            for k, v in out.items():
                if v.ndim == 0 or v.shape[0] != target:
                    raise invalid(f"Batched output tensor {k} has shape {list(v.shape)}; its 0th dimension "
                                  f"does not equal the batch size {target}")
        except ServingError as e:
            for t in batch:
                if not t.future.done():
                    t.future.set_exception(e)
            return
        off = 0
        for t in batch:
            if not t.future.done():
                t.future.set_result({k: v[off:off + t.size] for k, v in out.items()})
            off += t.size


class Batcher:
    def __init__(self, params: BatchingParameters, executor, metrics=None):
        self.params = params
        self.executor = executor
        self.metrics = metrics
        self.queues: dict[tuple, _Queue] = {}

    def drop(self, servable: Servable) -> None:
        for key in [k for k in self.queues if k[0] == id(servable)]:
            del self.queues[key]

    async def run(self, servable: Servable, sig: Signature, inputs: dict[str, np.ndarray]) -> dict:
        sizes = {v.shape[0] if v.ndim else -1 for v in inputs.values()}
        if len(sizes) != 1 or -1 in sizes:
            if len(sizes) > 1 and -1 not in sizes:
                raise invalid("Batching session Run() input tensors must have equal 0th-dimension size")
            # Scalars cannot be batched: run alone.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, servable.run, sig, inputs)
        size = sizes.pop()
        if size > self.params.max_batch_size:
            raise invalid(f"Task size {size} is larger than maximum input batch size "
                          f"{self.params.max_batch_size}")
        layout = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(inputs.items()))
        key = (id(servable), sig.name, layout)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue(self, servable, sig)
        fut = asyncio.get_running_loop().create_future()
        q.put(_Task(inputs, size, fut, time.monotonic()))
        return await fut
