"""Reliability runs (issue 8): hot swap, backend crash, gateway rolling restart, memory soak, overload,
plus the fuzz tests at benchmark size; writes benchmarks/results/reliability.json and reliability_*.png.

    python -m benchmarks.reliability            # full run (minutes)
    python -m benchmarks.reliability --quick    # seconds per scenario
    python -m benchmarks.reliability --only hot_swap,overload
    python -m benchmarks.reliability --table    # the README table from reliability.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import scenarios
from .report import table

RESULTS = Path(__file__).resolve().parents[1] / "results"

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.splitlines()[0])
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
    names = [n for n in args.only.split(",") if n] or [*scenarios.SCENARIOS, "fuzz"]
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if args.only and out_path.exists() else {}
    results.update({"mode": "quick" if args.quick else "full", "cpus": os.cpu_count(),
                    "command": "python -m benchmarks.reliability" + (" --quick" if args.quick else "")})
    for name in names:
        t = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"tfgate-rel-{name}-"))
        print(f"== {name}", flush=True)
        try:
            if name == "fuzz":
                res = scenarios.fuzz(args.fuzz_examples if not args.quick else 300)
            else:
                kwargs = dict(sizes[name])
                if name == "memory":
                    kwargs["png"] = out_path.parent / "reliability_memory.png"
                res = scenarios.SCENARIOS[name](work, **kwargs)
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
