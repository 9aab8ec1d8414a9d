"""Gateway benchmark: serving_bench.py's (b) direct model server, (d) gateway pass-through,
(e) gateway typed API and (g) a bare gRPC proxy (the floor), in one run against the same model
server. Writes benchmarks/results/gateway.json and benchmarks/results/gateway_latency.png.

Targets (issue 5): at concurrency 1 the pass-through adds <= 0.5 ms to p50; at concurrency 64 it
keeps >= 80% of the direct QPS (see "targets" in the JSON).

    python benchmarks/gateway_bench.py --housing models/housing --fashion models/fashion [--duration 3] [--repeat 3]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(subprocess.call([sys.executable, str(HERE / "serving_bench.py"), "--cases", "b,d,e,g",
                              "--out", str(HERE / "results" / "gateway.json"), *sys.argv[1:]]))
