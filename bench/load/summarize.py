#!/usr/bin/env python3
"""Tabulates bench/load/compare.sh results: the latency each client adds over
the synthetic server's configured schedule, and what it costs the client."""
import json
import sys

out, conc, ttft, itl = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])


def cpu(client, c):
    try:
        u, s, e = open(f"{out}/time.{client}.{c}").read().split()[-3:]
        return float(u) + float(s), float(e)
    except (OSError, ValueError):
        return None, None


def fmt(x, p=2):
    return "-" if x is None else f"{x:.{p}f}"


print(f"configured TTFT {ttft} ms, ITL {itl} ms\n")
print("| concurrency | client | completed | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) "
      "| TTFT p50 - configured (ms) | req/s | client CPU s (whole process) | wall s |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in conc.split(","):
    rows = []
    try:
        lv = json.load(open(f"{out}/dpb.{c}/summary.json"))["levels"][0]
        rows.append(("deploybench", lv["completed"], lv["median_ttft_ms"], lv["p99_ttft_ms"], lv["median_itl_ms"],
                     lv["p99_itl_ms"], lv["request_throughput"]))
    except (OSError, KeyError, IndexError):
        rows.append(("deploybench",) + (None,) * 6)
    try:
        a = json.load(open(f"{out}/aiohttp.{c}.json"))
        rows.append(("aiohttp (vLLM-style timing)", a["completed"], a["p50_ttft_ms"], a["p99_ttft_ms"], a["p50_itl_ms"],
                     a["p99_itl_ms"], a["request_throughput_req_per_s"]))
    except (OSError, KeyError):
        rows.append(("aiohttp (vLLM-style timing)",) + (None,) * 6)
    try:
        g = json.load(open(f"{out}/guidellm.{c}.json"))["benchmarks"][0]["metrics"]
        t = g["time_to_first_token_ms"]["successful"]["percentiles"]
        i = g["inter_token_latency_ms"]["successful"]["percentiles"]
        rows.append(("guidellm", g["request_totals"]["successful"], t["p50"], t["p99"], i["p50"], i["p99"],
                     g["requests_per_second"]["successful"]["mean"]))
    except (OSError, KeyError, IndexError):
        rows.append(("guidellm",) + (None,) * 6)
    for name, done, t50, t99, i50, i99, rps in rows:
        key = name.split()[0]
        cs, wall = cpu(key, c)
        print(f"| {c} | {name} | {fmt(done, 0)} | {fmt(t50)} | {fmt(t99)} | {fmt(i50, 3)} | {fmt(i99, 3)} | "
              f"{fmt(None if t50 is None else t50 - ttft)} | {fmt(rps, 1)} | {fmt(cs)} | {fmt(wall)} |")
