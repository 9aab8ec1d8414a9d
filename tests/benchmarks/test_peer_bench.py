"""benchmarks/peer_bench.py's pure helpers (the peer servers and wrk are exercised by the benchmark run itself:
their venvs are not built in CI): wrk's report line, and the overload verdict on tfgate's status codes."""

import pytest

from benchmarks.peer_bench import overload_verdicts, parse_wrk_output, summarize

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8501/v1/models/housing:predict
  1 threads and 256 connections
  12000 requests in 10.00s, 2.10MB read
  Non-2xx or 3xx responses: 40
Requests/sec:   1200.00
PEER_BENCH_JSON {"requests":12000,"duration_us":10000000,"bytes":2200000,"errors":{"connect":0,"read":2,\
"write":0,"status":40,"timeout":0},"latency_us":{"min":900,"mean":52000.5,"max":410000,"percentiles":\
{"50":48000,"90":90000,"99":250500,"99.9":400000}},"statuses":{"200":11960,"503":40},\
"bodies":{"503":"{\\"error\\": \\"UNAVAILABLE: the batch queue is full\\"}"}}
"""


def test_wrk_report_line_parsed():
    r = parse_wrk_output(WRK_OUTPUT)
    assert (r["req_s"], r["p50_ms"], r["p99_ms"], r["max_ms"]) == (1200.0, 48.0, 250.5, 410.0)
    assert r["statuses"] == {200: 11960, 503: 40} and r["non_2xx"] == 40 and r["completed"] == 12000
    assert r["socket_errors"] == {"read": 2}  # wrk's "status" count is the non-2xx one, not a socket error
    assert "queue is full" in r["bodies"][503]


def test_no_report_line_is_an_error_naming_it():
    with pytest.raises(ValueError, match="PEER_BENCH_JSON"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def run(row, c, statuses, bodies=None, **extra):
    return {"model": "housing", "row": row, "label": row, "concurrency": c, "req_s": 100.0, "p50_ms": 2.0,
            "p99_ms": 9.0, "non_2xx": sum(v for k, v in statuses.items() if k != 200), "socket_errors": {},
            "statuses": statuses, "bodies": bodies or {}, "server_cpu_ms_per_request": 1.0, **extra}


def test_overload_verdict_accepts_503_with_a_message_only():
    recovery = {"req_s": 90.0, "p50_ms": 3.0, "p99_ms": 5.0, "non_2xx": 0}
    runs = [run("tfgate v1", 1, {200: 10}), run("kserve v1", 1, {200: 10}),
            run("tfgate v1", 256, {200: 90, 503: 10}, {503: "UNAVAILABLE: queue full"}, recovery=recovery),
            run("tfgate v2", 256, {200: 90, 500: 1}, {500: "Internal Server Error"}),
            run("tfgate-batching v1", 256, {200: 90, 503: 3}, {503: " "}),
            run("kserve v1", 256, {200: 90, 500: 1}, {500: "boom"})]
    verdicts = overload_verdicts(summarize(runs), 256)
    assert verdicts["tfgate v1 housing"]["only_success_or_overload"] is True
    assert verdicts["tfgate v1 housing"]["recovery_p50_ratio"] == 1.5
    assert verdicts["tfgate v2 housing"]["only_success_or_overload"] is False  # a 500 is not an overload answer
    assert verdicts["tfgate-batching v1 housing"]["only_success_or_overload"] is False  # 503 without a message
    assert "only_success_or_overload" not in verdicts["kserve v1 housing"]  # peers' codes are recorded, not judged
