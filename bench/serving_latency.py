"""GetRecommendations latency and throughput, and PutEvents throughput, of `serve.py` over loopback.

    python bench/serving_latency.py --solution <solution dir> [--seconds 10] [--concurrency 1 8 64]
    python bench/serving_latency.py --train beauty --recipe user_personalization --epochs 1

Starts `python serve.py` in a subprocess (its own process, access log off, events in a temporary SQLite
file with the default synchronous=FULL), then for each concurrency level keeps that many HTTP/1.1
keep-alive clients (asyncio streams with a minimal HTTP/1.1 client, in this process) busy for --seconds with GetRecommendations for
random known users, and reports p50 / p99 latency and requests per second; then PutEvents throughput.
Client and server share the machine's cores: on 2 cores the client's own cost is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from personalize_torch.serving.http.worker_processes import wait_until_serving

REPO = Path(__file__).resolve().parents[1]
ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_solution(data: str, recipe: str, epochs: int, out: Path) -> str:
    from personalize_torch.training import compose_config, train

    cfg = compose_config([f"data={data}", f"recipe={recipe}", "logger=none", f"trainer.max_epochs={epochs}",
                          "trainer.enable_progress_bar=false"], output_dir=out)
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    return train(cfg)["solution"]


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str,
               payload: dict) -> int:
    """One HTTP/1.1 keep-alive POST of `payload` as JSON on an open connection; returns the status code.
    A minimal client (about 0.1 ms of CPU per request against ~1 ms for httpx): on 2 cores the load
    generator shares the server's CPU, and a heavy client would be most of what is measured."""
    body = json.dumps(payload).encode()
    writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def served_by(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> int:
    """Which server process (`/ping`'s `worker`) answers on this connection."""
    writer.write(b"GET /ping HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
    return int(json.loads(await reader.readexactly(length)).get("worker", 0))


async def load(url: str, users: list[str], concurrency: int, seconds: float, path: str, body,
               workers: Counter | None = None) -> list[float]:
    """`concurrency` clients, each on its own keep-alive connection, sending requests back to back for
    `seconds`; the latency of every request. `workers` counts the connections each server process holds."""
    latencies: list[float] = []
    failures = 0
    host, port = url.removeprefix("http://").split(":")
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(concurrency)]
    for reader, writer in connections:
        worker_id = await served_by(reader, writer, f"{host}:{port}")
        if workers is not None:
            workers[worker_id] += 1
    deadline = time.perf_counter() + seconds

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal failures
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status = await post(reader, writer, f"{host}:{port}", path, body(random.choice(users)))
                latencies.append(time.perf_counter() - start)
                failures += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(worker(r, w) for r, w in connections))
    if failures:
        raise RuntimeError(f"{failures} requests failed")
    return latencies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution")
    p.add_argument("--train", help="a data preset to train on first (e.g. beauty)")
    p.add_argument("--recipe", default="user_personalization")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--server-args", nargs="*", default=[], help="more serve.py overrides (e.g. max_batch=1)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        solution = args.solution or train_solution(args.train or "default", args.recipe, args.epochs,
                                                   Path(tmp) / "solution")
        from personalize_torch.solution_version import load_solution_version
        users = list(load_solution_version(solution).user_vocab.ids)
        port = free_port()
        server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={solution}", f"port={port}",
                                   f"events_db={Path(tmp) / 'events.sqlite'}", "access_log=false",
                                   "log_level=warning", *args.server_args], cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_serving(url, timeout=120):
                raise SystemExit(f"serve.py did not answer {url}/ping within 120 s")
            rows = ["| call | clients | p50 ms | p99 ms | requests/s | connections per server process |",
                    "|---|---|---|---|---|---|"]
            recs = lambda u: {"campaignArn": ARN, "userId": u, "numResults": 25}  # noqa: E731
            asyncio.run(load(url, users, 4, 2.0, "/recommendations", recs))                 # warm-up
            for c in args.concurrency:
                split = Counter()
                lat = np.array(asyncio.run(load(url, users, c, args.seconds, "/recommendations", recs, split))) * 1000
                rows.append(f"| GetRecommendations | {c} | {np.percentile(lat, 50):.1f} | "
                            f"{np.percentile(lat, 99):.1f} | {len(lat) / args.seconds:.0f} | "
                            f"{' / '.join(str(split[w]) for w in sorted(split))} |")
                print(rows[-1], flush=True)
            counter = iter(range(10**9))
            events = lambda u: {"trackingId": "bench", "userId": u, "sessionId": f"s-{u}", "eventList": [  # noqa: E731
                {"eventType": "click", "itemId": "x", "sentAt": 1.7e9 + next(counter)}]}
            lat = np.array(asyncio.run(load(url, users, 8, args.seconds, "/events", events))) * 1000
            rows.append(f"| PutEvents (synchronous=FULL) | 8 | {np.percentile(lat, 50):.1f} | "
                        f"{np.percentile(lat, 99):.1f} | {len(lat) / args.seconds:.0f} | |")
            print("\n".join(rows))
            print(json.dumps({"solution": solution, "users": len(users)}))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
