"""Load for the reliability runs: requests to the gateway from grpc.aio in one process, each recorded
(start, end, status, the version that answered, whether the answer is the one that version gives),
their summary, and what the runs watch besides (RSS from /proc, the model server's version states)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc
from tfgate.v1 import tensor_pb2

OK = "OK"


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Rec:
    t0: float
    t1: float
    code: str
    version: int = 0
    attempts: int = 1
    correct: bool = True
    label: str = ""


def half_request(x: float, label: str = "", signature: str = "", n: int = 0) -> pb.PredictRequest:
    ref = pb.ModelRef(name="half", signature_name=signature)
    if label:
        ref.label = label
    req = pb.PredictRequest(model=ref)
    req.inputs["x"].CopyFrom(tensor_pb2.Tensor(dtype=1, shape=[1], content=np.float32([x]).tobytes()))
    if n:
        req.inputs["n"].CopyFrom(tensor_pb2.Tensor(dtype=5, shape=[1], content=np.int32([n]).tobytes()))
    return req


def housing_request(i: int) -> pb.PredictHousingRequest:
    rec = pb.HousingRecord(longitude=-122.2, latitude=37.8, housing_median_age=41, total_rooms=880,
                           population=322, households=126, median_income=float(i % 13),
                           ocean_proximity="NEAR BAY")
    if i % 2:
        rec.total_bedrooms = 129.0
    return pb.PredictHousingRequest(records=[rec])


@dataclass
class Load:
    """Sends requests to the gateway and records each one. `retries`: extra attempts on UNAVAILABLE
    (what GatewayClient does), within the request's deadline."""

    target: str
    deadline: float = 5.0
    retries: int = 0
    labels: tuple[str, ...] = ("",)
    signature: str = ""
    slow_n: int = 0
    mix_housing: bool = False
    records: list[Rec] = field(default_factory=list)
    channel_options: tuple = ()
    counter: int = 0

    def connect(self):
        self.channel = grpc.aio.insecure_channel(self.target, options=list(self.channel_options))
        self.stub = pb_grpc.InferenceGatewayStub(self.channel)

    async def one(self) -> Rec:
        i = self.counter
        self.counter += 1
        label = self.labels[i % len(self.labels)]
        housing = self.mix_housing and i % 2 == 1
        x = float(i % 1000)
        t0 = time.monotonic()
        end = t0 + self.deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                if housing:
                    resp = await self.stub.PredictHousing(housing_request(i), timeout=max(0.01, end - time.monotonic()))
                    v = resp.served_by.version
                    ok = abs(resp.median_house_values[0] - (1000.0 * v + float(i % 13))) < 1e-3
                else:
                    resp = await self.stub.Predict(half_request(x, label, self.signature, self.slow_n),
                                                   timeout=max(0.01, end - time.monotonic()))
                    v = resp.served_by.version
                    y = np.frombuffer(resp.outputs["y"].content, np.float32)[0]
                    ok = abs(float(y) - (0.5 * x + v)) < 1e-3  # the answer matches the version tag
                rec = Rec(t0, time.monotonic(), OK, v, attempt, ok, label)
                break
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
                left = end - time.monotonic()
                if code == "UNAVAILABLE" and attempt <= self.retries and left > 0.05:
                    await asyncio.sleep(min(left / 2, 0.02 * 2 ** attempt * np.random.random()))
                    continue
                rec = Rec(t0, time.monotonic(), code, 0, attempt, True, label)
                break
        self.records.append(rec)
        return rec

    async def closed(self, concurrency: int, seconds: float, max_requests: int, stop: asyncio.Event | None = None):
        """`concurrency` callers back to back until `seconds` or `max_requests` (or `stop`)."""
        end = time.monotonic() + seconds
        budget = [max_requests]

        async def worker():
            while time.monotonic() < end and budget[0] > 0 and not (stop and stop.is_set()):
                budget[0] -= 1
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def open(self, rate: float, seconds: float, max_requests: int):
        """Open loop: requests start on schedule whatever the answers do (what overload looks like)."""
        n = min(max_requests, int(rate * seconds))
        t_start = time.monotonic()
        tasks = []
        for k in range(n):
            delay = t_start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one()))
        await asyncio.gather(*tasks)

    async def close(self):
        await self.channel.close()


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summary(recs: list[Rec]) -> dict:
    lat = [(r.t1 - r.t0) * 1000 for r in recs if r.code == OK]
    codes: dict[str, int] = {}
    for r in recs:
        codes[r.code] = codes.get(r.code, 0) + 1
    return {"requests": len(recs), "ok": codes.get(OK, 0), "failed": len(recs) - codes.get(OK, 0),
            "codes": codes, "wrong_answers": sum(1 for r in recs if r.code == OK and not r.correct),
            "retried": sum(1 for r in recs if r.attempts > 1),
            "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else None}


def run_async(coro):
    return asyncio.run(coro)


class StatusMonitor:
    """Polls the model server's GetModelStatus every `interval` s: (time, set of AVAILABLE versions)."""

    def __init__(self, target: str, model: str, interval: float = 0.05):
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        self.samples: list[tuple[float, frozenset[int]]] = []
        self._stop = threading.Event()
        self._ch = grpc.insecure_channel(target)
        self._stub = model_service_pb2_grpc.ModelServiceStub(self._ch)
        self._req = get_model_status_pb2.GetModelStatusRequest()
        self._req.model_spec.name = model
        self.interval = interval
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                resp = self._stub.GetModelStatus(self._req, timeout=2)
                avail = frozenset(v.version for v in resp.model_version_status if v.state == 30)
                self.samples.append((time.monotonic(), avail))
            except grpc.RpcError:
                pass
            self._stop.wait(self.interval)

    def available(self) -> frozenset[int]:
        return self.samples[-1][1] if self.samples else frozenset()

    def wait_for(self, pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.available()):
                return True
            time.sleep(0.05)
        return False

    def was_available(self, version: int, t0: float, t1: float, slack: float) -> bool:
        return any(version in avail for t, avail in self.samples if t0 - slack <= t <= t1 + slack)

    def close(self):
        self._stop.set()
        self._t.join(5)
        self._ch.close()
