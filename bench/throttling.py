"""GetRecommendations under overload, with and without a campaign request limit (serve.py
`campaign_requests_per_second`): does the server stay up, and do the requests it admits keep their latency?

    python bench/throttling.py [--seconds 10] [--overload 1.5] [--limit 0.4] [--solution <dir>]

Starts `python serve.py` (one process, access log off, events in a temporary SQLite file) three times on a small
demo solution (or --solution): (1) 8 clients, no limit: the capacity (requests/s) and the latency at a load the
server keeps up with; (2) overload, no limit: requests sent at --overload times that capacity whatever the
answers' pace (open loop), every one admitted and queued; (3) the same overload with the limit set to --limit
times the capacity: the admitted requests (200) and the refused ones (400 ThrottlingException). The limit
leaves room for the refusals, which are not free (HTTP parsing, the access controls, the request's body):
refusing costs a fraction of a served call, a larger fraction the cheaper the model. Requests go over
keep-alive connections (bench/serving_latency.py's minimal HTTP/1.1 client); latencies count from when a
request was due. Reported per run: answers/s by status, p50 / p99 of each status, whether `GET /ping`
answers afterwards, and for (3) whether the admitted p99 is within `--target` times the p99 of (1).
Client and server share the machine's cores: on 2 cores the client's own cost is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
from serving_latency import ARN, free_port, post, train_solution

from personalize_torch.serving.http.worker_processes import wait_until_serving

REPO = Path(__file__).resolve().parents[1]


async def closed_loop(url: str, users: list[str], clients: int, seconds: float) -> dict[int, list[float]]:
    """`clients` connections sending GetRecommendations back to back for `seconds`: latencies by status."""
    host, port = url.removeprefix("http://").split(":")
    by_status: dict[int, list[float]] = defaultdict(list)
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status = await post(reader, writer, f"{host}:{port}", "/recommendations", body(users))
                by_status[status].append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(client(r, w) for r, w in connections))
    return by_status


async def open_loop(url: str, users: list[str], rate: float, seconds: float, connections: int
                    ) -> dict[int, list[float]]:
    """GetRecommendations sent at `rate` a second for `seconds`, whatever the answers' pace (each on one of
    `connections` keep-alive connections, waiting for a free one when all are busy): latencies by status,
    counted from when each request was due, so time spent waiting for a connection counts too."""
    host, port = url.removeprefix("http://").split(":")
    by_status: dict[int, list[float]] = defaultdict(list)
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, int(port)))

    async def one(due: float) -> None:
        reader, writer = await idle.get()
        status = await post(reader, writer, f"{host}:{port}", "/recommendations", body(users))
        by_status[status].append(time.perf_counter() - due)
        idle.put_nowait((reader, writer))

    start, tasks = time.perf_counter(), []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return by_status


def body(users: list[str]) -> dict:
    return {"campaignArn": ARN, "userId": random.choice(users), "numResults": 25}


def run(solution: str, tmp: Path, users: list[str], load, limit: float | None) -> dict:
    """Start serve.py (with `limit` as campaign_requests_per_second), warm it up, then `load(url)`; the answers
    per second and latency percentiles by status, and whether the server still answers GET /ping."""
    port = free_port()
    overrides = [f"solution={solution}", f"port={port}", f"events_db={tmp / f'events-{port}.sqlite'}",
                 "access_log=false", "log_level=warning"]
    if limit is not None:
        overrides.append(f"campaign_requests_per_second={limit}")
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), *overrides], cwd=REPO,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(url, timeout=120):
            raise SystemExit(f"serve.py did not answer {url}/ping within 120 s")
        asyncio.run(closed_loop(url, users, 4, 2.0))                                  # warm-up
        started = time.perf_counter()
        by_status = asyncio.run(load(url))
        seconds = time.perf_counter() - started
        with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
            alive = answer.status == 200 and server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=60)
    row = {"limit_per_s": limit, "server_up_after": alive, "seconds": round(seconds, 1)}
    for status, latencies in sorted(by_status.items()):
        ms = np.array(latencies) * 1000
        row[str(status)] = {"per_s": round(len(ms) / seconds, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
                            "p99_ms": round(float(np.percentile(ms, 99)), 2)}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--overload", type=float, default=1.5, help="offered rate, as a multiple of the capacity")
    p.add_argument("--limit", type=float, default=0.4, help="campaign_requests_per_second, as a multiple of the "
                   "capacity (leave room for refusals: each costs part of a served call)")
    p.add_argument("--connections", type=int, default=256, help="client connections in the overload runs")
    p.add_argument("--target", type=float, default=2.0, help="admitted p99 allowed, as a multiple of run 1's")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        solution = args.solution or train_solution("default", "popularity_count", 1, Path(tmp) / "solution")
        from personalize_torch.solution_version import load_solution_version

        users = list(load_solution_version(solution).user_vocab.ids)
        capacity = run(solution, Path(tmp), users, lambda url: closed_loop(url, users, 8, args.seconds), None)
        print(json.dumps(capacity), flush=True)
        rate = round(args.overload * capacity["200"]["per_s"])
        limit = round(args.limit * capacity["200"]["per_s"], 1)
        def offered(url):
            return open_loop(url, users, rate, args.seconds, args.connections)

        unlimited = run(solution, Path(tmp), users, offered, None)
        print(json.dumps(unlimited), flush=True)
        limited = run(solution, Path(tmp), users, offered, limit)
        print(json.dumps(limited), flush=True)
    target_ms = args.target * capacity["200"]["p99_ms"]
    print(f"\nOffered in the overload runs: {rate} requests/s ({args.overload:g} x capacity), open loop, "
          f"{args.connections} connections; limit: {limit} requests/s ({args.limit:g} x capacity).\n")
    print("| run | limit (req/s) | 200/s | 200 p50 / p99 ms | 400 ThrottlingException/s | 400 p50 / p99 ms "
          "| other statuses/s | up after |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in [("capacity (8 clients back to back)", capacity), ("overload, no limit", unlimited),
                      ("overload, limit", limited)]:
        ok, refused = row.get("200", {}), row.get("400", {})
        other = sum(v["per_s"] for k, v in row.items() if k not in ("200", "400") and isinstance(v, dict))
        print(f"| {name} | {row['limit_per_s'] or '-'} | {ok.get('per_s', 0)} | "
              f"{ok.get('p50_ms', '-')} / {ok.get('p99_ms', '-')} | {refused.get('per_s', 0)} | "
              f"{refused.get('p50_ms', '-')} / {refused.get('p99_ms', '-')} | {other} | {row['server_up_after']} |")
    admitted_p99 = limited.get("200", {}).get("p99_ms", float("inf"))
    print(json.dumps({"target_p99_ms": round(target_ms, 2), "admitted_p99_ms": admitted_p99,
                      "within_target": admitted_p99 <= target_ms}))


if __name__ == "__main__":
    main()
