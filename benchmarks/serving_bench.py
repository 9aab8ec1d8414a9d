"""Serving benchmark: batch-1 Predict on the housing and fashion models.

Cases (each a `Case` run against a `Target`; add cases to `CASES`, e.g. the gateway's):
  (a) in_process   the serving signature run as the server runs it, in a loop in the load process (the limit)
  (b) server       `tfgate model-server` without batching, gRPC
  (c) batching     `tfgate model-server --enable_batching`, gRPC
  (b/c) + REST     the same servers over REST, at concurrency 8
  (d) gateway      `tfgate gateway` in front of (b): TF Serving Predict through its pass-through
  (e) gateway      the same gateway's typed API: PredictHousing / ClassifyFashion
  (f) floor        a bare grpc.aio server answering without work (grpc_floor.py echo): what
                   Python gRPC alone costs here, the floor under (b) and (c)
  (g) floor        a bare grpc.aio proxy in front of (b) (grpc_floor.py proxy): the floor under (d)
Load comes from a separate asyncio process (grpc.aio / aiohttp), bounded by time. Writes
benchmarks/results/serving.json and benchmarks/results/serving_latency.png.

    python benchmarks/serving_bench.py --housing models/housing --fashion models/fashion [--duration 3] [--repeat 3]
    python benchmarks/serving_bench.py --cases b,d,e --out benchmarks/results/gateway.json   # gateway only
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

HOUSING_ROW = {
    "longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
    "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
}
# Tuned here as TF Serving's guide says (raise the timeout until throughput stops growing): with the
# load generator on the same 2 cores, one batch thread and a 5 ms window gave about 1.25x the QPS
# of two threads and 2 ms; the model's ops still use both cores.
BATCHING_PARAMS = """max_batch_size { value: 64 }
batch_timeout_micros { value: 5000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 8
allowed_batch_sizes: 16
allowed_batch_sizes: 32
allowed_batch_sizes: 64
"""


# ---- requests (batch 1)
def inputs_for(model: str) -> dict[str, np.ndarray]:
    if model == "housing":
        d = {k: np.array([v], np.float32) for k, v in HOUSING_ROW.items()}
        d["ocean_proximity"] = np.array([b"NEAR BAY"], object)
        return d
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, [1, 28, 28], dtype=np.uint8)}


def rest_body(model: str) -> bytes:
    if model == "housing":
        row = dict(HOUSING_ROW, ocean_proximity="NEAR BAY")
    else:
        row = {"image": inputs_for(model)["image"][0].tolist()}
    return json.dumps({"instances": [row]}).encode()


def grpc_request_bytes(model: str) -> bytes:
    from tensorflow_serving.apis import predict_pb2

    from tfgate.serving.model_server import tensors

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    for k, v in inputs_for(model).items():
        req.inputs[k].CopyFrom(tensors.to_proto(v, as_content=v.dtype != object))
    return req.SerializeToString()


def typed_request(model: str) -> tuple[str, bytes]:
    """(e): the gateway's typed method and a batch-1 request equal to `inputs_for(model)`."""
    from tfgate.v1 import gateway_pb2 as pb

    if model == "housing":
        req = pb.PredictHousingRequest(records=[pb.HousingRecord(**HOUSING_ROW, ocean_proximity="NEAR BAY")])
        return "PredictHousing", req.SerializeToString()
    pixels = inputs_for(model)["image"][0].tobytes()
    return "ClassifyFashion", pb.ClassifyFashionRequest(images=[pb.Image(pixels=pixels)]).SerializeToString()


def summarize(lat_s: list[float], elapsed: float, errors: int) -> dict:
    arr = np.array(lat_s) * 1000 if lat_s else np.array([np.nan])
    return {"requests": len(lat_s), "errors": errors, "qps": round(len(lat_s) / elapsed, 1),
            "p50_ms": round(float(np.percentile(arr, 50)), 3), "p90_ms": round(float(np.percentile(arr, 90)), 3),
            "p99_ms": round(float(np.percentile(arr, 99)), 3)}


def median_of(runs: list[dict]) -> dict:
    """One case's repeated runs as one row: the median of each figure, and every run's QPS."""
    out = {k: round(float(np.median([r[k] for r in runs])), 3) for k in ("qps", "p50_ms", "p90_ms", "p99_ms")}
    return {"requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs), **out,
            "qps_runs": [r["qps"] for r in runs]}


# ---- load generator (runs in its own process)
def request_for(kind: str, model: str) -> tuple[str, bytes]:
    """(gRPC method path or "", request bytes), built once here: the load process imports no TF."""
    if kind == "grpc":
        return "/tensorflow.serving.PredictionService/Predict", grpc_request_bytes(model)
    if kind == "typed":
        method, payload = typed_request(model)
        return f"/tfgate.v1.InferenceGateway/{method}", payload
    return "", rest_body(model)


async def _load(kind: str, address: str, model: str, concurrency: int, duration: float, warmup: float,
                path: str, payload: bytes) -> dict:
    lat: list[float] = []
    errors = 0
    if kind in ("grpc", "typed"):
        import grpc

        channel = grpc.aio.insecure_channel(address)
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)

        async def one():
            await call(payload, timeout=30)
    else:
        import aiohttp

        body = payload
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        url = f"{address}/v1/models/{model}:predict"

        async def one():
            async with session.post(url, data=body) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(r.status)

    # The clock starts after the imports and request building above.
    t_measure = time.monotonic() + warmup
    t_end = t_measure + duration

    async def worker():
        nonlocal errors
        while (now := time.monotonic()) < t_end:
            try:
                await one()
                if now >= t_measure:
                    lat.append(time.monotonic() - now)
            except Exception:  # counted, reported
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if kind != "rest":
        await channel.close()
    else:
        await session.close()
    return summarize(lat, duration, errors)


def run_load(kind: str, address: str, model: str, concurrency: int, duration: float) -> dict:
    path, payload = request_for(kind, model)
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", kind, address, model, str(concurrency), str(duration), path],
        input=payload, capture_output=True, timeout=duration + 300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:].decode(errors="replace"))
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


@functools.cache
def _servable(model_dir: str, model: str):
    """The version loaded as the model server loads it (session loader), minus the server."""
    from tfgate.serving.model_server.servable import Servable

    servable = Servable(model, int(Path(model_dir).name), model_dir, ["serve"])
    servable.load()
    return servable


def in_process(model_dir: str, model: str, concurrency: int, duration: float) -> dict:
    """(a) the limit: the serving signature run in the server's own way, in a loop, `concurrency`
    threads, no RPC."""
    import concurrent.futures as cf

    servable = _servable(model_dir, model)
    sig = servable.signature("serving_default")
    feed = inputs_for(model)
    for _ in range(20):
        servable.run(sig, feed)
    t_end = time.monotonic() + duration

    def loop():
        lat = []
        while (now := time.monotonic()) < t_end:
            servable.run(sig, feed)
            lat.append(time.monotonic() - now)
        return lat

    with cf.ThreadPoolExecutor(concurrency) as ex:
        lat = [x for part in ex.map(lambda _: loop(), range(concurrency)) for x in part]
    return summarize(lat, duration, 0)


# ---- targets and cases
@dataclasses.dataclass
class Target:
    name: str
    grpc: str | None = None
    rest: str | None = None
    stop: object = None


@dataclasses.dataclass
class Case:
    name: str  # e.g. "(b) server"
    target: str  # key into the targets built by `start_targets`
    transport: str  # "in_process" | "grpc" | "rest"
    concurrency: tuple[int, ...]


CASES = [
    Case("(a) in-process", "in_process", "in_process", (1, 8, 64)),
    Case("(b) server, no batching", "server", "grpc", (1, 8, 64)),
    Case("(c) server, batching", "batching", "grpc", (1, 8, 64)),
    Case("(b) server, no batching", "server", "rest", (8,)),
    Case("(c) server, batching", "batching", "rest", (8,)),
    Case("(d) gateway pass-through", "gateway", "grpc", (1, 8, 64)),
    Case("(e) gateway typed", "gateway", "typed", (1, 8, 64)),
    Case("(f) floor: bare gRPC echo", "echo", "grpc", (1, 8, 64)),
    Case("(g) floor: bare gRPC proxy to (b)", "proxy", "grpc", (1, 8, 64)),
]
# With --baseline SRC: (b) and (c) served from another source tree (an earlier commit), interleaved
# with the current ones, so a change to the request path is judged within one run.
BASELINE_CASES = [
    Case("(b) baseline, no batching", "server_base", "grpc", (1, 8, 64)),
    Case("(c) baseline, batching", "batching_base", "grpc", (1, 8, 64)),
]


def start_floor(mode: str, workdir: Path, target: str | None = None) -> Target:
    """grpc_floor.py as a child process on a free loopback port (the one launcher), stopped by its PID."""
    from tfgate.serving.processes import ServerProcess, free_port

    port = free_port()
    floor = str(Path(__file__).with_name("grpc_floor.py"))
    cmd = [sys.executable, floor, mode, str(port), *([target] if target else [])]
    server = ServerProcess(cmd, workdir / f"floor-{mode}.log", ready_line=f"grpc_floor {mode} ready")
    server.start(timeout=60)
    return Target(mode, f"127.0.0.1:{port}", None, server.stop)


def start_targets(bases: dict[str, str], workdir: Path, cases: str = "abcdefg",
                  baseline: str | None = None) -> dict[str, Target]:
    from tfgate.serving.processes import model_config_text, start_model_server

    config = model_config_text(bases)
    (workdir / "batching.config").write_text(BATCHING_PARAMS)
    targets = {"in_process": Target("in_process")}
    servers = [("server", [], None), ("batching", ["--enable_batching",
                                                   f"--batching_parameters_file={workdir / 'batching.config'}"], None)]
    if baseline:  # the same servers from the baseline tree: its packages come first on the path
        env = {**os.environ, "PYTHONPATH": str(Path(baseline).resolve())}
        servers += [(f"{name}_base", flags, env) for name, flags, _ in servers]
    for name, flags, env in servers:
        if name.startswith("batching") and "c" not in cases:
            continue
        s = start_model_server(workdir / name, model_config=config, flags=flags, env=env)
        targets[name] = Target(name, s.grpc_target, s.rest_url, s.stop)
    if {"d", "e"} & set(cases):  # the gateway in front of (b), default settings (access log on), quick to stop
        from tfgate.serving.processes import start_gateway

        gw = start_gateway(workdir, {"shutdown": {"readiness_seconds": 0.3, "grace_seconds": 10},
                                     "models": {m: {"targets": [targets["server"].grpc]} for m in bases}})
        targets["gateway"] = Target("gateway", gw.target, None, gw.stop)
    if "f" in cases:
        targets["echo"] = start_floor("echo", workdir)
    if "g" in cases:
        targets["proxy"] = start_floor("proxy", workdir, targets["server"].grpc)
    return targets


def latest_version_dir(base: str) -> str:
    versions = [p for p in Path(base).iterdir() if p.name.isdigit()]
    if not versions:
        raise SystemExit(f"no model versions under {base}: run `tfgate train` first")
    return str(max(versions, key=lambda p: int(p.name)))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        kind, address, model, c, d, path = sys.argv[2:8]
        payload = sys.stdin.buffer.read()
        print(json.dumps(asyncio.run(_load(kind, address, model, int(c), float(d), 1.0, path, payload))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--housing", default=str(REPO / "models" / "housing"), help="housing model base path")
    ap.add_argument("--fashion", default=str(REPO / "models" / "fashion"), help="fashion model base path")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds measured per run (default 3)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default 3)")
    ap.add_argument("--out", default=str(RESULTS / "serving.json"))
    ap.add_argument("--cases", default="a,b,c,d,e,f,g", help="letters of the cases to run (default all)")
    ap.add_argument("--baseline", help="a source tree of an earlier tfgate (e.g. a `git worktree`): its (b) and (c) "
                                       "run beside the current ones")
    args = ap.parse_args()
    cases = [c for c in CASES + (BASELINE_CASES if args.baseline else []) if c.name[1] in args.cases.replace(",", "")]
    bases = {"housing": args.housing, "fashion": args.fashion}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    for b in bases.values():
        latest_version_dir(b)
    with tempfile.TemporaryDirectory() as tmp:
        targets = start_targets(bases, Path(tmp), "".join(c.name[1] for c in cases), args.baseline)
        try:
            # Every case at one concurrency back to back, repeated: ratios compare runs minutes
            # apart otherwise, and this shared box drifts by tens of percent between minutes.
            runs: dict[tuple, list[dict]] = {}
            for model, base in bases.items():
                for rep in range(args.repeat):
                    for c in sorted({c for case in cases for c in case.concurrency}):
                        for case in (case for case in cases if c in case.concurrency):
                            t = targets[case.target]
                            if case.transport == "in_process":
                                r = in_process(latest_version_dir(base), model, c, args.duration)
                            else:
                                addr = t.rest if case.transport == "rest" else t.grpc
                                r = run_load(case.transport, addr, model, c, args.duration)
                            print(json.dumps({"model": model, "case": case.name, "transport": case.transport,
                                              "concurrency": c, "run": rep + 1, **r}), flush=True)
                            runs.setdefault((model, case.name, case.transport, c), []).append(r)
            results = [{"model": m, "case": n, "transport": tr, "concurrency": c, **median_of(rs)}
                       for (m, n, tr, c), rs in runs.items()]
        finally:
            for t in targets.values():
                if t.stop:
                    t.stop()
    report = {"duration_s": args.duration, "repeat": args.repeat, "cpus": os.cpu_count(), "results": results,
              "targets": check_targets(results)}
    if args.baseline:
        report["baseline"] = {"source": args.baseline, "commit": _commit_of(args.baseline),
                              "against_current": against_baseline(results)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    plot(results, Path(args.out).with_name(Path(args.out).stem + "_latency.png"))
    print(json.dumps({k: report[k] for k in ("targets", "baseline") if k in report}, indent=2))
    return 0


def _commit_of(tree: str) -> str | None:
    done = subprocess.run(["git", "-C", tree, "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def against_baseline(results) -> dict:
    """Current over baseline, same run: p50 at c=1 (per-request cost; < 1 is faster) and QPS at
    c=64 (> 1 is more), without and with batching."""
    out = {}
    for model in sorted({r["model"] for r in results}):
        for now, base in (("(b) server, no batching", "(b) baseline, no batching"),
                          ("(c) server, batching", "(c) baseline, batching")):
            pairs = {c: (_find(results, model, now, "grpc", c), _find(results, model, base, "grpc", c))
                     for c in (1, 64)}
            if not all(a and b for a, b in pairs.values()):
                continue
            (n1, b1), (n64, b64) = pairs[1], pairs[64]
            out[f"{model}: {now}"] = {
                "p50_ms_c1": [n1["p50_ms"], b1["p50_ms"]], "p50_ratio_c1": round(n1["p50_ms"] / b1["p50_ms"], 3),
                "qps_c64": [n64["qps"], b64["qps"]], "qps_ratio_c64": round(n64["qps"] / b64["qps"], 3)}
    return out


def _find(results, model, case, transport, c):
    return next((r for r in results if r["model"] == model and r["case"] == case and r["transport"] == transport
                 and r["concurrency"] == c), None)


def check_targets(results) -> dict:
    """Each target met or not, with the floor measured in the same run beside it: what bare Python
    gRPC (f) or a bare proxy (g) gives with no work at all, so a miss can be told from a limit."""
    out = {}
    for model in sorted({r["model"] for r in results}):
        def get(case, c, transport="grpc", model=model):
            return _find(results, model, case, transport, c)

        a1 = get("(a) in-process", 1, "in_process")
        b1, b64 = get("(b) server, no batching", 1), get("(b) server, no batching", 64)
        c64 = get("(c) server, batching", 64)
        d1, d64 = get("(d) gateway pass-through", 1), get("(d) gateway pass-through", 64)
        f1, f64 = get("(f) floor: bare gRPC echo", 1), get("(f) floor: bare gRPC echo", 64)
        g1, g64 = get("(g) floor: bare gRPC proxy to (b)", 1), get("(g) floor: bare gRPC proxy to (b)", 64)
        if b64 and c64:
            ratio = c64["qps"] / b64["qps"] if b64["qps"] else float("inf")
            t = out[f"{model}: batching QPS at c=64 >= 3x no batching"] = {
                "ratio": round(ratio, 2), "met": ratio >= 3, "needed_qps": round(3 * b64["qps"], 1)}
            if f64:
                t["bare_echo_qps"] = f64["qps"]
                t["batching_share_of_bare_echo"] = round(c64["qps"] / f64["qps"], 2)
        if a1 and b1:
            extra = b1["p50_ms"] - a1["p50_ms"]
            t = out[f"{model}: gRPC p50 at c=1 <= in-process p50 + 1 ms"] = {
                "added_ms": round(extra, 3), "met": extra <= 1.0}
            if f1:
                t["bare_echo_p50_ms"] = f1["p50_ms"]  # a round trip that does nothing
        if b1 and d1:
            extra = d1["p50_ms"] - b1["p50_ms"]
            t = out[f"{model}: gateway pass-through p50 at c=1 <= direct p50 + 0.5 ms"] = {
                "added_ms": round(extra, 3), "met": extra <= 0.5}
            if g1:
                t["bare_proxy_added_ms"] = round(g1["p50_ms"] - b1["p50_ms"], 3)
        if b64 and d64:
            ratio = d64["qps"] / b64["qps"] if b64["qps"] else 0.0
            t = out[f"{model}: gateway pass-through QPS at c=64 >= 0.8x direct"] = {
                "ratio": round(ratio, 3), "met": ratio >= 0.8}
            if g64 and b64["qps"]:
                t["bare_proxy_ratio"] = round(g64["qps"] / b64["qps"], 3)
    return out


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in results})
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        series = {}
        for r in results:
            if r["model"] == model:
                series.setdefault(f'{r["case"]} [{r["transport"]}]', []).append(r)
        for label, rows in series.items():
            rows.sort(key=lambda r: r["concurrency"])
            xs = [r["concurrency"] for r in rows]
            line, = ax.plot(xs, [r["p50_ms"] for r in rows], marker="o", label=f"{label} p50")
            ax.plot(xs, [r["p99_ms"] for r in rows], marker="x", linestyle="--", color=line.get_color(),
                    label=f"{label} p99")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{model}: batch-1 Predict latency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
