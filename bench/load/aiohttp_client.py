#!/usr/bin/env python3
"""A minimal asyncio + aiohttp streaming client, for comparison with
`deploybench load` (a dev tool, never part of the product).

It measures the way vLLM's benchmark_serving does: the start time is taken
just before session.post(); TTFT is the arrival of the first SSE chunk that
carries text; each later chunk adds one inter-token latency (per chunk);
latency ends at the last chunk.  Closed loop: N workers, each sending its
next request when the last one ends.  Written for this comparison; it copies
no code.

usage: aiohttp_client.py URL --concurrency N --num-requests M --gen-tokens G --prompt-tokens P [--out FILE]
"""
import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time

import aiohttp


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(1, -(-len(xs) * p // 100))  # nearest rank
    return xs[int(k) - 1]


async def one(session, url, body, res):
    st = time.perf_counter()
    ttft = None
    last = st
    itls = []
    ok = False
    try:
        async with session.post(url, json=body) as r:
            if r.status != 200:
                res["errors"] += 1
                return
            async for raw in r.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    ok = True
                    continue
                obj = json.loads(data)
                ch = obj.get("choices") or []
                if not ch:
                    continue
                text = ch[0].get("text")
                if text is None:
                    text = (ch[0].get("delta") or {}).get("content")
                if not text:
                    continue
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - st
                else:
                    itls.append(now - last)
                last = now
    except Exception:  # noqa: BLE001 - count and continue, like the benchmarks do
        res["errors"] += 1
        return
    if ok and ttft is not None:
        res["ttft"].append(ttft * 1e3)
        res["itl"].extend(x * 1e3 for x in itls)
        res["e2el"].append((last - st) * 1e3)
        res["events"] += len(itls) + 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--num-requests", type=int, default=100)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--out")
    a = ap.parse_args()
    url = a.url.rstrip("/") + "/v1/completions"
    res = {"ttft": [], "itl": [], "e2el": [], "errors": 0, "events": 0}
    todo = list(range(a.num_requests))
    rng = random.Random(0)

    async def worker(session):
        while todo:
            todo.pop()
            body = {"model": a.model, "prompt": [rng.randrange(1000, 21000) for _ in range(a.prompt_tokens)],
                    "max_tokens": a.gen_tokens, "temperature": 0, "stream": True, "ignore_eos": True}
            await one(session, url, body, res)

    conn = aiohttp.TCPConnector(limit=a.concurrency)
    timeout = aiohttp.ClientTimeout(total=6 * 3600)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, read_bufsize=10 * 1024 * 1024) as s:
        await asyncio.gather(*(worker(s) for _ in range(a.concurrency)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    out = {"client": "aiohttp", "aiohttp_version": aiohttp.__version__, "concurrency": a.concurrency,
           "completed": len(res["e2el"]), "errors": res["errors"], "duration_s": wall,
           "request_throughput_req_per_s": len(res["e2el"]) / wall, "sse_events_per_s": res["events"] / wall,
           "client_cpu_s": cpu, "client_cpu_utilization": cpu / wall,
           "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    for m in ("ttft", "itl", "e2el"):
        xs = res[m]
        out[f"mean_{m}_ms"] = statistics.fmean(xs) if xs else None
        for p in (50, 90, 99):
            out[f"p{p}_{m}_ms"] = pct(xs, p)
    s = json.dumps(out, indent=1)
    print(s)
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
