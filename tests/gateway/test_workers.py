"""`tfgate gateway --workers 2`: two processes on one port, both answer, one Prometheus view,
a dead worker is replaced, SIGTERM to the parent stops every worker and exits 0."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import grpc

from tfgate.v1 import gateway_pb2 as pb
from tfgate.v1 import gateway_pb2_grpc as pb_grpc

from .helpers import Gateway, free_port


def _lines(g: Gateway) -> list[dict]:
    out = []
    for line in g.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _listening(g: Gateway) -> list[int]:
    return [r["pid"] for r in _lines(g) if r.get("msg") == "gateway listening"]


def _wait(cond, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_workers_share_the_port_and_stop_on_sigterm(tmp_path):
    # The backend is down: ListModels still answers (with no versions) and is logged per worker.
    g = Gateway(tmp_path, {"models": {"m": {"targets": [f"127.0.0.1:{free_port()}"]}}}, workers=2)
    try:
        _wait(lambda: len(set(_listening(g))) == 2)
        workers = set(_listening(g))
        assert g.proc.pid not in workers
        n = 60
        for i in range(n):  # a new connection each time: the kernel spreads connections, not calls
            with grpc.insecure_channel(g.target) as ch:
                pb_grpc.InferenceGatewayStub(ch).ListModels(
                    pb.ListModelsRequest(), metadata=(("x-request-id", f"w-{i}"),), timeout=10)
        _wait(lambda: sum(str(r.get("request_id", "")).startswith("w-") for r in _lines(g)) == n)
        by_pid = {r["pid"] for r in _lines(g) if str(r.get("request_id", "")).startswith("w-")}
        assert by_pid == workers
        # The parent's /metrics is the sum over the workers.
        text = urllib.request.urlopen(f"http://127.0.0.1:{g.metrics_port}/metrics", timeout=10).read().decode()
        assert f'tfgate_gateway_requests_total{{code="OK",method="ListModels",model="-"}} {float(n)}' in text

        # A worker that dies is replaced.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(set(_listening(g)) - workers) == 1)
        workers = (workers - {victim}) | (set(_listening(g)) - workers)
        with grpc.insecure_channel(g.target) as ch:
            pb_grpc.InferenceGatewayStub(ch).ListModels(pb.ListModelsRequest(), timeout=10)
    finally:
        rc = g.stop()
    assert rc == 0, g.log()
    assert not any(_alive(p) for p in workers)
    stopped = {r["pid"] for r in _lines(g) if r.get("msg") == "stopped"}
    assert stopped == workers, g.log()
