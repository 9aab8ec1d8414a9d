"""Reliability runs (issue 8): hot swap, backend crash, gateway rolling restart, memory soak, overload,
plus the fuzz tests at benchmark size. Real processes on 127.0.0.1 only; every loop is bounded in
time and request count. Writes benchmarks/results/reliability.json and reliability_*.png.

    python benchmarks/reliability.py            # full run (minutes)
    python benchmarks/reliability.py --quick    # seconds per scenario (what tests/reliability runs)
    python benchmarks/reliability.py --only hot_swap,overload

The scenario functions are imported by tests/reliability/test_scenarios.py with small sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from tfgate.v1 import gateway_pb2 as pb  # noqa: E402
from tfgate.v1 import gateway_pb2_grpc as pb_grpc  # noqa: E402
from tfgate.v1 import tensor_pb2  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
OK = "OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_serving(target: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{target} not SERVING after {timeout} s: {log.read_text(errors='replace')[-3000:]}")


class Proc:
    """A server subprocess on a fixed loopback port, so it can be restarted where it was."""

    def __init__(self, workdir: Path, name: str, cmd: list[str], port: int):
        self.workdir, self.name, self.cmd, self.port = workdir, name, cmd, port
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, wait: bool = True) -> Proc:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if wait:
            wait_serving(self.target, self.proc, self.log_path)
        return self

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 40) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def model_server(workdir: Path, config_text: str, name: str = "ms", flags: list[str] = (),
                 port: int | None = None) -> Proc:
    cfg = workdir / f"{name}.config"
    cfg.write_text(config_text)
    port = port or free_port()
    cmd = [sys.executable, "-m", "tfgate.clients.cli", "model-server", f"--port={port}", "--rest_api_port=0",
           "--bind_address=127.0.0.1", f"--model_config_file={cfg}", "--grpc_shutdown_grace_seconds=5",
           *flags]
    return Proc(workdir, name, cmd, port)


def gateway(workdir: Path, models: dict, name: str = "gw", port: int | None = None, **extra) -> Proc:
    port = port or free_port()
    cfg = {"listen": f"127.0.0.1:{port}", "metrics_listen": "",
           "shutdown": {"readiness_seconds": 1.0, "grace_seconds": 10}, "models": models, **extra}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Proc(workdir, name, [sys.executable, "-m", "tfgate.clients.cli", "gateway", "--config", str(path)], port)


def build_models(workdir: Path, half_versions=(1,), housing: bool = False) -> dict[str, Path]:
    """Staged tiny models: half (y = 0.5 x + version) and optionally housing; returns base paths."""
    from tests.reliability.models import make_half, make_housing

    bases = {"half": workdir / "models" / "half"}
    bases["half"].mkdir(parents=True, exist_ok=True)
    for v in half_versions:
        make_half(bases["half"], v)
    if housing:
        bases["housing"] = workdir / "models" / "housing"
        bases["housing"].mkdir(parents=True, exist_ok=True)
        make_housing(bases["housing"], 1)
    return bases


# ---------------------------------------------------------------------------------------------
# Load generation: grpc.aio, one process, each request recorded.


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


# ---------------------------------------------------------------------------------------------
# 1. Hot swap


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


def hot_swap(workdir: Path, concurrency: int = 32, steady_seconds: float = 15, swap_seconds: float = 60,
             max_requests: int = 400_000) -> dict:
    """Publishes versions 2, 3, 4 and moves label `stable` 1 -> 2 -> 3 while `concurrency` callers ask
    for the latest version and for `stable` through the gateway."""
    from tfgate.serving.processes import model_config_text

    bases = build_models(workdir, half_versions=(1,))
    staging = workdir / "staging"
    staging.mkdir(exist_ok=True)
    from tests.reliability.models import make_half
    for v in (2, 3, 4):
        make_half(staging, v)
    policy = "latest { num_versions: 2 }"

    def write_config(stable: int):
        text = model_config_text({"half": str(bases["half"])}, {"half": {"stable": stable}}, policy)
        tmp = workdir / "ms.config.tmp"
        tmp.write_text(text)
        os.replace(tmp, workdir / "ms.config")

    ms = model_server(workdir, model_config_text({"half": str(bases["half"])}, {"half": {"stable": 1}}, policy),
                      flags=["--file_system_poll_wait_seconds=1", "--model_config_file_poll_wait_seconds=1"])
    gw = gateway(workdir, {"half": {"targets": [ms.target]}})
    events: list[dict] = []
    try:
        ms.start()
        gw.start()
        monitor = StatusMonitor(ms.target, "half")
        load = Load(gw.target, deadline=10, labels=("", "stable"))

        def mark(what):
            events.append({"t": time.monotonic(), "event": what})

        def label_is(v: int) -> bool:
            with grpc.insecure_channel(gw.target) as ch:
                stub = pb_grpc.InferenceGatewayStub(ch)
                return stub.Predict(half_request(1.0, "stable"), timeout=5).served_by.version == v

        def driver(stop: threading.Event):
            # Spread the five changes over the swap phase; each waits until the server shows it.
            step = swap_seconds / 6
            plan = [("publish", 2), ("label", 2), ("publish", 3), ("label", 3), ("publish", 4)]
            t_start = time.monotonic()
            for k, (kind, v) in enumerate(plan, start=1):
                while time.monotonic() < t_start + k * step and not stop.is_set():
                    time.sleep(0.05)
                if kind == "publish":
                    os.rename(staging / str(v), bases["half"] / str(v))
                    mark(f"published v{v}")
                    ok = monitor.wait_for(lambda a, v=v: v in a, 60)
                    mark(f"v{v} AVAILABLE" if ok else f"v{v} NOT AVAILABLE after 60 s")
                else:
                    write_config(v)
                    mark(f"label stable -> {v} written")
                    end = time.monotonic() + 30
                    while time.monotonic() < end and not label_is(v):
                        time.sleep(0.1)
                    mark(f"label stable resolves to {v}")

        async def main():
            load.connect()
            await load.closed(concurrency, min(3.0, steady_seconds), max_requests)  # warm-up, not counted
            load.records.clear()
            t_steady = time.monotonic()
            await load.closed(concurrency, steady_seconds, max_requests)
            n_steady = len(load.records)
            stop = threading.Event()
            t_swap = time.monotonic()
            th = threading.Thread(target=driver, args=(stop,), daemon=True)
            th.start()
            await load.closed(concurrency, swap_seconds, max_requests)
            # Keep the load on until the last change has landed (bounded).
            limit = time.monotonic() + 90
            while th.is_alive() and time.monotonic() < limit:
                await load.closed(concurrency, 1.0, max_requests)
            stop.set()
            th.join(5)
            await load.close()
            return t_steady, t_swap, n_steady

        t_steady, t_swap, n_steady = run_async(main())
        monitor.close()
        steady, swap = load.records[:n_steady], load.records[n_steady:]
        untagged = [r for r in swap + steady if r.code == OK
                    and not monitor.was_available(r.version, r.t0, r.t1, slack=monitor.interval * 2)]
        s_steady, s_swap = summary(steady), summary(swap)
        versions: dict[int, int] = {}
        for r in swap:
            if r.code == OK:
                versions[r.version] = versions.get(r.version, 0) + 1
        ratio = s_swap["p99_ms"] / s_steady["p99_ms"] if s_steady["p99_ms"] else float("inf")
        out = {
            "concurrency": concurrency, "steady_seconds": steady_seconds, "swap_seconds": round(
                max(r.t1 for r in swap) - t_swap, 1) if swap else 0,
            "steady": s_steady, "swap": s_swap, "p99_ratio": round(ratio, 2),
            "versions_served_during_swap": {str(k): v for k, v in sorted(versions.items())},
            "responses_with_version_not_available": len(untagged),
            "events": [{"t": round(e["t"] - t_swap, 2), "event": e["event"]} for e in events],
            "final_available": sorted(monitor.available()),
        }
        out["pass"] = (s_swap["failed"] == 0 and s_steady["failed"] == 0 and ratio <= 3.0 and not untagged
                       and s_swap["wrong_answers"] == 0 and set(versions) >= {2, 3, 4}
                       and not any("NOT" in e["event"] for e in events))
        return out
    finally:
        gw.stop()
        ms.stop()


# ---------------------------------------------------------------------------------------------
# 2. Backend crash


def backend_crash(workdir: Path, concurrency: int = 16, seconds: float = 40, kill_at: float = 8,
                  max_requests: int = 400_000, replica_b: str | None = None, half_base: Path | None = None) -> dict:
    """Two replicas behind the gateway; replica A gets SIGKILL at `kill_at` s and is restarted on the
    same port. Callers retry UNAVAILABLE like GatewayClient (3 retries). `replica_b`/`half_base`: a
    running server for B and the half model it serves (tests share them)."""
    from tfgate.serving.processes import model_config_text

    text = model_config_text({"half": str(half_base or build_models(workdir)["half"])})
    a = model_server(workdir, text, name="ms-a")
    b = None if replica_b else model_server(workdir, text, name="ms-b")
    gw = gateway(workdir, {"half": {"targets": [a.target, replica_b or b.target]}},
                 backend={"ejection": {"consecutive_failures": 3, "min_seconds": 1, "max_seconds": 10,
                                       "probe_interval_seconds": 0.25}})
    timeline: dict[str, float] = {}
    try:
        a.start(wait=False)
        if b is not None:
            b.start()
        wait_serving(a.target, a.proc, a.log_path)
        gw.start()
        load = Load(gw.target, deadline=10, retries=3)

        def healthy_targets() -> int:
            with grpc.insecure_channel(gw.target) as ch:
                return pb_grpc.InferenceGatewayStub(ch).GetModel(pb.GetModelRequest(name="half"),
                                                                  timeout=5).model.healthy_targets

        def crash():
            timeline["kill"] = time.monotonic()
            a.signal(signal.SIGKILL)
            a.proc.wait(10)
            timeline["killed"] = time.monotonic()
            a.start()  # same port
            timeline["restarted_serving"] = time.monotonic()
            end = time.monotonic() + 60
            while time.monotonic() < end:
                if healthy_targets() == 2:
                    timeline["gateway_healthy_2"] = time.monotonic()
                    break
                time.sleep(0.1)

        async def main():
            load.connect()
            await load.closed(concurrency, 2.0, max_requests)  # warm-up
            load.records.clear()
            t0 = time.monotonic()
            th = None

            async def killer():
                nonlocal th
                await asyncio.sleep(kill_at)
                th = threading.Thread(target=crash, daemon=True)
                th.start()

            k = asyncio.ensure_future(killer())
            await load.closed(concurrency, seconds, max_requests)
            await k
            limit = time.monotonic() + 120
            while th.is_alive() and time.monotonic() < limit:  # keep the load on until recovered
                await load.closed(concurrency, 1.0, max_requests)
            await load.closed(concurrency, 2.0, max_requests)  # and a little after
            await load.close()
            return t0

        t0 = run_async(main())
        s = summary(load.records)
        kill = timeline.get("kill", float("nan"))
        after = [r for r in load.records if r.t0 >= timeline.get("gateway_healthy_2", float("inf"))]
        around = [(r.t1 - r.t0) * 1000 for r in load.records if kill - 1 <= r.t0 <= kill + 3 and r.code == OK]
        out = {"concurrency": concurrency, **s,
               "kill_at_s": round(kill - t0, 2),
               "restart_seconds": round(timeline.get("restarted_serving", float("nan")) - kill, 2),
               "recovery_seconds": round(timeline.get("gateway_healthy_2", float("nan")) - kill, 2),
               "max_latency_around_kill_ms": round(max(around), 1) if around else None,
               "after_recovery": summary(after)}
        out["pass"] = s["failed"] == 0 and s["wrong_answers"] == 0 and "gateway_healthy_2" in timeline
        return out
    finally:
        gw.stop()
        a.stop()
        if b is not None:
            b.stop()


# ---------------------------------------------------------------------------------------------
# 3. Rolling restart of two gateway processes


def rolling_restart(workdir: Path, concurrency: int = 16, pause: float = 3.0, max_requests: int = 400_000,
                    backend_target: str | None = None) -> dict:
    """Two gateway processes, one target with both addresses (round robin + client-side health
    checking); each gets SIGTERM in turn, drains, exits and is started again on its port."""
    from tfgate.serving.processes import model_config_text

    ms = None
    if backend_target is None:
        ms = model_server(workdir, model_config_text({"half": str(build_models(workdir)["half"])}))
    gws = [gateway(workdir, {"half": {"targets": [backend_target or ms.target]}}, name=f"gw-{i}") for i in (1, 2)]
    exits: list[int | None] = []
    events: list[str] = []
    try:
        if ms is not None:
            ms.start()
        for g in gws:
            g.start()
        service_config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}],
                                     "healthCheckConfig": {"serviceName": ""}})
        target = "ipv4:" + ",".join(g.target for g in gws)
        load = Load(target, deadline=10, retries=3,
                    channel_options=(("grpc.service_config", service_config), ("grpc.enable_retries", 0)))

        def roll():
            time.sleep(pause)
            for g in gws:
                events.append(f"SIGTERM {g.name}")
                g.signal(signal.SIGTERM)
                exits.append(g.proc.wait(60))
                events.append(f"{g.name} exited {exits[-1]}")
                g.start()
                events.append(f"{g.name} SERVING again")
                time.sleep(pause)

        async def main():
            load.connect()
            await load.closed(concurrency, 1.0, max_requests)
            load.records.clear()
            th = threading.Thread(target=roll, daemon=True)
            th.start()
            limit = time.monotonic() + 240
            while th.is_alive() and time.monotonic() < limit:
                await load.closed(concurrency, 0.5, max_requests)
            await load.close()

        run_async(main())
        s = summary(load.records)
        out = {"concurrency": concurrency, **s, "exit_codes": exits, "events": events}
        out["pass"] = s["failed"] == 0 and exits == [0, 0] and s["wrong_answers"] == 0
        return out
    finally:
        for g in gws:
            g.stop()
        if ms is not None:
            ms.stop()


# ---------------------------------------------------------------------------------------------
# 4. Memory


def memory(workdir: Path, requests: int = 200_000, warmup: int = 5_000, concurrency: int = 16,
           max_seconds: float = 900, png: Path | None = None, existing: tuple[str, int, int] | None = None) -> dict:
    """`requests` requests (Predict and PredictHousing alternately) after `warmup`; RSS of the model
    server and the gateway sampled every 0.5 s. Stops at `max_seconds` and reports the count reached.
    `existing`: (gateway target, gateway pid, model server pid) of running processes to use instead."""
    from tfgate.serving.processes import model_config_text

    ms = gw = None
    if existing is None:
        bases = build_models(workdir, housing=True)
        ms = model_server(workdir, model_config_text({k: str(v) for k, v in bases.items()}))
        gw = gateway(workdir, {"half": {"targets": [ms.target]}, "housing": {"targets": [ms.target]}})
    samples: list[tuple[float, int, float, float]] = []
    try:
        if existing is None:
            ms.start()
            gw.start()
            existing = (gw.target, gw.pid, ms.pid)
        gw_target, gw_pid, ms_pid = existing
        load = Load(gw_target, deadline=10, mix_housing=True)
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                samples.append((time.monotonic(), len(load.records), rss_mb(ms_pid), rss_mb(gw_pid)))
                stop.wait(0.5)

        async def main():
            load.connect()
            await load.closed(concurrency, max_seconds, warmup)
            load.records.clear()
            th = threading.Thread(target=sampler, daemon=True)
            th.start()
            t0 = time.monotonic()
            await load.closed(concurrency, max_seconds, requests)
            elapsed = time.monotonic() - t0
            samples.append((time.monotonic(), len(load.records), rss_mb(ms_pid), rss_mb(gw_pid)))
            stop.set()
            th.join(5)
            await load.close()
            return t0, elapsed

        t0, elapsed = run_async(main())
        s = summary(load.records)
        base_ms, base_gw = samples[0][2], samples[0][3]
        growth_ms = max(x[2] for x in samples) - base_ms
        growth_gw = max(x[3] for x in samples) - base_gw
        if png:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 4))
            ax.plot([x[1] for x in samples], [x[2] for x in samples], label="model server")
            ax.plot([x[1] for x in samples], [x[3] for x in samples], label="gateway")
            ax.set_xlabel("requests after warm-up")
            ax.set_ylabel("RSS (MB)")
            ax.set_title(f"RSS over {len(load.records):,} requests")
            ax.legend()
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(png, dpi=100)
            plt.close(fig)
        out = {"requests_target": requests, "requests_done": len(load.records), "warmup": warmup,
               "seconds": round(elapsed, 1), "rps": round(len(load.records) / elapsed, 1), **s,
               "model_server_rss_mb": {"start": round(base_ms, 1), "end": round(samples[-1][2], 1),
                                       "max_growth": round(growth_ms, 1)},
               "gateway_rss_mb": {"start": round(base_gw, 1), "end": round(samples[-1][3], 1),
                                  "max_growth": round(growth_gw, 1)},
               "curve": [[x[1], round(x[2], 1), round(x[3], 1)] for x in samples[:: max(1, len(samples) // 200)]]}
        out["pass"] = s["failed"] == 0 and growth_ms <= 50 and growth_gw <= 50 and s["wrong_answers"] == 0
        return out
    finally:
        for p in (gw, ms):
            if p is not None:
                p.stop()


# ---------------------------------------------------------------------------------------------
# 5. Overload


def sheds_fast(phase: dict, steady: dict, deadline: float) -> bool:
    """Shedding is quick when a refused request typically costs less than a served one at the
    sustainable rate, and even the slowest refusals come back well inside the deadline."""
    if not phase["shed"]:
        return True
    return phase["shed_p50_ms"] <= steady["p50_ms"] and phase["shed_p99_ms"] <= 250 * deadline


def overload(workdir: Path, phase_seconds: float = 20, deadline: float = 1.0, slow_n: int = 40,
             concurrency_limit: int = 8, max_requests: int = 200_000, backend_target: str | None = None) -> dict:
    """Measure the sustainable rate R (closed loop), then offer 2R open loop, then R/2.

    The backend does real work per request (`slow` signature, `slow_n` 200x200 matmuls), so the
    limit is the servers, not this load generator. The gateway's max_concurrent_requests is what
    sheds the excess (RESOURCE_EXHAUSTED) instead of queueing it."""
    from tfgate.serving.processes import model_config_text

    ms = None
    if backend_target is None:
        bases = build_models(workdir)
        ms = model_server(workdir, model_config_text({"half": str(bases["half"])}))
    gw = gateway(workdir, {"half": {"targets": [backend_target or ms.target], "deadline_ms": int(deadline * 1000)}},
                 max_concurrent_requests=concurrency_limit)
    try:
        if ms is not None:
            ms.start()
        gw.start()

        def make():
            return Load(gw.target, deadline=deadline, signature="slow", slow_n=slow_n)

        async def main():
            cal = make()
            cal.connect()
            await cal.closed(concurrency_limit, 1.0, max_requests)  # warm-up
            cal.records.clear()
            t = time.monotonic()
            await cal.closed(concurrency_limit, phase_seconds, max_requests)
            rate = sum(1 for r in cal.records if r.code == OK) / (time.monotonic() - t)
            await cal.close()
            phases = {}
            for name, mult in (("overload_2x", 2.0), ("recovery_half", 0.5)):
                ld = make()
                ld.connect()
                t = time.monotonic()
                await ld.open(rate * mult, phase_seconds, max_requests)
                phases[name] = (ld.records, time.monotonic() - t, rate * mult)
                await ld.close()
            return rate, cal.records, phases

        rate, cal, phases = run_async(main())
        out: dict = {"sustainable_rps": round(rate, 1), "deadline_s": deadline,
                     "gateway_max_concurrent_requests": concurrency_limit, "calibration": summary(cal)}
        for name, (recs, secs, offered) in phases.items():
            s = summary(recs)
            shed = [(r.t1 - r.t0) * 1000 for r in recs if r.code in ("RESOURCE_EXHAUSTED", "UNAVAILABLE")]
            all_lat = [(r.t1 - r.t0) for r in recs]
            ok = [r for r in recs if r.code == OK]
            span = (max(r.t1 for r in recs) - min(r.t0 for r in recs)) if recs else secs
            out[name] = {**s, "offered_rps": round(offered, 1), "goodput_rps": round(len(ok) / span, 1),
                         "shed": len(shed), "shed_p50_ms": round(pct(shed, 50), 2) if shed else None,
                         "shed_p99_ms": round(pct(shed, 99), 2) if shed else None,
                         "deadline_exceeded": s["codes"].get("DEADLINE_EXCEEDED", 0),
                         "max_latency_s": round(max(all_lat), 3) if all_lat else None}
        o, r = out["overload_2x"], out["recovery_half"]
        allowed = {OK, "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"}
        out["pass"] = bool(
            o["shed"] > 0 and set(o["codes"]) <= allowed and o["max_latency_s"] <= deadline + 0.25
            and sheds_fast(o, out["calibration"], deadline) and o["goodput_rps"] >= 0.5 * rate
            and o["deadline_exceeded"] <= 0.01 * o["requests"]
            and r["failed"] == 0 and r["goodput_rps"] >= 0.8 * r["offered_rps"])
        return out
    finally:
        gw.stop()
        if ms is not None:
            ms.stop()


# ---------------------------------------------------------------------------------------------
# Fuzzing at benchmark size: the test suite's hypothesis tests with the `bench` profile.


def fuzz(examples: int) -> dict:
    t = time.monotonic()
    env = {**os.environ, "TFGATE_HYPOTHESIS_PROFILE": "bench", "TFGATE_FUZZ_EXAMPLES": str(examples),
           "TFGATE_FUZZ_JSON_MB": "100" if examples >= 1000 else "4"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/reliability/test_fuzz.py", "-o", "timeout=3600",
                           "--hypothesis-show-statistics"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    log = Path(tempfile.gettempdir()) / "tfgate-reliability-fuzz.log"
    log.write_text(proc.stdout + proc.stderr)
    failures = [line[:500] for line in proc.stdout.splitlines() if line.startswith(("FAILED", "E   "))][:20]
    passing = sum(int(x) for x in __import__("re").findall(r"(\d+) passing,", proc.stdout))
    return {"examples_requested": examples, "passing_examples": passing, "pytest": tail,
            "rest_json_mb": int(env["TFGATE_FUZZ_JSON_MB"]), "failures": failures, "log": str(log),
            "seconds": round(time.monotonic() - t, 1), "pass": proc.returncode == 0}


QUICK = {
    "hot_swap": {"concurrency": 32, "steady_seconds": 4, "swap_seconds": 12},
    "backend_crash": {"concurrency": 8, "seconds": 6, "kill_at": 2},
    "rolling_restart": {"concurrency": 8, "pause": 1.5},
    "memory": {"requests": 3_000, "warmup": 500, "concurrency": 8, "max_seconds": 60},
    "overload": {"phase_seconds": 4, "slow_n": 30},
}
FULL = {
    "hot_swap": {"concurrency": 32, "steady_seconds": 20, "swap_seconds": 60},
    "backend_crash": {"concurrency": 16, "seconds": 40, "kill_at": 10},
    "rolling_restart": {"concurrency": 16, "pause": 5},
    "memory": {"requests": 200_000, "warmup": 5_000, "concurrency": 16, "max_seconds": 600},
    "overload": {"phase_seconds": 20, "slow_n": 40},
}
SCENARIOS = {"hot_swap": hot_swap, "backend_crash": backend_crash, "rolling_restart": rolling_restart,
             "memory": memory, "overload": overload}


def table(r: dict) -> str:
    """The README's table, from reliability.json."""
    rows = ["| Run | Result | Figures |", "|---|---|---|"]

    def ok(name):
        return "pass" if r.get(name, {}).get("pass") else "FAIL" if name in r else "not run"

    if "hot_swap" in r and "swap" in r["hot_swap"]:
        h = r["hot_swap"]
        rows.append(f"| 1. Hot swap (c={h['concurrency']}, 3 versions published, label moved twice) | "
                    f"{ok('hot_swap')} | "
                    f"{h['steady']['requests'] + h['swap']['requests']:,} requests, "
                    f"{h['steady']['failed'] + h['swap']['failed']} failed; p99 steady {h['steady']['p99_ms']} ms, "
                    f"during swap {h['swap']['p99_ms']} ms ({h['p99_ratio']}x); versions served "
                    f"{h['versions_served_during_swap']}; {h['responses_with_version_not_available']} responses "
                    f"tagged with a version not AVAILABLE |")
    if "backend_crash" in r and "requests" in r["backend_crash"]:
        b = r["backend_crash"]
        rows.append(f"| 2. Backend SIGKILL + restart (2 replicas, c={b['concurrency']}) | {ok('backend_crash')} | "
                    f"{b['requests']:,} requests, {b['failed']} failed, {b['retried']} retried by the client; "
                    f"replica back SERVING {b['restart_seconds']} s after the kill, gateway healthy on both "
                    f"{b['recovery_seconds']} s after; worst latency around the kill "
                    f"{b['max_latency_around_kill_ms']} ms |")
    if "rolling_restart" in r and "requests" in r["rolling_restart"]:
        g = r["rolling_restart"]
        rows.append(f"| 3. Rolling SIGTERM restart of 2 gateways (c={g['concurrency']}) | {ok('rolling_restart')} | "
                    f"{g['requests']:,} requests, {g['failed']} failed, {g['retried']} retried; exit codes "
                    f"{g['exit_codes']}; p99 {g['p99_ms']} ms |")
    if "memory" in r and "requests_done" in r["memory"]:
        m = r["memory"]
        rows.append(f"| 4. Memory ({m['requests_done']:,} of {m['requests_target']:,} requests after "
                    f"{m['warmup']:,} warm-up, {m['seconds']} s) | {ok('memory')} | "
                    f"model server RSS {m['model_server_rss_mb']['start']} -> {m['model_server_rss_mb']['end']} MB "
                    f"(max growth {m['model_server_rss_mb']['max_growth']} MB); gateway "
                    f"{m['gateway_rss_mb']['start']} -> {m['gateway_rss_mb']['end']} MB (max growth "
                    f"{m['gateway_rss_mb']['max_growth']} MB); {m['failed']} failed; "
                    f"[curve](benchmarks/results/reliability_memory.png) |")
    if "overload" in r and "overload_2x" in r["overload"]:
        o = r["overload"]
        x, y = o["overload_2x"], o["recovery_half"]
        rows.append(f"| 5. Overload (sustainable {o['sustainable_rps']} req/s, 2x offered, deadline "
                    f"{o['deadline_s']} s) | {ok('overload')} | at 2x: {x['ok']:,} OK, {x['shed']:,} shed "
                    f"(p99 {x['shed_p99_ms']} ms), {x['deadline_exceeded']} DEADLINE_EXCEEDED, slowest answer "
                    f"{x['max_latency_s']} s, goodput {x['goodput_rps']} req/s; back at 0.5x: {y['failed']} failed, "
                    f"{y['goodput_rps']} of {y['offered_rps']} req/s |")
    if "fuzz" in r and "pytest" in r["fuzz"]:
        f = r["fuzz"]
        rows.append(f"| Fuzzing (hypothesis, gRPC + REST, {f.get('rest_json_mb', '?')} MB JSON) | {ok('fuzz')} | "
                    f"{f['passing_examples']:,} cases; pytest: {f['pytest']} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds per scenario instead of minutes")
    ap.add_argument("--only", default="", help="comma-separated scenarios (and/or 'fuzz')")
    ap.add_argument("--fuzz-examples", type=int, default=10_000)
    ap.add_argument("--out", default=str(RESULTS / "reliability.json"))
    ap.add_argument("--table", action="store_true", help="print the README table from --out and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    sizes = QUICK if args.quick else FULL
    names = [n for n in args.only.split(",") if n] or [*SCENARIOS, "fuzz"]
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if args.only and out_path.exists() else {}
    results.update({"mode": "quick" if args.quick else "full", "cpus": os.cpu_count(),
                    "command": "python benchmarks/reliability.py" + (" --quick" if args.quick else "")})
    for name in names:
        t = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"tfgate-rel-{name}-"))
        print(f"== {name}", flush=True)
        try:
            if name == "fuzz":
                res = fuzz(args.fuzz_examples if not args.quick else 300)
            else:
                kwargs = dict(sizes[name])
                if name == "memory":
                    kwargs["png"] = out_path.parent / "reliability_memory.png"
                res = SCENARIOS[name](work, **kwargs)
            res["wall_seconds"] = round(time.monotonic() - t, 1)
        except Exception as exc:  # a scenario that cannot run is a failed scenario, with the reason
            res = {"pass": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results[name] = res
        print(json.dumps({k: v for k, v in res.items() if k != "curve"}, indent=1), flush=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0 if all(results[n].get("pass") for n in names) else 1


if __name__ == "__main__":
    sys.exit(main())
