"""REST tail latency (issue 20): TF Serving's REST Predict on `half_plus_two` driven by Debian's `wrk`, p50/p99/QPS
at concurrency 1, 64 and 256, this tree against an earlier one (`--baseline`), interleaved in one run.

    git worktree add --detach /tmp/base <commit>
    python benchmarks/rest_tail_bench.py --baseline /tmp/base [--batching] [--kserve] [--repeats 3] [--duration 10]

Targets: `tfgate model-server` from this tree and from SRC (its packages mounted in place of this tree's: the
editable install maps `tfgate` onto this tree whatever PYTHONPATH says), both with `--enable_batching` too with
`--batching`, and KServe's ModelServer (benchmarks/peers/kserve_predictor.py in .venv/peers/kserve) with
`--kserve`. Every (repeat, concurrency) visits the targets in a rotated order, each after a warm-up at the same
concurrency. After every c=256 run a c=1 run checks recovery. The Lua script counts answers by HTTP status.

Writes benchmarks/results/rest_tail.json and rest_tail.png (or --out STEM).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MODEL = "half_plus_two"
BODY = '{"instances": [[1.0]]}'
OVERLOAD_STATUSES = {"200", "429", "503"}  # success or a clear overload answer

# One JSON line from wrk's done(): latency percentiles (us), error counts, answers by HTTP status (counted in
# each thread's Lua state by response(), gathered with thread:get).
WRK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  wrk.method = "POST"
  wrk.body = '%BODY%'
  wrk.headers["Content-Type"] = "application/json"
  statuses = {}
end
function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end
function done(summary, latency, requests)
  local st, parts = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do st[k] = (st[k] or 0) + v end
  end
  for k, v in pairs(st) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ",")))
end
"""


# ---- a source tree's model server (`--serve-tree SRC -- <flags>`, run as a child process)
def mount_tree(root: Path) -> None:
    """Import `tfgate` and its mapped packages from `root` (pyproject's package-dir) instead of this tree."""
    import importlib.util
    import tomllib

    dirs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name in sorted(dirs):  # parents first
        folder = root / dirs[name]
        init = folder / "__init__.py"
        if init.exists():
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
            module = importlib.util.module_from_spec(spec)
        else:  # a folder of data files: a bare package
            spec, module = None, types.ModuleType(name)
            module.__path__ = [str(folder)]
        sys.modules[name] = module
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
        if spec is not None:
            spec.loader.exec_module(module)


def serve_tree(root: Path, argv: list[str]) -> int:
    mount_tree(root)
    from tfgate.serving import model_server

    assert Path(model_server.__file__).resolve().is_relative_to(root.resolve()), model_server.__file__
    return model_server.main(argv)


# ---- targets
def make_model(base: Path) -> Path:
    """TF Serving's half_plus_two as Keras users export it: x [?,1] float32 -> y = 0.5 x + 2."""
    code = f"""
import tensorflow as tf
class M(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def predict(self, x):
        return {{"y": 0.5 * x + 2.0}}
m = M()
tf.saved_model.save(m, {str(base / "1")!r}, signatures={{"serving_default": m.predict}})
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return base


class Target:
    def __init__(self, name: str, server, url: str):
        self.name, self.server, self.url = name, server, url


def start_tfgate(name: str, workdir: Path, model_base: Path, tree: Path | None, flags: list[str]) -> Target:
    from tfgate.serving.processes import ModelServer, free_port, tfgate_command

    grpc_port, rest_port = free_port(), free_port()
    args = ["--bind_address=127.0.0.1", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
            f"--model_name={MODEL}", f"--model_base_path={model_base}", *flags]
    if tree is None:
        cmd = [*tfgate_command(), "model-server", *args]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-tree", str(tree), "--", *args]
    server = ModelServer(cmd, workdir / f"{name.replace(' ', '_')}.log", grpc_port, rest_port, name=name)
    server.start(timeout=180)
    return Target(name, server, f"{server.rest_url}/v1/models/{MODEL}:predict")


def start_kserve(workdir: Path, model_base: Path) -> Target:
    from tfgate.serving.processes import ServerProcess, free_port

    python = REPO / ".venv" / "peers" / "kserve" / "bin" / "python"
    script = REPO / "benchmarks" / "peers" / "kserve_predictor.py"
    if not python.exists() or not script.exists():
        raise SystemExit(f"--kserve needs {python} and {script} (the peer benchmark's)")
    http, grpc_port = free_port(), free_port()
    server = ServerProcess([str(python), str(script), f"--http_port={http}", f"--grpc_port={grpc_port}",
                            f"--models={MODEL}={model_base / '1'}"], workdir / "kserve.log", name="kserve")
    server.start(wait=False)
    target = Target("KServe ModelServer", server, f"http://127.0.0.1:{http}/v1/models/{MODEL}:predict")
    server._poll(lambda: _answers(target.url), 180)
    return target


def _answers(url: str) -> bool:
    req = urllib.request.Request(url, BODY.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


# ---- load
def wrk(url: str, concurrency: int, seconds: float, lua: Path, timeout_s: float = 5) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", f"--timeout={timeout_s:g}s",
                          "-s", str(lua), url], capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    d = json.loads(line[len("WRKJSON "):])
    secs = d["duration_us"] / 1e6
    errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
    return {"qps": round(d["requests"] / secs, 1), "requests": d["requests"],
            "p50_ms": d["p50_us"] / 1e3, "p90_ms": d["p90_us"] / 1e3, "p99_ms": d["p99_us"] / 1e3,
            "p999_ms": d["p999_us"] / 1e3, "max_ms": d["max_us"] / 1e3, "mean_ms": round(d["mean_us"] / 1e3, 3),
            "statuses": d["statuses"], "socket_errors": errors, "timeouts": d["timeout"]}


def run(targets: list[Target], concurrencies: list[int], repeats: int, duration: float, warmup: float,
        lua: Path) -> list[dict]:
    rows = []
    for rep in range(repeats):
        for c in concurrencies:
            k = (rep + concurrencies.index(c)) % len(targets)
            for t in targets[k:] + targets[:k]:  # rotated: no target always first after another's load
                wrk(t.url, c, warmup, lua)
                r = wrk(t.url, c, duration, lua)
                r.update(target=t.name, concurrency=c, repeat=rep)
                if c >= 256:  # the load drops at once: is it served as before?
                    after = wrk(t.url, 1, 2, lua)
                    r["recovery_c1"] = {k: after[k] for k in ("qps", "p50_ms", "p99_ms", "statuses", "socket_errors")}
                rows.append(r)
                print(f"rep {rep} c={c:<3} {t.name:38s} {r['qps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                      f"p99 {r['p99_ms']:7.2f} ms  {r['statuses']} errors {r['socket_errors']}", flush=True)
    return rows


# ---- summary
def _range(xs: list[float]) -> list[float]:
    return [round(min(xs), 3), round(sorted(xs)[len(xs) // 2], 3), round(max(xs), 3)]


def summarize(rows: list[dict], names: list[str], concurrencies: list[int]) -> dict:
    """Per target and concurrency: [min, median, max] over the repeats."""
    out = {}
    for n in names:
        for c in concurrencies:
            rs = [r for r in rows if r["target"] == n and r["concurrency"] == c]
            if rs:
                out.setdefault(n, {})[str(c)] = {k: _range([r[k] for r in rs])
                                                 for k in ("qps", "p50_ms", "p99_ms", "p999_ms")}
    return out


def ratios(rows: list[dict], num: str, den: str, concurrencies: list[int]) -> dict:
    """`num` over `den`, pair by pair (same repeat and concurrency), [min, median, max]: p99 and p50 < 1 are
    better, qps > 1 is better."""
    out = {}
    for c in concurrencies:
        pairs = [(a, b) for a in rows for b in rows if a["target"] == num and b["target"] == den
                 and a["concurrency"] == b["concurrency"] == c and a["repeat"] == b["repeat"]]
        if pairs:
            out[str(c)] = {k: _range([a[k] / b[k] for a, b in pairs]) for k in ("qps", "p50_ms", "p99_ms")}
    return out


def overload(rows: list[dict]) -> dict:
    """c >= 256: only success or a clear overload status, no socket errors, and c=1 served right after."""
    out = {}
    for r in rows:
        if r["concurrency"] < 256:
            continue
        rec = r["recovery_c1"]
        ok = (set(r["statuses"]) <= OVERLOAD_STATUSES and not r["socket_errors"]
              and set(rec["statuses"]) == {"200"} and not rec["socket_errors"])
        o = out.setdefault(r["target"], {"ok": True, "statuses": {}, "socket_errors": 0, "recovery_p50_ms": []})
        o["ok"] &= ok
        for s, n in r["statuses"].items():
            o["statuses"][s] = o["statuses"].get(s, 0) + n
        o["socket_errors"] += r["socket_errors"]
        o["recovery_p50_ms"].append(rec["p50_ms"])
    return out


def plot(rows: list[dict], names: list[str], concurrencies: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for n in names:
        def band(key, n=n):
            lo, mid, hi = [], [], []
            for c in concurrencies:
                xs = sorted(r[key] for r in rows if r["target"] == n and r["concurrency"] == c)
                lo.append(xs[0])
                mid.append(xs[len(xs) // 2])
                hi.append(xs[-1])
            return lo, mid, hi
        for ax, key, title in ((axes[0], "qps", "throughput (req/s)"), (axes[1], "p50_ms", "p50 (ms)"),
                               (axes[2], "p99_ms", "p99 (ms)")):
            lo, mid, hi = band(key)
            line, = ax.plot(concurrencies, mid, marker="o", label=n)
            ax.fill_between(concurrencies, lo, hi, color=line.get_color(), alpha=0.2)
            ax.set_title(title)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
        ax.set_xlabel("concurrency (wrk -t1 -cN)")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"REST Predict {MODEL} {BODY}: median of repeats, band min-max", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _commit(tree: Path) -> str | None:
    try:
        sha = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "serving"],
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+uncommitted serving/ changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-tree":
        rest = sys.argv[3:]
        return serve_tree(Path(sys.argv[2]), rest[1:] if rest[:1] == ["--"] else rest)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="an earlier tfgate source tree (a `git worktree`) to compare with")
    ap.add_argument("--batching", action="store_true", help="also each tfgate with --enable_batching")
    ap.add_argument("--kserve", action="store_true", help="also KServe's ModelServer (.venv/peers/kserve)")
    ap.add_argument("--concurrency", default="1,64,256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10, help="seconds measured per run")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of load before each run, not measured")
    ap.add_argument("--out", default=str(RESULTS / "rest_tail"), help="STEM: writes STEM.json and STEM.png")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    sys.path.insert(0, str(REPO))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    baseline = Path(args.baseline).resolve() if args.baseline else None

    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="rest_tail_") as tmp:
        work = Path(tmp)
        lua = work / "predict.lua"
        lua.write_text(WRK_LUA.replace("%BODY%", BODY))
        model = make_model(work / MODEL)
        specs = [("tfgate", None, [])]
        if baseline:
            specs.append((f"tfgate baseline {_commit(baseline) or baseline.name}", baseline, []))
        if args.batching:
            specs += [(f"{n} --enable_batching", tree, ["--enable_batching"]) for n, tree, _ in list(specs)]
        try:
            for name, tree, flags in specs:
                targets.append(start_tfgate(name, work, model, tree, flags))
            if args.kserve:
                targets.append(start_kserve(work, model))
            started = time.time()
            rows = run(targets, concurrencies, args.repeats, args.duration, args.warmup, lua)
        finally:
            for t in targets:
                t.server.stop(signal.SIGTERM, timeout=30)
    names = [t.name for t in targets]
    report = {
        "what": f"POST /v1/models/{MODEL}:predict {BODY}, wrk -t1 -cN --timeout 5s, {args.duration:g} s after "
                f"{args.warmup:g} s of warm-up, interleaved (rotated order), {args.repeats} repeats",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg(),
                    "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
                    "minutes": round((time.time() - started) / 60, 1)},
        "current": _commit(REPO), "baseline": str(baseline) if baseline else None,
        "summary": summarize(rows, names, concurrencies),
        "overload": overload(rows),
        "runs": rows,
    }
    base_names = [n for n in names if n.startswith("tfgate baseline")]
    report["ratios"] = {}
    for now, base in zip([n for n in names if n.startswith("tfgate") and n not in base_names], base_names,
                         strict=False):
        report["ratios"][f"{now} / {base}"] = ratios(rows, now, base, concurrencies)
    if args.kserve:
        for now in (n for n in names if n.startswith("tfgate") and n not in base_names):
            report["ratios"][f"{now} / KServe ModelServer"] = ratios(rows, now, "KServe ModelServer", concurrencies)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(rows, names, concurrencies, out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("summary", "ratios", "overload")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
