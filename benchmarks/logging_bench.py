"""Request-logging benchmark: QPS with every request logged (sampling_rate 1.0) ÷ QPS without, in one run.

Two `tfgate model-server` processes serve the same housing version, one with `logging_config` (rate
1.0, files under a scratch folder), one without; batch-1 gRPC Predict load (serving_bench.py's load
generator, its own process) alternates between them, `--repeat` pairs per concurrency, the order
swapped every pair, so both see the same machine. The ratio reported is the median of the pairs' ratios
(a shared machine's load drifts; a pair is seconds apart). Optionally (`--gateway`) the same through two
gateways, one logging per model in its YAML. Then the cost itself, in process: the serving thread's
`log()` call per request, and the writer's time per record. Afterwards the servers are stopped (SIGTERM)
and the records on disk are counted against the written counter. Goal: ratio ≥ 0.9.

    python benchmarks/logging_bench.py --housing work/models/housing [--duration 3] [--repeat 3]
Writes benchmarks/results/logging.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
GOAL = 0.9


def config_text(name: str, base: str, prefix: str | None) -> str:
    logging = ""
    if prefix:
        logging = (f'    logging_config {{\n      log_collector_config {{ filename_prefix: "{prefix}" }}\n'
                   f"      sampling_config {{ sampling_rate: 1.0 }}\n    }}\n")
    return (f'model_config_list {{\n  config {{\n    name: "{name}"\n    base_path: "{base}"\n'
            f'    model_platform: "tensorflow"\n{logging}  }}\n}}\n')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), what a request costs whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged_counts(metrics_url: str) -> dict[str, float]:
    """tfgate_request_log_records_total by outcome, from a server's Prometheus endpoint."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("tfgate_request_log_records_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def in_process_cost(n: int = 20_000) -> dict:
    """µs per `log()` call (what a request pays on the serving thread) and per record in the writer
    (serialize, frame, write; off the serving path), for a batch-1 housing Predict and its answer."""
    from tensorflow_serving.apis import predict_pb2

    from benchmarks.serving_bench import inputs_for
    from tfgate.serving import request_log, tensor_codec

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "housing"
    for k, v in inputs_for("housing").items():
        tensor_codec.fill_proto(req.inputs[k], v)
    resp = predict_pb2.PredictResponse()
    resp.model_spec.name = "housing"
    resp.model_spec.version.value = 1
    tensor_codec.fill_proto(resp.outputs["median_house_value"], np.array([[123456.0]], np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        logs = request_log.RequestLogs(queue_records=n + 1)
        logs.configure({"housing": request_log.LoggingSpec(f"{tmp}/housing", 1.0)})
        model = logs.get("housing")
        sink = logs.sinks[f"{tmp}/housing"]
        t0 = time.perf_counter()
        for _ in range(n):
            model.log("predict_log", req, resp, version=1, signature="serving_default", latency=0.001)
        t1 = time.perf_counter()
        logs.flush()
        t2 = time.perf_counter()
        logs.close()
        assert model.counters.written == n and sink.counters.errors == 0
    # the writer started during the submit loop; its time is bounded by the whole span
    return {"records": n, "log_call_us": round((t1 - t0) / n * 1e6, 3),
            "writer_us_per_record": round((t2 - t0) / n * 1e6, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--housing", required=True, help="model base path of the housing model")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--gateway", action="store_true", help="also through two gateways (one logging)")
    parser.add_argument("--out", default=str(RESULTS / "logging.json"))
    args = parser.parse_args()

    from benchmarks.serving_bench import median_of, run_load
    from tfgate.serving import request_log
    from tfgate.serving.processes import start_gateway, start_model_server

    base = str(Path(args.housing).resolve())
    concurrency = [int(c) for c in args.concurrency.split(",")]
    results: dict = {"goal": GOAL, "duration_s": args.duration, "repeat": args.repeat, "cases": []}
    with tempfile.TemporaryDirectory(prefix="tfgate-logging-bench-") as tmp:
        work = Path(tmp)
        prefix = str(work / "logs" / "housing")
        monitoring = work / "monitoring.config"
        monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
        servers = {
            "off": start_model_server(work / "off", model_config=config_text("housing", base, None)),
            "on": start_model_server(work / "on", model_config=config_text("housing", base, prefix),
                                     flags=[f"--monitoring_config_file={monitoring}"]),
        }
        targets = {k: s.grpc_target for k, s in servers.items()}
        pids = {k: s.pid for k, s in servers.items()}
        gateways = {}
        if args.gateway:
            gw_prefix = str(work / "gateway-logs" / "housing")
            for key, logging in (("gateway off", None), ("gateway on", gw_prefix)):
                model = {"targets": [servers["off"].grpc_target]}
                if logging:
                    model["logging"] = {"filename_prefix": logging, "sampling_rate": 1.0}
                gateways[key] = start_gateway(work / key.replace(" ", "-"), {"models": {"housing": model}})
                targets[key] = gateways[key].target
                pids[key] = gateways[key].pid
        try:
            pairs = [("model server", "off", "on")] + ([("gateway", "gateway off", "gateway on")] if gateways else [])
            for what, off, on in pairs:
                for c in concurrency:
                    runs: dict[str, list] = {off: [], on: []}
                    cpu: dict[str, list] = {off: [], on: []}
                    for i in range(args.repeat):  # interleaved pairs, the order swapped each time
                        for key in ((off, on) if i % 2 == 0 else (on, off)):
                            before = cpu_seconds(pids[key])
                            runs[key].append(run_load("grpc", targets[key], "housing", c, args.duration))
                            # CPU of the serving process per answered request (warm-up requests included alike)
                            cpu[key].append((cpu_seconds(pids[key]) - before) / max(1, runs[key][-1]["requests"]))
                    pairs_ratio = [b["qps"] / a["qps"] for a, b in zip(runs[off], runs[on], strict=True)]
                    row = {"target": what, "concurrency": c, "without": median_of(runs[off]),
                           "with_logging": median_of(runs[on]), "pair_ratios": [round(r, 3) for r in pairs_ratio]}
                    row["qps_ratio"] = round(float(np.median(pairs_ratio)), 3)
                    row["cpu_us_per_request"] = {"without": round(float(np.median(cpu[off])) * 1e6, 1),
                                                 "with_logging": round(float(np.median(cpu[on])) * 1e6, 1)}
                    results["cases"].append(row)
                    print(f"{what:12s} c={c:3d}  without {row['without']['qps']:8.1f} qps  with logging "
                          f"{row['with_logging']['qps']:8.1f} qps  ratio {row['qps_ratio']:.3f}  errors "
                          f"{row['without']['errors']}/{row['with_logging']['errors']}  CPU µs/request "
                          f"{row['cpu_us_per_request']['without']}/{row['cpu_us_per_request']['with_logging']}",
                          flush=True)
            counts = logged_counts(f"{servers['on'].rest_url}/metrics")
        finally:
            for server in [*gateways.values(), *servers.values()]:
                server.stop()
        files, partial = request_log.log_files([prefix])
        on_disk = sum(1 for f in files for _ in request_log.read_tfrecords(f))
        results["model_server_records"] = {"on_disk": on_disk, "files": len(files), "partial_files": len(partial),
                                           "counted_before_stop": counts}
        print(f"records on disk {on_disk} in {len(files)} files ({len(partial)} partial); counters before the "
              f"stop: {counts}")
    results["in_process"] = in_process_cost()
    print(f"in process: log() {results['in_process']['log_call_us']:.2f} µs per request on the serving thread; "
          f"writer {results['in_process']['writer_us_per_record']:.1f} µs per record", flush=True)
    ratios = [r["qps_ratio"] for r in results["cases"]]
    results["min_ratio"] = min(ratios)
    results["meets_goal"] = bool(np.min(ratios) >= GOAL)
    results["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"min ratio {results['min_ratio']:.3f} (goal {GOAL}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
