"""The five reliability runs (hot swap, backend crash, rolling gateway restart, memory, overload) and the
fuzz tests at benchmark size. Each starts real processes on 127.0.0.1 through the one launcher
(tfgate.serving.processes), is bounded in time and request count, and returns its figures with `pass`.
tests/reliability/test_scenarios.py runs the same functions scaled down."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from tfgate.serving import processes
from tfgate.serving.processes import model_config_text
from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .load import OK, Load, StatusMonitor, half_request, pct, rss_mb, run_async, summary
from .models import make_half, make_housing

REPO = Path(__file__).resolve().parents[2]


def model_server(workdir: Path, config_text: str, name: str = "ms", flags: list[str] = ()) -> processes.ModelServer:
    """A model server (not started) on a fixed free port, so a restart comes back where it was."""
    return processes.model_server(workdir, model_config=config_text, rest=False, name=name,
                                  flags=["--grpc_shutdown_grace_seconds=5", *flags])


def gateway(workdir: Path, models: dict, name: str = "gw", **extra) -> processes.GatewayProcess:
    """A gateway (not started) on a fixed free port; no metrics listener; drains for 1 s on SIGTERM."""
    config = {"metrics_listen": "", "shutdown": {"readiness_seconds": 1.0, "grace_seconds": 10}, "models": models,
              **extra}
    return processes.gateway(workdir, config, name=name)


def build_models(workdir: Path, half_versions=(1,), housing: bool = False) -> dict[str, Path]:
    """Staged tiny models: half (y = 0.5 x + version) and optionally housing; returns base paths."""
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
# 1. Hot swap


def hot_swap(workdir: Path, concurrency: int = 32, steady_seconds: float = 15, swap_seconds: float = 60,
             max_requests: int = 400_000) -> dict:
    """Publishes versions 2, 3, 4 and moves label `stable` 1 -> 2 -> 3 while `concurrency` callers ask
    for the latest version and for `stable` through the gateway."""
    bases = build_models(workdir, half_versions=(1,))
    staging = workdir / "staging"
    staging.mkdir(exist_ok=True)
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
        a.wait_ready()
        gw.start()
        load = Load(gw.target, deadline=10, retries=3)

        def healthy_targets() -> int:
            with grpc.insecure_channel(gw.target) as ch:
                return pb_grpc.InferenceGatewayStub(ch).GetModel(pb.GetModelRequest(name="half"),
                                                                  timeout=5).model.healthy_targets

        def crash():
            timeline["kill"] = time.monotonic()
            a.send_signal(signal.SIGKILL)
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
        # Reconnect backoff well under `pause`: the client must see a restarted gateway as READY before
        # the next one drains (gRPC's default backoff grows to 120 s, so it might not for seconds).
        load = Load(target, deadline=10, retries=3,
                    channel_options=(("grpc.service_config", service_config), ("grpc.enable_retries", 0),
                                     ("grpc.initial_reconnect_backoff_ms", 100),
                                     ("grpc.max_reconnect_backoff_ms", 250)))

        def roll():
            time.sleep(pause)
            for g in gws:
                events.append(f"SIGTERM {g.name}")
                g.send_signal(signal.SIGTERM)
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
    passing = sum(int(x) for x in re.findall(r"(\d+) passing,", proc.stdout))
    return {"examples_requested": examples, "passing_examples": passing, "pytest": tail,
            "rest_json_mb": int(env["TFGATE_FUZZ_JSON_MB"]), "failures": failures, "log": str(log),
            "seconds": round(time.monotonic() - t, 1), "pass": proc.returncode == 0}


SCENARIOS = {"hot_swap": hot_swap, "backend_crash": backend_crash, "rolling_restart": rolling_restart,
             "memory": memory, "overload": overload}
