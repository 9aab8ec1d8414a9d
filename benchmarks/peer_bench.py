"""Peer benchmark (issue 20): tfgate's model server beside the Python servers a user would pick instead to
serve a TensorFlow SavedModel: KServe's ModelServer (custom predictor), MLServer (custom runtime) and Ray
Serve, each in its own venv (.venv/peers/<peer>, pinned in requirements/peers/) and serving the same
SavedModels the way its documentation shows (benchmarks/peers/). Models: TF Serving's half_plus_two (the
servers' own cost) and both demo models (real work), batch-1 requests with raw features.

One load generator for all: Debian's `wrk` (one thread, keep-alive connections, benchmarks/peers/wrk_report.lua
for status codes and percentiles) on loopback, over the TF Serving REST call where the server speaks it
(tfgate, KServe: POST /v1/models/<m>:predict), v2 REST (POST /v2/models/<m>/infer: MLServer, and KServe and
tfgate as a second row) and Ray Serve's own route (POST /<m> with the same {"instances": ...} body).
Concurrency 1, 64 and 256; each run a warm-up then a measured window; repeats interleaved (every server at one
concurrency and model before the next, the order rotated each repeat) so that the box's drift shows as ranges.
Overload: after each c=256 run, a c=1 run at once (no warm-up) shows whether the server has recovered; every
status code seen is kept, with the first body of each non-2xx one.

All servers are up for the whole run (idle ones sleep); the settings that make the comparison unfair
(processes, logging, batching, queue limits) are written beside the figures. Writes
benchmarks/results/peer_bench.{json,md,png}.

    make peer-bench                                          # builds the peer venvs, then runs this
    .venv/bin/python -m benchmarks.peer_bench [--duration 10] [--warmup 3] [--repeat 3] [--quick]
        [--servers tfgate,tfgate-batching,kserve,mlserver,ray] [--models half_plus_two,housing,fashion]
        [--concurrency 1,64,256] [--grpc]    # --grpc: tfgate's gRPC too, via perf_analyzer (.venv/perf)
    .venv/bin/python -m benchmarks.peer_bench --from-json benchmarks/results/peer_bench.json  # table + PNG again

Latencies are wrk's (closed loop; a request still unanswered when a run ends is not counted, so p99s near the
run's length, Ray's at c>=64, are lower bounds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
PEERS = REPO / "benchmarks" / "peers"
VENVS = REPO / ".venv" / "peers"
LUA = PEERS / "wrk_report.lua"
CONCURRENCY = (1, 64, 256)
MODELS = ("half_plus_two", "housing", "fashion")
SERVERS = ("tfgate", "tfgate-batching", "kserve", "mlserver", "ray")
RAY_TUNED = 100  # Serve's tuning guide: raise max_ongoing_requests (default 5) for light requests
OVERLOAD_OK = {200, 429, 503}  # tfgate at c=256: success or a clear overload status, nothing else
MARK = "PEER_BENCH_JSON "


# ---- request bodies ----------------------------------------------------------------------------------------
def instances(model: str) -> list:
    """TF Serving's row format for one batch-1 request: the inputs of serving_bench.py."""
    from benchmarks.serving_bench import HOUSING_ROW, inputs_for

    if model == "half_plus_two":
        return [[1.0]]
    if model == "housing":
        return [dict(HOUSING_ROW, ocean_proximity="NEAR BAY")]
    return [{"image": inputs_for("fashion")["image"][0].tolist()}]


def v2_inputs(model: str) -> list[dict]:
    """The same request as Open Inference Protocol (v2) tensors."""
    if model == "half_plus_two":
        return [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]
    (row,) = instances(model)
    if model == "housing":
        return [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP32", "shape": [1], "data": [v]}
                for k, v in row.items()]
    flat = [p for line in row["image"] for p in line]
    return [{"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "data": flat}]


def body(model: str, protocol: str) -> bytes:
    doc = {"inputs": v2_inputs(model)} if protocol == "v2" else {"instances": instances(model)}
    return json.dumps(doc).encode()


def answer(model: str, protocol: str, doc: dict):
    """The value to compare across servers: y, dollars, or the class name."""
    name = {"half_plus_two": "y", "housing": "median_house_value", "fashion": "classes"}[model]
    if protocol == "v2":
        return next(o["data"][0] for o in doc["outputs"] if o["name"] == name)
    first = doc["predictions"][0]
    if isinstance(first, dict):
        return first[name]
    return first[0] if isinstance(first, list) else first


def same_answer(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-3 * max(1.0, abs(b))
    return a == b


# ---- wrk ---------------------------------------------------------------------------------------------------
def parse_wrk_output(text: str) -> dict:
    """The figures of one wrk run from its output (the PEER_BENCH_JSON line that wrk_report.lua prints)."""
    line = next((ln for ln in text.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise ValueError(f"no {MARK.strip()} line in wrk's output: {text.strip()[-300:]!r}")
    raw = json.loads(line[len(MARK):])
    seconds = raw["duration_us"] / 1e6
    pct = raw["latency_us"]["percentiles"]
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    completed = sum(statuses.values())
    return {
        "requests": raw["requests"], "req_s": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(pct["50"] / 1000, 3), "p90_ms": round(pct["90"] / 1000, 3),
        "p99_ms": round(pct["99"] / 1000, 3), "max_ms": round(raw["latency_us"]["max"] / 1000, 3),
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k <= 299),
        "socket_errors": {k: v for k, v in raw["errors"].items() if k != "status" and v},
        "statuses": dict(sorted(statuses.items())), "completed": completed,
        "bodies": {int(k): v for k, v in raw["bodies"].items()}, "seconds": round(seconds, 3),
    }


def run_wrk(url: str, body_path: Path, concurrency: int, seconds: float) -> dict:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(LUA),
           url, "--", str(body_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=seconds + 90)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return parse_wrk_output(proc.stdout)


def run_perf_analyzer(target: str, model: str, concurrency: int, seconds: float, work: Path) -> dict:
    """TF Serving gRPC Predict driven by Triton's perf_analyzer (`--service-kind=tfserving`), as oip_bench.py
    drives it: the figures of its last (stable or last-tried) window, in wrk's terms."""
    from benchmarks.oip_bench import PERF_ANALYZER, input_data, perf_env

    if model == "half_plus_two":
        data = work / "half_plus_two-pa.json"
        data.write_text(json.dumps({"data": [{"x": {"content": [1.0], "shape": [1, 1]}}]}))
        shapes = ["--shape", "x:1,1"]
    else:
        data = work / f"{model}-pa.json"
        shapes = input_data(model, data)
    out = work / f"pa-{model}-{concurrency}.csv"
    cmd = [str(PERF_ANALYZER), "--service-kind=tfserving", "-i", "grpc", "-u", target, "-m", model,
           "--input-data", str(data), *shapes, "--concurrency-range", str(concurrency),
           "--measurement-interval", str(int(seconds * 1000)), "--stability-percentage", "100",
           "--max-trials", "3", "-f", str(out)]  # no --async: the tfserving kind drives one thread per request
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=perf_env(),
                          timeout=seconds * 10 + 120)
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise RuntimeError(f"perf_analyzer exited {proc.returncode}: {tail}")
    import csv

    with out.open() as fh:
        row = next(csv.DictReader(fh))
    req_s = float(row["Inferences/Second"])
    ms = lambda k: round(float(row[k]) / 1000, 3)  # noqa: E731 (usec -> ms)
    completed = int(req_s * seconds)
    return {"requests": completed, "req_s": round(req_s, 1), "p50_ms": ms("p50 latency"),
            "p90_ms": ms("p90 latency"), "p99_ms": ms("p99 latency"), "max_ms": None, "non_2xx": 0,
            "socket_errors": {}, "statuses": {}, "completed": completed, "bodies": {}, "seconds": seconds}


# ---- CPU of a server's process tree (from /proc: what each server burns per request) ------------------------
def _proc_table() -> dict[int, tuple[int, float]]:
    """{pid: (ppid, cpu seconds incl. reaped children)} of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    return out


def tree_cpu_seconds(pid: int) -> float:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, (parent, _) in table.items():
        children.setdefault(parent, []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += table.get(p, (0, 0.0))[1]
        todo += children.get(p, [])
    return total


# ---- servers -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One line of the results: a server spoken to over one protocol at one URL per model."""

    key: str
    label: str
    server: str
    protocol: str  # v1 | v2 (REST bodies) | grpc (perf_analyzer)
    url: Callable[[str], str]  # a URL, or a gRPC target for perf_analyzer


@dataclasses.dataclass
class Peer:
    key: str
    process: object  # tfgate.serving.processes.ServerProcess
    base: str
    settings: dict


def http_ready(urls: list[str]) -> Callable[[], bool]:
    def ready() -> bool:
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status != 200:
                        return False
            except (urllib.error.URLError, OSError):
                return False
        return True

    return ready


def peer_python(peer: str) -> str:
    return str(VENVS / peer / "bin" / "python")


def peer_versions(peer: str, packages: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))")
    return json.loads(subprocess.run([peer_python(peer), "-c", code, *packages], capture_output=True, text=True,
                                     check=True).stdout)


def start_servers(work: Path, keys: list[str], version_dirs: dict[str, Path], bases: dict[str, Path],
                  peers: dict) -> None:
    """Every server in `keys` started (all at once, then each waited for) and put in `peers` {key: Peer}
    before it starts, so that the caller stops whatever did start when another fails."""
    from tfgate.serving.processes import ServerProcess, free_port, model_config_text, model_server

    class HTTPReadyServer(ServerProcess):
        def __init__(self, *a, ready_urls: list[str], **kw):
            super().__init__(*a, **kw)
            self._ready = http_ready(ready_urls)

        def is_ready(self) -> bool:
            return self._ready()

    models_arg = ",".join(f"{m}={p}" for m, p in version_dirs.items())
    tf_version = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(tf.__version__)"],
                                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                                ).stdout.strip()
    for key in keys:
        if key.startswith("tfgate"):
            flags = []
            settings = {"processes": 1, "event loop": "uvloop (REST and gRPC in one process), model runs in a "
                        "thread pool", "per-request logging": "none", "batching": "off",
                        "versions": {"tensorflow": tf_version}}
            if key == "tfgate-batching":
                # As a user (and the issue) turns it on: TF Serving's default parameters, no file.
                flags = ["--enable_batching"]
                settings["batching"] = ("on, TF Serving's defaults: max_batch_size 1000, batch_timeout_micros 0, "
                                        f"max_enqueued_batches 10, num_batch_threads {os.cpu_count()}")
            proc = model_server(work / key, model_config=model_config_text({m: str(b) for m, b in bases.items()}),
                                flags=flags, name=key)
            settings["command"] = " ".join(proc.cmd[1:])
            peers[key] = Peer(key, proc, proc.rest_url, settings)
        elif key == "kserve":
            port = free_port()
            cmd = [peer_python("kserve"), str(PEERS / "kserve_predictor.py"), f"--http_port={port}",
                   f"--grpc_port={free_port()}", f"--models={models_arg}"]
            base = f"http://127.0.0.1:{port}"
            proc = HTTPReadyServer(cmd, work / "kserve.log", name="kserve",
                                   ready_urls=[f"{base}/v2/models/{m}/ready" for m in version_dirs])
            peers[key] = Peer(key, proc, base, {
                "processes": 1, "uvicorn workers": 1,
                "predict": "a sync `def predict` (as the guide's): runs on the event loop",
                "per-request logging": "uvicorn access line + KServe latency lines (enable_latency_logging, "
                                       "default on)",
                "batching": "none (KServe's batcher is an agent sidecar, not in ModelServer)",
                "listens on": "0.0.0.0 (KServe has no flag for the address)", "gRPC server": "on (default)",
                "versions": peer_versions("kserve", ["kserve", "tensorflow-cpu"])})
        elif key == "mlserver":
            port = free_port()
            cmd = [peer_python("mlserver"), str(PEERS / "mlserver_runtime.py"), "--repository",
                   str(work / "mlserver"), f"--http-port={port}", f"--grpc-port={free_port()}",
                   f"--metrics-port={free_port()}", f"--models={models_arg}"]
            base = f"http://127.0.0.1:{port}"
            proc = HTTPReadyServer(cmd, work / "mlserver.log", name="mlserver", env={"PYTHONPATH": str(PEERS)},
                                   ready_urls=[f"{base}/v2/models/{m}/ready" for m in version_dirs])
            peers[key] = Peer(key, proc, base, {
                "processes": "2 (HTTP/gRPC front + parallel_workers=1 inference worker, default)",
                "per-request logging": "uvicorn access line (debug=true, default)",
                "batching": "off (adaptive batching max_batch_size=0, default)",
                "metrics server": "on (default)",
                "versions": peer_versions("mlserver", ["mlserver", "tensorflow-cpu", "uvloop"])})
        elif key == "ray":
            port = free_port()
            cmd = [peer_python("ray"), str(PEERS / "ray_app.py"), f"--port={port}", f"--models={models_arg}",
                   "--max-ongoing-requests", str(RAY_TUNED)]
            env = {"RAY_USAGE_STATS_ENABLED": "0",
                   # Ray runs its workers at nice 15; on a box shared with other work that alone starves it.
                   "RAY_worker_niceness": "0"}
            proc = ServerProcess(cmd, work / "ray.log", env=env, ready_line="ray serve ready", name="ray")
            cpus = int((os.cpu_count() or 1) / (2 * len(version_dirs)) * 100) / 100
            peers[key] = Peer(key, proc, f"http://127.0.0.1:{port}", {
                "processes": "local Ray: driver, GCS, raylet, agents, Serve controller, one HTTP proxy actor, "
                             "one replica actor per deployment",
                "replicas": 1, "max_ongoing_requests": f"5 (default) / {RAY_TUNED} (second row)",
                "max_queued_requests": "unbounded (default)",
                "replica num_cpus": f"{cpus} (Serve asks 1 per replica; {2 * len(version_dirs)} replicas on "
                                    f"{os.cpu_count()} cores)",
                "per-request logging": "access line per request in proxy and replica log files (default)",
                "worker niceness": "0 (RAY_worker_niceness; Ray's default is 15)",
                "versions": peer_versions("ray", ["ray", "tensorflow-cpu"])})
        else:
            raise ValueError(f"unknown server {key!r}: choose from {', '.join(SERVERS)}")
    for peer in peers.values():
        peer.process.start(wait=False)
    for peer in peers.values():
        peer.process.wait_ready(timeout=300)
        print(f"{peer.key} ready ({peer.base}, pid {peer.process.pid})", flush=True)


def rows_for(peers: dict, grpc: bool = False) -> list[Row]:
    rows = []
    for key, peer in peers.items():
        base = peer.base
        if key.startswith("tfgate"):
            label = "tfgate --enable_batching" if key == "tfgate-batching" else "tfgate"
            rows.append(Row(f"{key} v1", f"{label} (TF Serving REST)", key, "v1",
                            lambda m, b=base: f"{b}/v1/models/{m}:predict"))
            if grpc:
                rows.append(Row(f"{key} grpc", f"{label} (TF Serving gRPC, perf_analyzer)", key, "grpc",
                                lambda m, t=peer.process.grpc_target: t))
            if key == "tfgate":
                rows.append(Row(f"{key} v2", f"{label} (v2 REST)", key, "v2",
                                lambda m, b=base: f"{b}/v2/models/{m}/infer"))
        elif key == "kserve":
            rows.append(Row("kserve v1", "KServe ModelServer (v1 REST)", key, "v1",
                            lambda m, b=base: f"{b}/v1/models/{m}:predict"))
            rows.append(Row("kserve v2", "KServe ModelServer (v2 REST)", key, "v2",
                            lambda m, b=base: f"{b}/v2/models/{m}/infer"))
        elif key == "mlserver":
            rows.append(Row("mlserver v2", "MLServer (v2 REST)", key, "v2",
                            lambda m, b=base: f"{b}/v2/models/{m}/infer"))
        elif key == "ray":
            rows.append(Row("ray", "Ray Serve (defaults)", key, "v1", lambda m, b=base: f"{b}/{m}"))
            rows.append(Row(f"ray mor{RAY_TUNED}", f"Ray Serve (max_ongoing_requests {RAY_TUNED})", key, "v1",
                            lambda m, b=base: f"{b}/{m}-mor{RAY_TUNED}"))
    return rows


def check_answers(rows: list[Row], models: list[str], bodies: dict) -> dict:
    """One request per row and model before any load: every server must give tfgate's answer."""
    checks, reference = {}, {}
    for row in rows:
        for model in models:
            req = urllib.request.Request(row.url(model), data=bodies[(model, row.protocol)].read_bytes(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    value = answer(model, row.protocol, json.loads(r.read()))
            except (urllib.error.URLError, OSError, KeyError, ValueError, StopIteration) as e:
                raise RuntimeError(f"{row.label} does not answer {model}: {e}") from e
            reference.setdefault(model, value)
            if not same_answer(value, reference[model]):
                raise RuntimeError(f"{row.label} answers {model} with {value!r}, tfgate with {reference[model]!r}")
            checks[f"{row.key} {model}"] = value
    return checks


# ---- summary -----------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)} if values else {}


def summarize(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["row"], r["concurrency"]), []).append(r)
    out = []
    for (model, row, c), rs in groups.items():
        statuses: dict[int, int] = {}
        bodies: dict[int, str] = {}
        sockets: dict[str, int] = {}
        for r in rs:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in r["bodies"].items():
                bodies.setdefault(k, v)
            for k, v in r["socket_errors"].items():
                sockets[k] = sockets.get(k, 0) + v
        entry = {"model": model, "row": row, "label": rs[0]["label"], "concurrency": c, "runs": len(rs),
                 "req_s": spread([r["req_s"] for r in rs]), "p50_ms": spread([r["p50_ms"] for r in rs]),
                 "p99_ms": spread([r["p99_ms"] for r in rs]), "non_2xx": sum(r["non_2xx"] for r in rs),
                 "socket_errors": sockets, "statuses": dict(sorted(statuses.items())), "non_2xx_bodies": bodies,
                 "server_cpu_ms_per_request": spread([r["server_cpu_ms_per_request"] for r in rs
                                                      if r.get("server_cpu_ms_per_request") is not None])}
        rec = [r["recovery"] for r in rs if "recovery" in r]
        if rec:
            entry["recovery_c1"] = {"req_s": spread([x["req_s"] for x in rec]),
                                    "p50_ms": spread([x["p50_ms"] for x in rec]),
                                    "p99_ms": spread([x["p99_ms"] for x in rec]),
                                    "non_2xx": sum(x["non_2xx"] for x in rec)}
        out.append(entry)
    return out


def overload_verdicts(summary: list[dict], top: int) -> dict:
    """tfgate at the top concurrency: only 200 or 503/429 with a message; and whether c=1 came back at once."""
    c1 = {(s["model"], s["row"]): s for s in summary if s["concurrency"] == 1}
    out = {}
    for s in summary:
        if s["concurrency"] != top:
            continue
        verdict = {"statuses": s["statuses"], "socket_errors": s["socket_errors"]}
        if s["row"].startswith("tfgate") and not s["row"].endswith("grpc"):  # perf_analyzer has no codes
            bad = [k for k in s["statuses"] if k not in OVERLOAD_OK]
            silent = [k for k in s["statuses"] if k != 200 and not s["non_2xx_bodies"].get(k, "").strip()]
            verdict["only_success_or_overload"] = not bad and not silent and not s["socket_errors"]
        base = c1.get((s["model"], s["row"]))
        if "recovery_c1" in s and base and base["p50_ms"]:
            verdict["recovery_p50_ratio"] = round(s["recovery_c1"]["p50_ms"]["median"] / base["p50_ms"]["median"], 2)
            verdict["recovery_non_2xx"] = s["recovery_c1"]["non_2xx"]
        out[f"{s['row']} {s['model']}"] = verdict
    return out


def fmt(d: dict, digits: int = 0, unit: str = "") -> str:
    if not d:
        return "–"

    def one(v: float) -> str:
        return f"{v:,.{digits}f}"

    return one(d["median"]) + unit if one(d["min"]) == one(d["max"]) else f"{one(d['min'])}–{one(d['max'])}{unit}"


def markdown(summary: list[dict], models: list[str], concurrency: tuple[int, ...], meta: dict) -> str:
    lines = [f"Peer benchmark: {meta['duration_s']} s measured after {meta['warmup_s']} s warm-up per run, "
             f"{meta['repeat']} interleaved repeats (ranges are min–max over them), wrk -t1, "
             f"{meta['cpus']} cores shared by the servers and wrk; {meta['started']}; tfgate at "
             f"{meta.get('tfgate_commit')}" + (f" ({meta['tfgate_provenance_note']})" if meta.get(
                 "tfgate_provenance_note") else " + uncommitted changes in serving/" if meta.get(
                 "tfgate_uncommitted_in_serving") else "") + ".", ""]
    by = {(s["model"], s["row"], s["concurrency"]): s for s in summary}
    row_keys = list(dict.fromkeys(s["row"] for s in summary))
    labels = {s["row"]: s["label"] for s in summary}
    for model in models:
        head = ["server (protocol)"] + [f"c={c} req/s" + (" (p50)" if c == 1 else " (p50 / p99)")
                                        for c in concurrency] + ["non-2xx / socket errors"]
        lines += [f"**{model}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in row_keys:
            cells, errs = [labels[row]], []
            for c in concurrency:
                s = by.get((model, row, c))
                if not s:
                    cells.append("–")
                    continue
                lat = fmt(s["p50_ms"], 2) if c == 1 else f"{fmt(s['p50_ms'], 1)} / **{fmt(s['p99_ms'], 1)}**"
                cells.append(f"{fmt(s['req_s'])} ({lat} ms)")
                if s["non_2xx"] or s["socket_errors"]:
                    errs.append(f"c={c}: {s['non_2xx']} / {sum(s['socket_errors'].values())}")
            cells.append("; ".join(errs) or "0")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    top = max(concurrency)
    lines += [f"**Overload**: status codes at c={top}, then a c=1 run at once (no warm-up)", "",
              f"| server (protocol) | model | c={top} statuses | c=1 right after: req/s (p50 / p99) | "
              "its p50 ÷ the c=1 run's |", "|---|---|---|---|---|"]
    for model in models:
        for row in row_keys:
            s = by.get((model, row, top))
            base = by.get((model, row, 1))
            if not s or "recovery_c1" not in s:
                continue
            rec = s["recovery_c1"]
            ratio = f"{rec['p50_ms']['median'] / base['p50_ms']['median']:.2f}×" if base else "–"
            statuses = ", ".join(f"{k}: {v:,}" for k, v in s["statuses"].items()) or "none completed"
            lines.append(f"| {labels[row]} | {model} | {statuses} | {fmt(rec['req_s'])} "
                         f"({fmt(rec['p50_ms'], 2)} / {fmt(rec['p99_ms'], 1)} ms) | {ratio} |")
    lines += ["", "Settings that make the comparison unfair:", ""]
    for key, settings in meta["servers"].items():
        text = "; ".join(f"{k}: {v}" for k, v in settings.items() if k not in ("command", "versions"))
        versions = ", ".join(f"{k} {v}" for k, v in settings.get("versions", {}).items())
        lines.append(f"- **{key}** ({versions}): {text}")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], models: list[str], concurrency: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_keys = list(dict.fromkeys(s["row"] for s in summary))
    labels = {s["row"]: s["label"] for s in summary}
    by = {(s["model"], s["row"], s["concurrency"]): s for s in summary}
    metrics = [("req_s", "throughput (req/s)"), ("p50_ms", "p50 latency (ms)"), ("p99_ms", "p99 latency (ms)")]
    fig, axes = plt.subplots(len(metrics), len(models), figsize=(5.2 * len(models), 11), squeeze=False)
    for j, model in enumerate(models):
        for i, (metric, title) in enumerate(metrics):
            ax = axes[i][j]
            for row in row_keys:
                pts = [(c, by[(model, row, c)][metric]) for c in concurrency if (model, row, c) in by]
                if not pts:
                    continue
                xs = [c for c, _ in pts]
                med = [d["median"] for _, d in pts]
                err = [[d["median"] - d["min"] for _, d in pts], [d["max"] - d["median"] for _, d in pts]]
                ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=labels[row],
                            linestyle="--" if "tfgate" not in row else "-")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(list(concurrency), [str(c) for c in concurrency])
            ax.minorticks_off()
            ax.set_title(f"{model}: {title}", fontsize=10)
            ax.set_xlabel("concurrent connections")
            ax.grid(True, alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("tfgate model server vs KServe, MLServer, Ray Serve (wrk, batch-1 REST, median and min–max of "
                 "repeats)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main --------------------------------------------------------------------------------------------------
def latest_version_dir(base: Path) -> Path:
    versions = [p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()] \
        if base.is_dir() else []
    if not versions:
        raise SystemExit(f"no SavedModel version under {base}: run `make demo` (or pass --{base.name} DIR)")
    return max(versions, key=lambda p: int(p.name))


def why_not_ready(keys: list[str], grpc: bool = False) -> str | None:
    if not shutil.which("wrk"):
        return "wrk not found: apt-get install -y wrk"
    if grpc:
        from benchmarks.oip_bench import why_perf_analyzer_cannot_run

        problem = why_perf_analyzer_cannot_run()
        if problem:
            return f"--grpc: {problem}"
    for key in keys:
        if not key.startswith("tfgate") and not Path(peer_python(key)).exists():
            return f"{peer_python(key)} missing: run `make peer-bench` (builds .venv/peers/ from requirements/peers/)"
    return None


def write_outputs(report: dict, out: Path) -> str:
    """The JSON at `out`, the table beside it (.md) and the PNG (.png); returns the table."""
    models = list(dict.fromkeys(r["model"] for r in report["runs"]))
    concurrency = tuple(report["concurrency"])
    report["summary"] = summarize(report["runs"])
    report["overload"] = overload_verdicts(report["summary"], max(concurrency))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: v for k, v in report.items() if k != "runs"} | {"runs": report["runs"]},
                              indent=1) + "\n")
    table = markdown(report["summary"], models, concurrency, report)
    out.with_suffix(".md").write_text(table)
    plot(report["summary"], models, concurrency, out.with_suffix(".png"))
    return table


def rewrite(source: Path, out: Path) -> int:
    report = json.loads(source.read_text())
    for r in report["runs"]:  # JSON keys are strings; statuses are numbers here
        r["statuses"] = {int(k): v for k, v in r["statuses"].items()}
        r["bodies"] = {int(k): v for k, v in r["bodies"].items()}
    print(write_outputs(report, out))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--housing", type=Path, default=REPO / "work" / "models" / "housing")
    ap.add_argument("--fashion", type=Path, default=REPO / "work" / "models" / "fashion")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds measured per run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each run (default 3)")
    ap.add_argument("--recovery", type=float, default=5.0,
                    help="seconds of the c=1 run right after each top-concurrency run (default 5)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats (default 3)")
    ap.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 1 s warm-up, 2 s recovery, 1 repeat")
    ap.add_argument("--out", type=Path, default=RESULTS / "peer_bench.json",
                    help="JSON path; the .md and .png go beside it")
    ap.add_argument("--grpc", action="store_true",
                    help="also tfgate's TF Serving gRPC, driven by perf_analyzer (.venv/perf; needs libb64-0d)")
    ap.add_argument("--from-json", type=Path, help="only rewrite the table and PNG from this JSON's runs")
    args = ap.parse_args(argv)
    if args.from_json:
        return rewrite(args.from_json, args.out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # half_plus_two is built here: keep TF's start-up lines out
    if args.quick:
        args.duration, args.warmup, args.recovery, args.repeat = 2.0, 1.0, 2.0, 1
    keys = [k for k in args.servers.split(",") if k]
    models = [m for m in args.models.split(",") if m]
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    problem = why_not_ready(keys, args.grpc)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    # What the tfgate servers run, taken before they start (the tree may change during a long run).
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    provenance = {"tfgate_commit": git("rev-parse", "--short", "HEAD"),
                  "tfgate_uncommitted_in_serving": git("status", "--porcelain", "--", "serving").splitlines()}
    runs: list[dict] = []
    failures: list[dict] = []  # perf_analyzer runs that did not finish (wrk's failures stop the benchmark)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        work = Path(tmp)
        from benchmarks.peers.half_plus_two import make_half_plus_two

        bases = {"half_plus_two": work / "models" / "half_plus_two", "housing": args.housing.resolve(),
                 "fashion": args.fashion.resolve()}
        bases = {m: b for m, b in bases.items() if m in models}
        if "half_plus_two" in bases:
            make_half_plus_two(bases["half_plus_two"])
        version_dirs = {m: latest_version_dir(b) for m, b in bases.items()}
        bodies = {}
        for model in models:
            for protocol in ("v1", "v2"):
                bodies[(model, protocol)] = work / f"{model}-{protocol}.json"
                bodies[(model, protocol)].write_bytes(body(model, protocol))
        peers: dict[str, Peer] = {}
        try:
            start_servers(work, keys, version_dirs, bases, peers)
            rows = rows_for(peers, grpc=args.grpc)
            checks = check_answers([r for r in rows if r.protocol != "grpc"], models, bodies)
            total = args.repeat * len(concurrency) * len(models) * len(rows)
            n = 0
            for rep in range(args.repeat):
                for c in concurrency:
                    for model in models:
                        shift = rep % len(rows)  # rotate the order: no row always runs first
                        for row in rows[shift:] + rows[:shift]:
                            n += 1
                            url, pid = row.url(model), peers[row.server].process.pid
                            if row.protocol == "grpc":  # perf_analyzer warms up and repeats windows itself
                                where = {"model": model, "row": row.key, "label": row.label, "concurrency": c,
                                         "repeat": rep + 1}
                                try:
                                    r = run_perf_analyzer(url, model, c, args.duration, work)
                                except (RuntimeError, subprocess.TimeoutExpired) as e:
                                    failures.append({**where, "error": str(e)})
                                    print(f"[{n}/{total}] {row.label} {model} c={c}: {e}", flush=True)
                                    continue
                                runs.append(r | where)
                                print(f"[{n}/{total}] rep {rep + 1} {model:13} c={c:<3} {row.label:42} "
                                      f"{r['req_s']:8.1f} req/s  p50 {r['p50_ms']:8.2f} ms  "
                                      f"p99 {r['p99_ms']:8.2f} ms", flush=True)
                                continue
                            path = bodies[(model, row.protocol)]
                            if args.warmup > 0:
                                run_wrk(url, path, c, args.warmup)
                            cpu0 = tree_cpu_seconds(pid)
                            r = run_wrk(url, path, c, args.duration)
                            cpu = tree_cpu_seconds(pid) - cpu0
                            r.update(model=model, row=row.key, label=row.label, concurrency=c, repeat=rep + 1,
                                     server_cpu_ms_per_request=round(cpu * 1000 / r["completed"], 3)
                                     if r["completed"] else None)
                            if c == max(concurrency) and args.recovery > 0:
                                r["recovery"] = run_wrk(url, path, 1, args.recovery)
                            runs.append(r)
                            rec = r.get("recovery")
                            print(f"[{n}/{total}] rep {rep + 1} {model:13} c={c:<3} {row.label:42} "
                                  f"{r['req_s']:8.1f} req/s  p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms"
                                  f"  non-2xx {r['non_2xx']}" + (f"  | c=1 after: p50 {rec['p50_ms']:.2f} ms"
                                                                 if rec else ""), flush=True)
        finally:
            for peer in peers.values():
                if peer.process.proc is not None:
                    peer.process.stop()
    meta = {"started": started, "duration_s": args.duration, "warmup_s": args.warmup, "recovery_s": args.recovery,
            "repeat": args.repeat, "concurrency": list(concurrency), "cpus": os.cpu_count(),
            "load_generator": "wrk 4.1.0 (Debian), -t1, keep-alive, --timeout 30s, benchmarks/peers/wrk_report.lua",
            **provenance,
            "load_avg_at_end": os.getloadavg(),
            "servers": {k: p.settings for k, p in peers.items()}, "answers": checks, "failures": failures}
    report = {**meta, "runs": runs}
    print(write_outputs(report, args.out))
    print(f"wrote {args.out}, {args.out.with_suffix('.md')}, {args.out.with_suffix('.png')}")
    bad = [k for k, v in report["overload"].items() if v.get("only_success_or_overload") is False]
    if bad:
        print("tfgate answered something other than success or an overload status at the top concurrency: "
              + ", ".join(bad), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
