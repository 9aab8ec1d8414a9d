"""The gateway's processes: one gateway process, or a supervisor of N workers on one port.

With --workers N the supervisor starts N `python -m tfgate.serving.gateway --worker` processes that
bind the same port with SO_REUSEPORT (the kernel spreads connections over them), serves the
metrics of all of them (prometheus multiprocess mode), restarts a worker that dies, and on
SIGTERM forwards it and waits for every worker to drain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ..tfs_protos import install_light_tensorflow
from .config import ConfigError, load


def _fail(msg: str) -> int:
    print(json.dumps({"level": "error", "logger": "tfgate.gateway", "msg": msg}), file=sys.stderr)
    return 2


def _metrics_server(hostport: str, registry=None) -> None:
    from prometheus_client import start_http_server

    host, _, port = hostport.rpartition(":")
    if registry is None:
        start_http_server(int(port), addr=host)
    else:
        start_http_server(int(port), addr=host, registry=registry)


def run_worker(config_path: str, reuse_port: bool, serve_metrics: bool) -> int:
    try:
        cfg = load(config_path)
    except ConfigError as exc:
        return _fail(f"invalid gateway config: {exc}")
    install_light_tensorflow()
    from . import logs
    from .server import serve

    logs.setup(cfg.log_level)
    try:
        if serve_metrics and cfg.metrics_listen:
            _metrics_server(cfg.metrics_listen)
        from .. import event_loop

        return event_loop.run(serve(cfg, reuse_port=reuse_port))
    except (OSError, RuntimeError, ValueError) as exc:
        return _fail(f"gateway failed to start: {exc}")


def run(config_path: str, workers: int | None) -> int:
    try:
        cfg = load(config_path)
    except ConfigError as exc:
        return _fail(f"invalid gateway config: {exc}")
    n = workers or cfg.workers
    if n == 1:
        return run_worker(config_path, reuse_port=False, serve_metrics=True)
    return _supervise(config_path, cfg, n)


def _supervise(config_path: str, cfg, n: int) -> int:
    mp_dir = tempfile.mkdtemp(prefix="tfgate-gateway-metrics-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=mp_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
    from prometheus_client import CollectorRegistry, multiprocess

    cmd = [sys.executable, "-m", "tfgate.serving.gateway", "--worker", "--config", config_path]
    stopping = False
    procs: list[subprocess.Popen] = []  # before the handlers: an early SIGTERM must find a list

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for _ in range(n):
        if not stopping:
            procs.append(subprocess.Popen(cmd, env=env))
    if cfg.metrics_listen:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        _metrics_server(cfg.metrics_listen, registry)
    worst = 0
    try:
        while True:
            alive = False
            for i, p in enumerate(procs):
                rc = p.poll()
                if rc is None:
                    alive = True
                    continue
                multiprocess.mark_process_dead(p.pid)
                if stopping:
                    worst = max(worst, rc if rc >= 0 else 1)
                    continue
                if rc == 2:  # configuration or bind error: restarting will not help
                    on_signal(signal.SIGTERM, None)
                    worst = 2
                    continue
                time.sleep(0.5)
                procs[i] = subprocess.Popen(cmd, env=env)
                alive = True
            if not alive:
                return worst
            time.sleep(0.2)
    finally:
        shutil.rmtree(mp_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfgate.serving.gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--worker", action="store_true", help="internal: one of --workers N")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.config, reuse_port=True, serve_metrics=False)
    return run(args.config, args.workers or None)
