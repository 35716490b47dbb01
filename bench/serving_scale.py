"""A server holding a large User-Personalization solution version: time to ready, memory, GetRecommendations.

    python bench/serving_scale.py --synthesize /tmp/up_1m --users 1000000 --items 1000000   # write, then serve
    python bench/serving_scale.py --solution /tmp/up_1m [--workers 2] [--seconds 10] [--concurrency 1 8]
    python bench/serving_scale.py --synthesize /tmp/up_10m --users 10000000 --items 1000000 --only-write

`--synthesize` writes a solution version of that size without training (seconds, not hours): the
User-Personalization recipe built by `from_data` from a description of that size (Items metadata: one
GENRES value per item, so the item table goes through the metadata encoder as a trained one does) with
random weights, random histories (`--events-per-user` on average, Zipf-like item popularity, clicks and
some purchases), random stored user states, written by `write_solution_version`. Its recommendations
mean nothing; what the server does to serve them is what a trained model of that size costs.

Then it starts `python serve.py` on the solution version (`--workers` processes, events in a temporary
SQLite file, a filter `no_horror` = EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")), reports the seconds
from start until `/ping` answers and the memory of the server's processes (RSS of each, and PSS summed:
forked workers share the parent's arrays), then p50 / p99 / requests per second of GetRecommendations
(numResults 25, random known users) for each `--concurrency`, without and with the filter. The load
generator is `serving_latency`'s (keep-alive HTTP/1.1 clients in this process): on a small machine it
shares the server's cores, and its cost is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from serving_latency import ARN, REPO, free_port, load

from personalize_torch.data.description import DataDescription
from personalize_torch.data.metadata_features import MetadataFeatures
from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.vocab import Vocab
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.http.worker_processes import wait_until_serving
from personalize_torch.data.stored_ids import StoredIds
from personalize_torch.solution_version import HISTORIES_FILE, write_solution_version

GENRES = ["Action", "Comedy", "Drama", "Horror", "Kids", "Sci-Fi", "Romance", "Docs"]
FILTERS = {"no_horror": 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")'}


class RandomStates:
    """(n, dim) float32 user states made chunk by chunk when sliced (10M x 64 never in memory at once)."""

    def __init__(self, n: int, dim: int, seed: int):
        self.shape, self.seed = (n, dim), seed

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        rng = np.random.default_rng([self.seed, start])
        return rng.standard_normal((stop - start, self.shape[1]), dtype=np.float32)


def fixed_width_ids(prefix: str, n: int) -> pa.Array:
    """prefix + zero-padded numbers, built in Arrow (sorted, no Python string per id)."""
    width = len(str(max(n - 1, 0)))
    digits = np.char.zfill(np.arange(n).astype(f"U{width}"), width)
    return pa.array(np.char.add(prefix, digits))


def synthesize(out: Path, n_users: int, n_items: int, events_per_user: float, hidden: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    genre = rng.integers(0, len(GENRES), n_items)
    features = MetadataFeatures(np.concatenate([[0], genre + 1]).astype(np.int64).reshape(-1, 1),
                                np.zeros((n_items + 1, 0), dtype=np.float32),
                                Vocab([f"GENRES={g}" for g in GENRES]))
    description = DataDescription(n_items=n_items + 1, n_users=n_users + 1, event_type_names=("click", "purchase"),
                                  median_history_length=events_per_user, item_features=features)
    recipe = UserPersonalization.from_data(description, hidden_dimension=hidden, bptt=50, loss="sampled")
    popularity_rank = rng.permutation(n_items) + 1          # item index of each popularity rank
    with torch.no_grad():   # item vectors spread enough that a user's softmax is peaked, as a trained one is
        recipe.model.item_embedding.weight.normal_(0.0, 3.0 / hidden ** 0.5)
        recipe.model.item_embedding.weight[0].zero_()
        counts = np.zeros(n_items + 1, dtype=np.float32)
        counts[popularity_rank] = 1e6 / np.arange(1, n_items + 1)
        recipe.item_counts.copy_(torch.from_numpy(counts))
        recipe.item_bias.copy_(torch.from_numpy(np.log1p(counts) * 0.1))
    lengths = rng.geometric(1.0 / events_per_user, n_users).astype(np.int64)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_events = int(offsets[-1])
    ranks = np.minimum((rng.pareto(1.1, n_events) * 50).astype(np.int64), n_items - 1)
    item_idx = popularity_rank[ranks].astype(np.int64)
    position = np.arange(n_events) - np.repeat(offsets[:-1], lengths)
    timestamp = 1_700_000_000 + np.repeat(rng.integers(0, 86_400 * 30, n_users), lengths) + 3_600 * position
    event_type = np.where(rng.random(n_events) < 0.1, 2, 1).astype(np.int64)
    histories = UserSequences(np.arange(1, n_users + 1, dtype=np.int64), offsets, item_idx, timestamp,
                              event_type=event_type)
    items = pd.DataFrame({"ITEM_ID": fixed_width_ids("i", n_items).to_pandas(),
                          "GENRES": np.asarray(GENRES, dtype=object)[genre]})

    def write_checkpoint(path: Path) -> None:
        torch.save({"state_dict": recipe.state_dict(), "hyper_parameters": dict(recipe.hparams)}, path)

    info = {"data_description": description.sizes(), "item_features": features.describe(),
            "data": {"name": "serving_scale synthetic", "n_users": n_users, "n_items": n_items,
                     "n_interactions": n_events}}
    write_solution_version(out, write_checkpoint, recipe, items, None, StoredIds(fixed_width_ids("u", n_users)),
                           histories, {}, Vocab(["click", "purchase"]), info,
                           user_states=RandomStates(n_users, hidden, seed))
    print(json.dumps({"synthesized": str(out), "users": n_users, "items": n_items, "events": n_events,
                      "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return out


def process_memory(pid: int) -> tuple[dict[int, float], float]:
    """RSS (MB) of `pid` and its children, and their PSS summed (MB)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    rss, pss = {}, 0.0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss[p] = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            pss += int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1]) / 1024
        except (OSError, StopIteration):
            pass
    return rss, pss


def known_users(solution: Path, n: int, seed: int) -> list[str]:
    ids = pq.read_table(solution / HISTORIES_FILE, columns=["USER_ID"]).column("USER_ID")
    rows = np.random.default_rng(seed).integers(0, len(ids), n)
    return [str(u) for u in ids.take(pa.array(rows)).to_pylist()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", help="a solution version to serve")
    p.add_argument("--synthesize", help="write a synthetic solution version here first")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--events-per-user", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only-write", action="store_true", help="synthesize, do not serve")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--server-args", nargs="*", default=[], help="more serve.py overrides (e.g. max_batch=8)")
    args = p.parse_args()
    if args.synthesize:
        solution = synthesize(Path(args.synthesize), args.users, args.items, args.events_per_user, args.hidden,
                              args.seed)
        if args.only_write:
            return
    elif args.solution:
        solution = Path(args.solution)
    else:
        p.error("give --solution or --synthesize")
    users = known_users(solution, 20_000, args.seed)
    filters = "{" + ", ".join(f"{name}: '{expr}'" for name, expr in FILTERS.items()) + "}"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={solution}", f"port={port}",
                                   f"workers={args.workers}", f"events_db={Path(tmp) / 'events.sqlite'}",
                                   "access_log=false", "log_level=warning", f"filters={filters}",
                                   *args.server_args], cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            if not wait_until_serving(url, timeout=args.ready_timeout):
                raise SystemExit(f"serve.py did not answer {url}/ping within {args.ready_timeout} s")
            ready = time.perf_counter() - start
            time.sleep(1.0)   # every worker up
            rss, pss = process_memory(server.pid)
            print(json.dumps({"ready_seconds": round(ready, 1), "rss_mb": {str(k): round(v) for k, v in rss.items()},
                              "pss_mb_total": round(pss)}), flush=True)
            rows = ["| filter | clients | p50 ms | p99 ms | requests/s |", "|---|---|---|---|---|"]
            for name in [None, *FILTERS]:
                def body(user: str, name=name) -> dict:
                    payload = {"campaignArn": ARN, "userId": user, "numResults": 25}
                    if name is not None:
                        payload["filterArn"] = f"arn:aws:personalize:us-east-1:123456789012:filter/{name}"
                    return payload

                asyncio.run(load(url, users, 4, 2.0, "/recommendations", body))          # warm-up
                for c in args.concurrency:
                    lat = np.array(asyncio.run(load(url, users, c, args.seconds, "/recommendations", body))) * 1000
                    rows.append(f"| {name or 'none'} | {c} | {np.percentile(lat, 50):.1f} | "
                                f"{np.percentile(lat, 99):.1f} | {len(lat) / args.seconds:.0f} |")
                    print(rows[-1], flush=True)
            rss, pss = process_memory(server.pid)
            print("\n".join(rows))
            print(json.dumps({"solution": str(solution), "ready_seconds": round(ready, 1), "workers": args.workers,
                              "rss_mb_after": {str(k): round(v) for k, v in rss.items()},
                              "pss_mb_total_after": round(pss)}))
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
