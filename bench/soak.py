"""Soak: `serve.py` under steady mixed load for a long time, with a deploy and an auto-update in the middle.

    python bench/soak.py [--minutes 20] [--clients 32] [--workers 2] [--load 0.8] [--json soak.json]
    python bench/soak.py --solution <solution dir> --minutes 0.5 --window-seconds 5    # a short run

Trains a User-Personalization solution version on the built-in demo data (or serves --solution), starts
`python serve.py` on it in a subprocess (--workers processes, events in an SQLite file with synchronous=FULL,
a deploy_root and auto-update), and keeps --clients HTTP/1.1 keep-alive clients (this process, asyncio)
sending a mix of GetRecommendations (60%), GetPersonalizedRanking (20%) and PutEvents (20%, each event with
its own eventId):

1. a ramp of --ramp-seconds with every client sending back to back: the capacity, in requests/s;
2. the soak: --minutes at --load x that capacity, each client pacing its requests. A quarter of the way in,
   new items are sent with PutItems; at 35% the campaign is deployed again (`PUT /campaigns/default`, a copy of
   the solution version under deploy_root); at half way the campaign's auto-update adds the new items
   (`auto_update_minutes` is set so that its first period ends then).

Recorded for each window of --window-seconds: p50 / p99 latency of each operation and the memory of the server's
processes (RSS and PSS summed over the parent and its workers, sampled every 2 s; forked workers share pages,
which the RSS sum counts in each process and the PSS sum once). At the end: failed requests (not answered 200, or
no answer), events lost (every eventId that PutEvents acknowledged is looked for in the events database after the
server stopped), the deploy and the auto-update as the deployment log recorded them, the p99 of the last quarter
of the soak over its first quarter (5 minutes each in a 20-minute run; target <= 1.25) and the RSS growth from the
first window after warm-up (the first tenth of the soak, at least one window) to the last window (target <= 5%;
also from the first full window after the auto-update, when nothing changes any more, to the last). Prints a
table, writes everything to --json. Exit code 1 when a request failed, an event was lost, or the deploy or the
auto-update did not happen; the latency and memory targets are reported, not enforced.

Clients and server share the machine's cores: on a small machine the clients' own cost is in the figures, and
so is anything else running there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from serving_latency import ARN, REPO, free_port, post

from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.worker_processes import wait_until_serving

OPERATIONS = {"GetRecommendations": 0.6, "GetPersonalizedRanking": 0.2, "PutEvents": 0.2}
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/soak/ITEMS"
NEW_ITEM = json.dumps({"genres": "Comedy|Drama", "price": 12.5, "creationTimestamp": 1700000000,
                       "description": "A new film about a soak test."})
REQUEST_TIMEOUT = 30.0


@dataclass
class Record:
    """Every request of a phase: when it was sent (seconds from the phase's start), its operation, latency, status
    (0: no answer)."""

    sent: list[float] = field(default_factory=list)
    operation: list[str] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    acknowledged_events: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)   # the first few, for the report

    def add(self, sent: float, operation: str, latency: float, status: int, detail: str = "") -> None:
        self.sent.append(sent)
        self.operation.append(operation)
        self.latency.append(latency)
        self.status.append(status)
        if status != 200 and len(self.failures) < 10:
            self.failures.append(f"{operation} at {sent:.1f} s: {status or detail}")


def train_solution(out: Path, epochs: int, users: int, items: int) -> str:
    from personalize_torch.training import compose_config, train

    cfg = compose_config(["recipe=user_personalization", "logger=none", f"trainer.max_epochs={epochs}",
                          f"data.demo.n_users={users}", f"data.demo.n_items={items}",
                          "trainer.enable_progress_bar=false"], output_dir=out)
    return train(cfg)["solution"]


def solution_ids(solution: Path) -> tuple[list[str], list[str]]:
    """The user ids (with a stored history) and item ids of a solution version, read from its files (documented
    in docs/operations.md) without loading the model: this process stays light."""
    users = pc.unique(pq.read_table(solution / "user_histories.parquet", columns=["USER_ID"])["USER_ID"])
    items = pq.read_table(solution / "items.parquet", columns=["ITEM_ID"])["ITEM_ID"]
    return users.to_pylist(), items.to_pylist()


def server_memory(parent: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of `parent` and its child processes summed (Linux; a process that is gone counts 0).
    PSS shares each page among the processes that map it: forked workers' shared pages are counted once."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True).stdout
    rss = pss = 0
    for pid in [parent, *map(int, out.split())]:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup.splitlines()[1:]}
        rss, pss = rss + fields.get("Rss", 0), pss + fields.get("Pss", 0)
    return rss, pss


class Clients:
    """The load: `n` clients, each on its own keep-alive connection."""

    def __init__(self, url: str, users: list[str], items: list[str], n: int, seed: int = 0):
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.users, self.items, self.n = users, items, n
        self.rng = random.Random(seed)
        self.event_counter = 0

    def request(self, client: int) -> tuple[str, str, dict, str | None]:
        """(operation, path, body, eventId) of a random request."""
        operation = self.rng.choices(list(OPERATIONS), weights=list(OPERATIONS.values()))[0]
        user = self.rng.choice(self.users)
        if operation == "GetRecommendations":
            return operation, "/recommendations", {"campaignArn": ARN, "userId": user, "numResults": 25}, None
        if operation == "GetPersonalizedRanking":
            return operation, "/personalize-ranking", {"campaignArn": ARN, "userId": user,
                                                       "inputList": self.rng.sample(self.items, 25)}, None
        self.event_counter += 1
        event_id = f"soak-{client}-{self.event_counter}"
        return operation, "/events", {"trackingId": "soak", "userId": user, "sessionId": f"session-{user}",
                                      "eventList": [{"eventType": "click", "itemId": self.rng.choice(self.items),
                                                     "eventId": event_id, "sentAt": time.time()}]}, event_id

    async def run(self, seconds: float, record: Record, interval: float | None) -> None:
        """Every client for `seconds`: back to back (`interval` None) or one request every `interval` seconds."""
        start = time.perf_counter()
        await asyncio.gather(*(self._client(i, start, seconds, record, interval) for i in range(self.n)))

    async def _client(self, index: int, start: float, seconds: float, record: Record, interval: float | None) -> None:
        connection = None
        next_send = start + (interval * index / self.n if interval else 0.0)
        host = f"{self.host}:{self.port}"
        try:
            while True:
                if interval is not None:
                    await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                sent = time.perf_counter()
                if sent - start >= seconds:
                    return
                operation, path, body, event_id = self.request(index)
                status, detail = 0, ""
                try:
                    if connection is None:
                        connection = await asyncio.open_connection(self.host, self.port)
                    status = await asyncio.wait_for(post(*connection, host, path, body), REQUEST_TIMEOUT)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                    detail = f"{type(err).__name__}: {err}"
                    if connection is not None:
                        connection[1].close()
                    connection = None
                record.add(sent - start, operation, time.perf_counter() - sent, status, detail)
                if status == 200 and event_id is not None:
                    record.acknowledged_events.add(event_id)
                if interval is not None:
                    next_send = max(next_send + interval, time.perf_counter())   # late: no catching up in a burst
        finally:
            if connection is not None:
                connection[1].close()


async def one_call(url: str, method: str, path: str, body: dict) -> int:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        payload = json.dumps(body).encode()
        writer.write(b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (method.encode(), path.encode(), f"{host}:{port}".encode(), len(payload), payload))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 600)
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def middle_of_the_run(url: str, soak_seconds: float, start: float, log: dict) -> None:
    """New items (PutItems) at a quarter of the soak, the deploy at 35%; the auto-update that adds the new items
    follows by itself at half way."""
    await asyncio.sleep(max(0.0, start + soak_seconds / 4 - time.perf_counter()))
    log["put_items_s"] = time.perf_counter() - start
    log["new_items"] = [f"soak-new-{k}" for k in range(5)]
    log["put_items_status"] = await one_call(url, "POST", "/items", {"datasetArn": ITEMS_ARN, "items": [
        {"itemId": item, "properties": NEW_ITEM} for item in log["new_items"]]})
    await asyncio.sleep(max(0.0, start + 0.35 * soak_seconds - time.perf_counter()))
    log["deploy_sent_s"] = time.perf_counter() - start
    log["deploy_status"] = await one_call(url, "PUT", "/campaigns/default", {"solution": "redeployed"})
    log["deploy_answered_s"] = time.perf_counter() - start


async def soak(url: str, clients: Clients, seconds: float, interval: float, record: Record, server_pid: int,
               memory: list[tuple[float, int, int]], log: dict) -> None:
    start = time.perf_counter()
    log["soak_started_epoch"] = time.time()

    async def sample_memory() -> None:
        while time.perf_counter() - start < seconds:
            memory.append((time.perf_counter() - start, *server_memory(server_pid)))
            await asyncio.sleep(2.0)

    await asyncio.gather(clients.run(seconds, record, interval), middle_of_the_run(url, seconds, start, log),
                         sample_memory())


def percentiles(latencies: list[float]) -> tuple[float, float]:
    if not latencies:
        return float("nan"), float("nan")
    ms = np.asarray(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def windows(record: Record, memory: list[tuple[float, int, int]], seconds: float, width: float) -> list[dict]:
    """Per window: requests, p50/p99 by operation, mean RSS and PSS."""
    by_window: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sent, operation, latency, status in zip(record.sent, record.operation, record.latency, record.status):
        if status == 200:
            by_window[int(sent // width)][operation].append(latency)
    rss: dict[int, list[int]] = defaultdict(list)
    pss: dict[int, list[int]] = defaultdict(list)
    for at, resident, proportional in memory:
        rss[int(at // width)].append(resident)
        pss[int(at // width)].append(proportional)
    rows = []
    for w in range(int(np.ceil(seconds / width))):
        row = {"window": w, "start_s": w * width, "requests": sum(len(v) for v in by_window[w].values()),
               "rss_mb": float(np.mean(rss[w]) / 2**20) if rss[w] else float("nan"),
               "pss_mb": float(np.mean(pss[w]) / 2**20) if pss[w] else float("nan")}
        for operation in OPERATIONS:
            row[operation] = dict(zip(("p50_ms", "p99_ms"), percentiles(by_window[w][operation])))
        rows.append(row)
    return rows


def quarter_p99(record: Record, seconds: float) -> dict[str, dict[str, float]]:
    """p99 of each operation in the soak's first and last quarter, and last / first."""
    out = {}
    for operation in OPERATIONS:
        first = [lat for s, o, lat, st in zip(record.sent, record.operation, record.latency, record.status)
                 if o == operation and st == 200 and s < seconds / 4]
        last = [lat for s, o, lat, st in zip(record.sent, record.operation, record.latency, record.status)
                if o == operation and st == 200 and s >= 3 * seconds / 4]
        p_first, p_last = percentiles(first)[1], percentiles(last)[1]
        out[operation] = {"first_quarter_p99_ms": p_first, "last_quarter_p99_ms": p_last,
                          "ratio": p_last / p_first if p_first > 0 else float("nan")}
    return out


def deployments(events_db: Path) -> list[dict]:
    with sqlite3.connect(events_db) as db:
        rows = db.execute("SELECT version, campaign, solution, deployed FROM campaign_deployments ORDER BY version")
        return [{"version": v, "campaign": c, "solution": s, "deployed_epoch": d} for v, c, s, d in rows]


def lost_events(events_db: Path, acknowledged: set[str]) -> tuple[int, int]:
    """(acknowledged events missing from the store, events in the store)."""
    with EventStore(events_db) as store:
        stored = {e.event_id for e in store.events()}
    return len(acknowledged - stored), len(stored)


def report(result: dict) -> str:
    latencies = " | ".join(f"{o} p50 / p99 ms" for o in OPERATIONS)
    lines = [f"| window (from s) | requests | {latencies} | RSS MB | PSS MB |",
             "|---|---|" + "---|" * len(OPERATIONS) + "---|---|"]
    for row in result["windows"]:
        cells = " | ".join(f"{row[o]['p50_ms']:.1f} / {row[o]['p99_ms']:.1f}" for o in OPERATIONS)
        lines.append(f"| {row['start_s']:.0f} | {row['requests']} | {cells} | {row['rss_mb']:.0f} | "
                     f"{row['pss_mb']:.0f} |")
    lines.append("")
    lines.append(f"capacity (ramp, {result['clients']} clients back to back): {result['capacity_rps']:.0f} requests/s; "
                 f"soak target {result['target_rps']:.0f}/s, achieved {result['achieved_rps']:.0f}/s")
    lines.append(f"requests: {result['requests']}, failed: {result['failed']}; events acknowledged: "
                 f"{result['events_acknowledged']}, lost: {result['events_lost']} "
                 f"(store holds {result['events_stored']})")
    middle = result["middle"]
    lines.append(f"deploy: answered {middle.get('deploy_status')} at "
                 f"{middle.get('deploy_answered_s', float('nan')):.0f} s, recorded: {result['deployed']}; "
                 f"auto-update recorded: {result['auto_updated']} "
                 f"(at {result.get('auto_update_s', float('nan')):.0f} s)")
    for operation, q in result["p99_last_over_first_quarter"].items():
        lines.append(f"{operation}: p99 first quarter {q['first_quarter_p99_ms']:.1f} ms, "
                     f"last {q['last_quarter_p99_ms']:.1f} ms, ratio {q['ratio']:.2f}")
    lines.append(f"RSS after warm-up {result['rss_after_warm_up_mb']:.0f} MB, "
                 f"last window {result['rss_last_mb']:.0f} MB, growth {100 * result['rss_growth']:.1f}% "
                 f"(from the window after the auto-update on: {100 * result['rss_growth_after_the_changes']:.1f}%); "
                 f"PSS growth {100 * result['pss_growth']:.1f}%")
    lines.append("checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in result["checks"].items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", help="a solution version to serve (default: train User-Personalization on demo data)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--demo-users", type=int, default=5000, help=(
        "users of the demo data trained on: PutEvents go to them, so fewer users means longer streamed histories "
        "per user by the end (and slower requests: User-Personalization reads up to bptt events per user)"))
    p.add_argument("--demo-items", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=20.0, help="length of the soak (after the ramp)")
    p.add_argument("--ramp-seconds", type=float, default=30.0, help="the capacity measurement before the soak")
    p.add_argument("--window-seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--load", type=float, default=0.8, help="the soak's rate, as a fraction of the measured capacity")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    soak_seconds = 60 * args.minutes
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        solution = Path(args.solution or train_solution(work / "trained", args.epochs, args.demo_users,
                                                        args.demo_items)).resolve()
        shutil.copytree(solution, work / "deploy" / "redeployed")
        users, items = solution_ids(solution)
        events_db = work / "events.sqlite"
        # The first auto-update period ends half way through the soak (it starts when the server starts).
        auto_update_minutes = (args.ramp_seconds + soak_seconds / 2) / 60
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={solution}", f"port={port}",
                                   f"events_db={events_db}", f"workers={args.workers}", "access_log=false",
                                   "log_level=warning", f"deploy_root={work / 'deploy'}",
                                   f"update_root={work / 'updates'}", f"auto_update_minutes={auto_update_minutes}",
                                   f"hydra.run.dir={work / 'run'}"],
                                  cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        launched = time.perf_counter()
        try:
            if not wait_until_serving(url, timeout=180):
                raise SystemExit(f"serve.py did not answer {url}/ping within 180 s")
            ready_seconds = time.perf_counter() - launched
            clients = Clients(url, users, items, args.clients, args.seed)
            ramp = Record()
            asyncio.run(clients.run(args.ramp_seconds, ramp, None))
            capacity = len(ramp.sent) / args.ramp_seconds
            target = args.load * capacity
            record, memory, middle = Record(), [], {}
            asyncio.run(soak(url, clients, soak_seconds, args.clients / target, record, server.pid, memory, middle))
            record.acknowledged_events |= ramp.acknowledged_events
        finally:
            stopping = time.perf_counter()
            server.terminate()
            exit_code = server.wait(timeout=120)
            stop_seconds = time.perf_counter() - stopping
        lost, stored = lost_events(events_db, record.acknowledged_events)
        log = deployments(events_db)
        started = middle["soak_started_epoch"]
        deployed = [d for d in log if Path(d["solution"]).parent == (work / "deploy").resolve()]
        updated = [d for d in log if Path(d["solution"]).is_relative_to((work / "updates").resolve())]
        rows = windows(record, memory, soak_seconds, args.window_seconds)
        warm_up = max(1, int(np.ceil(0.1 * len(rows))))
        rss_after = rows[min(warm_up, len(rows) - 1)]["rss_mb"]
        # A leak shows as growth with nothing happening: from the first full window after the auto-update on
        changed = (updated[0]["deployed_epoch"] - started) if updated else soak_seconds
        steady = [row for row in rows if row["start_s"] >= changed + args.window_seconds]
        quarters = quarter_p99(record, soak_seconds)
        failed = sum(s != 200 for s in record.status) + sum(s != 200 for s in ramp.status)
        failed += (middle.get("deploy_status") != 200) + (middle.get("put_items_status") != 200)
        result = {
            "minutes": args.minutes, "clients": args.clients, "workers": args.workers, "load": args.load,
            "solution": str(solution), "recipe": json.loads((solution / "solution.json").read_text())["recipe"],
            "users": len(users), "items": len(items),
            "capacity_rps": capacity, "target_rps": target, "achieved_rps": len(record.sent) / soak_seconds,
            "requests": len(record.sent) + len(ramp.sent), "failed": failed,
            "failures": ramp.failures + record.failures,
            "events_acknowledged": len(record.acknowledged_events), "events_lost": lost, "events_stored": stored,
            "middle": middle, "deployment_log": log, "deployed": bool(deployed), "auto_updated": bool(updated),
            "windows": rows, "p99_last_over_first_quarter": quarters,
            "rss_after_warm_up_mb": rss_after, "rss_last_mb": rows[-1]["rss_mb"],
            "rss_growth": rows[-1]["rss_mb"] / rss_after - 1, "server_exit_code": exit_code,
            "pss_growth": rows[-1]["pss_mb"] / rows[min(warm_up, len(rows) - 1)]["pss_mb"] - 1,
            "rss_growth_after_the_changes": steady[-1]["rss_mb"] / steady[0]["rss_mb"] - 1 if len(steady) > 1
            else float("nan"),
            "server_ready_seconds": ready_seconds, "server_stop_seconds": stop_seconds,
        }
        if updated:
            result["auto_update_s"] = updated[0]["deployed_epoch"] - started
        result["checks"] = {
            "no failed requests": failed == 0, "no events lost": lost == 0, "deployed": bool(deployed),
            "auto-updated": bool(updated), "server exited 0": exit_code == 0,
            "p99 last/first quarter <= 1.25": all(q["ratio"] <= 1.25 for q in quarters.values()),
            "RSS growth <= 5%": result["rss_growth"] <= 0.05,
        }
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    correctness = ("no failed requests", "no events lost", "deployed", "auto-updated", "server exited 0")
    sys.exit(0 if all(result["checks"][c] for c in correctness) else 1)


if __name__ == "__main__":
    main()
