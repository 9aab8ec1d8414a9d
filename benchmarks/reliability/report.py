"""The README's reliability table, from reliability.json."""

from __future__ import annotations


def table(r: dict) -> str:
    """The README's table, from reliability.json."""
    rows = ["| Run | Result | Figures |", "|---|---|---|"]

    def ok(name):
        return "pass" if r.get(name, {}).get("pass") else "FAIL" if name in r else "not run"

    if "hot_swap" in r and "swap" in r["hot_swap"]:
        h = r["hot_swap"]
        rows.append(f"| 1. Hot swap (c={h['concurrency']}, 3 versions published, label moved twice) | "
                    f"{ok('hot_swap')} | "
                    f"{h['steady']['requests'] + h['swap']['requests']:,} requests, "
                    f"{h['steady']['failed'] + h['swap']['failed']} failed; p99 steady {h['steady']['p99_ms']} ms, "
                    f"during swap {h['swap']['p99_ms']} ms ({h['p99_ratio']}x); versions served "
                    f"{h['versions_served_during_swap']}; {h['responses_with_version_not_available']} responses "
                    f"tagged with a version not AVAILABLE |")
    if "backend_crash" in r and "requests" in r["backend_crash"]:
        b = r["backend_crash"]
        rows.append(f"| 2. Backend SIGKILL + restart (2 replicas, c={b['concurrency']}) | {ok('backend_crash')} | "
                    f"{b['requests']:,} requests, {b['failed']} failed, {b['retried']} retried by the client; "
                    f"replica back SERVING {b['restart_seconds']} s after the kill, gateway healthy on both "
                    f"{b['recovery_seconds']} s after; worst latency around the kill "
                    f"{b['max_latency_around_kill_ms']} ms |")
    if "rolling_restart" in r and "requests" in r["rolling_restart"]:
        g = r["rolling_restart"]
        rows.append(f"| 3. Rolling SIGTERM restart of 2 gateways (c={g['concurrency']}) | {ok('rolling_restart')} | "
                    f"{g['requests']:,} requests, {g['failed']} failed, {g['retried']} retried; exit codes "
                    f"{g['exit_codes']}; p99 {g['p99_ms']} ms |")
    if "memory" in r and "requests_done" in r["memory"]:
        m = r["memory"]
        rows.append(f"| 4. Memory ({m['requests_done']:,} of {m['requests_target']:,} requests after "
                    f"{m['warmup']:,} warm-up, {m['seconds']} s) | {ok('memory')} | "
                    f"model server RSS {m['model_server_rss_mb']['start']} -> {m['model_server_rss_mb']['end']} MB "
                    f"(max growth {m['model_server_rss_mb']['max_growth']} MB); gateway "
                    f"{m['gateway_rss_mb']['start']} -> {m['gateway_rss_mb']['end']} MB (max growth "
                    f"{m['gateway_rss_mb']['max_growth']} MB); {m['failed']} failed; "
                    f"[curve](benchmarks/results/reliability_memory.png) |")
    if "overload" in r and "overload_2x" in r["overload"]:
        o = r["overload"]
        x, y = o["overload_2x"], o["recovery_half"]
        rows.append(f"| 5. Overload (sustainable {o['sustainable_rps']} req/s, 2x offered, deadline "
                    f"{o['deadline_s']} s) | {ok('overload')} | at 2x: {x['ok']:,} OK, {x['shed']:,} shed "
                    f"(p99 {x['shed_p99_ms']} ms), {x['deadline_exceeded']} DEADLINE_EXCEEDED, slowest answer "
                    f"{x['max_latency_s']} s, goodput {x['goodput_rps']} req/s; back at 0.5x: {y['failed']} failed, "
                    f"{y['goodput_rps']} of {y['offered_rps']} req/s |")
    if "fuzz" in r and "pytest" in r["fuzz"]:
        f = r["fuzz"]
        rows.append(f"| Fuzzing (hypothesis, gRPC + REST, {f.get('rest_json_mb', '?')} MB JSON) | {ok('fuzz')} | "
                    f"{f['passing_examples']:,} cases; pytest: {f['pytest']} |")
    return "\n".join(rows)
