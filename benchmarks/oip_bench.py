"""Open Inference Protocol (v2) benchmark: Triton's perf_analyzer (native, C++) over v2 gRPC against the
model server and the gateway, beside the Python load generator's figures (serving_bench.py) for TF
Serving's gRPC Predict on the same models, servers and inputs, in the same run. Batch-1 requests at
concurrency 1 and 64. Writes benchmarks/results/oip.json.

perf_analyzer comes from .venv/perf (`make install`: tritonclient 2.50.0's wheel carries the binary; the
perf-analyzer package on PyPI is an empty placeholder). It links libcudart.so.12 (the CUDA runtime wheel
there, put on LD_LIBRARY_PATH here; no GPU is used) and libb64.so.0d (Debian: `apt-get install
libb64-0d`). When it cannot run, the JSON says exactly why and the Python figures are still measured.

    python benchmarks/oip_bench.py --housing models/housing --fashion models/fashion [--duration 3] [--repeat 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
PERF = REPO / ".venv" / "perf"
PERF_ANALYZER = PERF / "bin" / "perf_analyzer"
CONCURRENCY = (1, 64)


def cuda_runtime_dir() -> Path | None:
    found = sorted(PERF.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
    return found[0] if found else None


def perf_env() -> dict[str, str]:
    lib = cuda_runtime_dir()
    paths = [str(lib)] if lib else []
    if os.environ.get("LD_LIBRARY_PATH"):
        paths.append(os.environ["LD_LIBRARY_PATH"])
    return {**os.environ, "LD_LIBRARY_PATH": ":".join(paths)}


def why_perf_analyzer_cannot_run() -> str | None:
    """None when perf_analyzer starts; else the exact reason (missing binary or shared libraries)."""
    if not PERF_ANALYZER.exists():
        return f"{PERF_ANALYZER} missing: run `make install` (builds .venv/perf from requirements/perf.txt)"
    ldd = subprocess.run(["ldd", str(PERF_ANALYZER)], capture_output=True, text=True, env=perf_env())
    missing = [line.split("=>")[0].strip() for line in ldd.stdout.splitlines() if "not found" in line]
    if missing:
        hints = {"libb64.so.0d": "Debian package libb64-0d", "libcudart.so.12": "PyPI nvidia-cuda-runtime-cu12"}
        return "perf_analyzer cannot load " + ", ".join(f"{m} ({hints.get(m, 'unknown')})" for m in missing)
    probe = subprocess.run([str(PERF_ANALYZER), "--version"], capture_output=True, text=True, env=perf_env())
    if probe.returncode != 0:
        return f"perf_analyzer --version exited {probe.returncode}: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None


def input_data(model: str, path: Path) -> list[str]:
    """perf_analyzer's --input-data JSON for serving_bench's batch-1 inputs; returns the --shape flags."""
    from benchmarks.serving_bench import inputs_for

    entry, shapes = {}, []
    for name, arr in inputs_for(model).items():
        values = [v.decode() for v in arr.ravel()] if arr.dtype == object else arr.ravel().tolist()
        entry[name] = {"content": values, "shape": list(arr.shape)}
        shapes += ["--shape", f"{name}:{','.join(map(str, arr.shape))}"]
    path.write_text(json.dumps({"data": [entry]}))
    return shapes


def run_perf_analyzer(target: str, model: str, concurrency: int, duration: float, workdir: Path) -> dict:
    data = workdir / f"{model}-input.json"
    shapes = input_data(model, data)
    out = workdir / f"pa-{model}-{concurrency}-{target.replace(':', '_')}.csv"
    cmd = [str(PERF_ANALYZER), "-m", model, "-i", "grpc", "-u", target, "--input-data", str(data), *shapes,
           "--concurrency-range", str(concurrency), "--measurement-interval", str(int(duration * 1000)),
           # A shared 2-core box drifts between windows: judge stability loosely, give it more windows.
           "--stability-percentage", "100", "--max-trials", "10", "-f", str(out)]
    if concurrency > 1:
        cmd.append("--async")  # one thread drives every request in flight, as the Python generator does
    proc = subprocess.run(cmd, capture_output=True, text=True, env=perf_env(), timeout=duration * 20 + 120)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {"error": f"perf_analyzer exited {proc.returncode}: {' | '.join(tail)}"}
    with out.open() as fh:
        row = next(csv.DictReader(fh))
    us = lambda k: round(float(row[k]) / 1000, 3)  # noqa: E731 (usec -> ms)
    return {"qps": round(float(row["Inferences/Second"]), 1), "p50_ms": us("p50 latency"),
            "p90_ms": us("p90 latency"), "p99_ms": us("p99 latency")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--housing", default=str(REPO / "models" / "housing"))
    ap.add_argument("--fashion", default=str(REPO / "models" / "fashion"))
    ap.add_argument("--duration", type=float, default=3.0, help="seconds measured per run (default 3)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the median is reported (default 1)")
    ap.add_argument("--out", default=str(RESULTS / "oip.json"))
    args = ap.parse_args()

    from benchmarks.serving_bench import latest_version_dir, median_of, run_load
    from tfgate.serving.processes import model_config_text, start_gateway, start_model_server

    bases = {"housing": args.housing, "fashion": args.fashion}
    for b in bases.values():
        latest_version_dir(b)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    perf_problem = why_perf_analyzer_cannot_run()
    if perf_problem:
        print(f"perf_analyzer skipped: {perf_problem}", file=sys.stderr)
    runs: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_model_server(work / "ms", model_config=model_config_text(bases))
        gateway = None
        try:
            gateway = start_gateway(work, {"shutdown": {"readiness_seconds": 0.3, "grace_seconds": 10},
                                           "models": {m: {"targets": [server.grpc_target]} for m in bases}})
            targets = {"model server": server.grpc_target, "gateway": gateway.target}
            for model in bases:
                for rep in range(args.repeat):
                    for c in CONCURRENCY:
                        for where, address in targets.items():
                            cases = [("TF Serving Predict (Python load generator)", "grpc")]
                            if not perf_problem:
                                cases.append(("v2 ModelInfer (perf_analyzer)", "perf"))
                            for name, kind in cases:
                                if kind == "perf":
                                    r = run_perf_analyzer(address, model, c, args.duration, work)
                                else:
                                    r = run_load("grpc", address, model, c, args.duration)
                                print(json.dumps({"model": model, "target": where, "api": name, "concurrency": c,
                                                  "run": rep + 1, **r}), flush=True)
                                runs.setdefault((model, where, name, c), []).append(r)
        finally:
            if gateway is not None:
                gateway.stop()
            server.stop()
    results = []
    for (model, where, name, c), rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        row = {"model": model, "target": where, "api": name, "concurrency": c}
        if ok:
            figures = median_of([{"requests": 0, "errors": 0, **r} for r in ok]) if "perf" in name else median_of(ok)
            row.update({k: figures[k] for k in ("qps", "p50_ms", "p90_ms", "p99_ms", "qps_runs")})
        if len(ok) < len(rs):
            row["errors"] = [r["error"] for r in rs if "error" in r]
        results.append(row)
    report = {"duration_s": args.duration, "repeat": args.repeat, "cpus": os.cpu_count(),
              "perf_analyzer": perf_problem or "ran (tritonclient 2.50.0's binary)", "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for row in results:
        print(f"{row['model']:8} {row['target']:12} c={row['concurrency']:<3} {row['api']:44} "
              f"qps={row.get('qps', np.nan):>8} p50={row.get('p50_ms', np.nan)} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
