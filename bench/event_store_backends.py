"""PutEvents throughput and GetRecommendations latency with the events database in SQLite and in PostgreSQL,
on the same machine in the same run.

    bash .ci/start_postgres     # a local PostgreSQL (as root on Debian), or give --postgres
    python bench/event_store_backends.py [--postgres postgresql://...] [--solution <dir>] [--seconds 10] [--clients 8]

For each backend it starts `python serve.py` (one process, access log off, `events_synchronous=FULL`) on a
fresh events database (SQLite: a temporary file; PostgreSQL: a new schema of the --postgres database,
default $PERSONALIZE_TEST_POSTGRES_URL or the server .ci/start_postgres makes, dropped afterwards), then
keeps --clients keep-alive HTTP/1.1 clients busy for --seconds (`serving_latency`'s load generator):
first with PutEvents (one event per call, random known users and items: each call one committed, durable
transaction), then with GetRecommendations (numResults 25) for the same users, whose streamed events are
read from the database at every request. Prints a markdown table. Client, server and PostgreSQL share
the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
from serving_latency import ARN, REPO, free_port, load, train_solution

from personalize_torch.serving.http.worker_processes import wait_until_serving
from personalize_torch.solution_version import load_solution_version

LOCAL_POSTGRES = "postgresql://personalize:personalize@127.0.0.1:5432/personalize_test"


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """`server_url` with its tables in a new schema (dropped at the end)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{server_url}{'&' if '?' in server_url else '?'}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def measure(events_db: str, solution: str, users: list[str], items: list[str], args) -> dict[str, np.ndarray]:
    """Latencies (ms) of PutEvents, then of GetRecommendations, against one serve.py on `events_db`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={solution}", f"port={port}",
                               f"events_db='{events_db}'", "access_log=false", "log_level=warning",
                               f"hydra.run.dir={tempfile.gettempdir()}/event_store_backends"],
                              cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        if not wait_until_serving(url, timeout=120):
            raise SystemExit(f"serve.py did not answer {url}/ping within 120 s")
        sent_at = itertools.count(1_700_000_000)

        def events(user: str) -> dict:
            return {"trackingId": "bench", "userId": user, "sessionId": f"s-{user}", "eventList": [
                {"eventType": "click", "itemId": random.choice(items), "sentAt": next(sent_at)}]}

        def recs(user: str) -> dict:
            return {"campaignArn": ARN, "userId": user, "numResults": 25}

        asyncio.run(load(url, users, 2, 1.0, "/events", events))                      # warm-up
        put = np.array(asyncio.run(load(url, users, args.clients, args.seconds, "/events", events))) * 1000
        asyncio.run(load(url, users, 2, 1.0, "/recommendations", recs))               # warm-up
        get = np.array(asyncio.run(load(url, users, args.clients, args.seconds, "/recommendations", recs))) * 1000
        return {"PutEvents": put, "GetRecommendations": get}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postgres", default=os.environ.get("PERSONALIZE_TEST_POSTGRES_URL", LOCAL_POSTGRES))
    p.add_argument("--solution", help="a solution version (default: User-Personalization, 1 epoch on the demo data)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        solution = args.solution or train_solution("default", "user_personalization", 1, Path(tmp) / "solution")
        sol = load_solution_version(solution)
        users, items = list(sol.user_vocab.ids), list(sol.item_vocab.ids)
        rows = [("| events database | PutEvents calls/s | PutEvents p50 ms | PutEvents p99 ms "
                 "| GetRecommendations requests/s | GetRecommendations p50 ms | GetRecommendations p99 ms |"),
                "|---|---|---|---|---|---|---|"]
        with postgres_schema(args.postgres) as postgres:
            for name, events_db in [("SQLite (file, WAL)", str(Path(tmp) / "events.sqlite")), ("PostgreSQL", postgres)]:
                lat = measure(events_db, solution, users, items, args)
                put, get = lat["PutEvents"], lat["GetRecommendations"]
                rows.append(f"| {name} | {len(put) / args.seconds:.0f} | {np.percentile(put, 50):.1f} | "
                            f"{np.percentile(put, 99):.1f} | {len(get) / args.seconds:.0f} | "
                            f"{np.percentile(get, 50):.1f} | {np.percentile(get, 99):.1f} |")
                print(rows[-1], flush=True)
        print("\n".join(rows))
        print(json.dumps({"solution": solution, "users": len(users), "items": len(items), "clients": args.clients,
                          "seconds": args.seconds, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
