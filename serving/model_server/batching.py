"""Server-side batching: concurrent requests for the same servable, signature and input layout are
merged into one call, padded up to an allowed batch size, and split back.

Like TF Serving's BasicBatchScheduler: a queue per (servable, signature, input layout); a batch closes
when it reaches `max_batch_size` or its oldest task has waited `batch_timeout_micros`; at most
`num_batch_threads` batches of a queue run at once; a queue holding `max_enqueued_batches` full
batches answers UNAVAILABLE.

`max_batch_size` bounds a request's rows. With `enable_large_batch_splitting`, an executed batch is
bounded by `max_execution_batch_size` instead (default `max_batch_size`): a request that does not fit
the room left in the batch being formed is split, its first rows fill that batch and the rest go to
the next ones, and the caller gets its outputs merged back in order. Without it a batch is bounded by
`max_batch_size` and requests are never split.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import logging
import os
import time

import numpy as np

from ..status import ServingError, invalid, unavailable
from ..tensor_limits import MAX_MESSAGE_BYTES, array_bytes
from .servable import Servable, Signature

log = logging.getLogger("tfgate.model_server")

@dataclasses.dataclass
class BatchingParameters:
    # TF Serving's defaults when --enable_batching is given without a parameters file.
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: list[int] = dataclasses.field(default_factory=list)
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None  # unset: max_batch_size (used only when splitting)

    @classmethod
    def from_dict(cls, d: dict) -> BatchingParameters:
        p = cls()
        for k in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                  "allowed_batch_sizes", "pad_variable_length_inputs", "enable_large_batch_splitting",
                  "max_execution_batch_size"):
            if k in d:
                setattr(p, k, d[k])
        p.validate()
        if p.max_execution_batch_size is not None and not p.enable_large_batch_splitting:
            log.warning("max_execution_batch_size is ignored: it applies only with "
                        "enable_large_batch_splitting (as in TF Serving)")
        return p

    @property
    def execution_batch_size(self) -> int:
        """The most rows one executed batch holds."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size is not None:
            return self.max_execution_batch_size
        return self.max_batch_size

    def validate(self) -> None:
        if self.max_batch_size <= 0:
            raise invalid("max_batch_size must be positive")
        if self.num_batch_threads <= 0:
            raise invalid("num_batch_threads must be positive")
        if self.max_enqueued_batches == 0 and not self.enable_large_batch_splitting:
            self.max_enqueued_batches = 1  # TF Serving's rewrite: models with 0 here kept working
        if self.max_enqueued_batches <= 0:
            raise invalid(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
        if self.batch_timeout_micros < 0:
            raise invalid(f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}")
        sizes = self.allowed_batch_sizes
        if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
            raise invalid("allowed_batch_sizes entries must be monotonically increasing")
        if self.enable_large_batch_splitting:
            # TF Serving's checks (shared_batch_scheduler, batching_session) and their wording.
            limit = self.execution_batch_size
            if limit <= 0:
                raise invalid("max_execution_batch_size must be positive")
            if limit > self.max_batch_size:
                raise invalid("When enable_large_batch_splitting is true, max_batch_size (the input batch "
                              "size limit) must be greater than or equal to max_execution_batch_size; "
                              f"max_batch_size was {self.max_batch_size}, max_execution_batch_size {limit}")
            if sizes and sizes[-1] != limit:
                raise invalid("Last entry in allowed_batch_sizes must be equal to max_execution_batch_size; "
                              f"last entry was {sizes[-1]}; expected {limit}")
        elif sizes:
            if sizes[-1] != self.max_batch_size:
                raise invalid("Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                              f"{sizes[-1]}; expected {self.max_batch_size}")


@dataclasses.dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    size: int
    future: asyncio.Future
    enqueued: float
    # Futures of the leading rows split off into earlier batches, in row order; this task keeps the rest.
    pieces: list[asyncio.Future] | None = None


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
        limit = p.execution_batch_size
        if self.size + task.size > p.max_enqueued_batches * limit:
            raise unavailable("The batch scheduling queue to which this task was submitted is full")
        self.tasks.append(task)
        self.size += task.size
        # Wake waiting workers only when a batch is full: a wake-up per task costs more than the task.
        if self.waiters and self.size >= limit:
            for w in self.waiters:
                if not w.done():
                    w.set_result(None)
            self.waiters.clear()
        if self.workers < p.num_batch_threads:
            self.workers += 1
            asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        p = self.b.params
        limit = p.execution_batch_size
        split = p.enable_large_batch_splitting
        loop = asyncio.get_running_loop()
        try:
            while self.tasks:
                timeout = p.batch_timeout_micros / 1e6
                while timeout > 0 and self.tasks and self.size < limit:
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
                while self.tasks:
                    t = self.tasks[0]
                    if t.future.cancelled():  # its caller gave up (deadline, disconnect): skip the work
                        self.tasks.popleft()
                        self.size -= t.size
                        continue
                    room = limit - total
                    if t.size <= room:
                        self.tasks.popleft()
                    elif split and room > 0:
                        t = self._split_head(t, room, loop)
                    else:
                        break
                    self.size -= t.size
                    batch.append(t)
                    total += t.size
                if batch:
                    await self._run(batch, total)
        finally:
            self.workers -= 1

    @staticmethod
    def _split_head(t: _Task, rows: int, loop) -> _Task:
        """Split `t`'s first `rows` rows off as a task of their own; `t` stays queued with the rest."""
        piece = _Task({k: v[:rows] for k, v in t.inputs.items()}, rows, loop.create_future(), t.enqueued)
        t.inputs = {k: v[rows:] for k, v in t.inputs.items()}
        t.size -= rows
        if t.pieces is None:
            t.pieces = []
        t.pieces.append(piece.future)
        return piece

    async def _run(self, batch: list[_Task], total: int) -> None:
        p = self.b.params
        now = time.monotonic()
        target = total
        if p.allowed_batch_sizes:
            target = p.allowed_batch_sizes[bisect.bisect_left(p.allowed_batch_sizes, total)]
            # Padding copies a row: never more bytes of it than one request may decode (issue 13); a
            # batch that would need more runs at its real size.
            row = sum(array_bytes(batch[0].inputs[k][:1]) for k in self.sig.input_keys)
            if (target - total) * row > self.b.max_pad_bytes:
                target = total
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
    def __init__(self, params: BatchingParameters, executor, metrics=None,
                 max_pad_bytes: int = MAX_MESSAGE_BYTES):
        self.params = params
        self.executor = executor
        self.metrics = metrics
        self.max_pad_bytes = max_pad_bytes  # --max_request_tensor_bytes
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
        task = _Task(inputs, size, fut, time.monotonic())
        q.put(task)
        try:
            out = await fut
        except BaseException:
            _abandon(task.pieces)
            raise
        if not task.pieces:
            return out
        # Split: the pieces hold the leading rows in order, this task's own result the last ones.
        try:
            parts = [await f for f in task.pieces]
        except BaseException:
            _abandon(task.pieces)
            raise
        parts.append(out)
        return {k: np.concatenate([part[k] for part in parts], axis=0) for k in out}


def _abandon(futures: list[asyncio.Future] | None) -> None:
    """The caller is gone or one piece failed: pieces not yet run are skipped, and failures already
    recorded are marked as seen (asyncio would log them as never retrieved)."""
    for f in futures or ():
        if not f.done():
            f.cancel()
        elif not f.cancelled():
            f.exception()
