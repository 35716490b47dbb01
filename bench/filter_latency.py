"""Latency a filter adds to one GetRecommendations request, on a synthetic 100,000-item catalogue.

    python bench/filter_latency.py [--items 100000] [--users 10000] [--events-per-user 60] [--requests 500]

Two levels are timed for each filter, one request (one user, B = 1) at a time:
- `item_mask`: `Filter.item_mask(catalogue, user_row, filterValues)`, the mask alone;
- `added`: what the filter adds to the end of `Predictor._top` on (1, n_items) scores: item_mask plus
  `compose_slates` with the mask, minus `compose_slates` without one (scores are random here; the
  model's scoring itself does not depend on the filter). The target is 1 ms p50.
Each request picks a random known user and, for parameterised filters, one of a few typical values,
so Items conditions with the same values are served from the catalogue's per-value cache as they would
be in a server; the "cold" row clears that cache before every request (a value never seen before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd
import torch

from personalize_torch.filters import Catalogue, Filter
from personalize_torch.serving.inference.slate import compose_slates

GENRES = [f"g{k}" for k in range(30)]
FILTERS = {
    "exclude purchased": ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', {}),
    "include genre param": ("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)", {"GENRE": GENRES[:8]}),
    "price <= param | exclude genre (the combined filter)": (
        "INCLUDE ItemID WHERE Items.PRICE <= $PRICE | EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
        {"PRICE": ["10", "25", "50"], "GENRE": GENRES[:8]}),
    "new items, no horror for minors": (
        "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > $SINCE | "
        'EXCLUDE ItemID WHERE Items.GENRES IN ("g0") IF CurrentUser.AGE < 18',
        {"SINCE": ["1700000000", "1710000000"]}),
    "exclude clicked or purchased, genre in list": (
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase") | '
        'INCLUDE ItemID WHERE Items.GENRES IN ("g1", "g2", "g3") OR Items.PRICE < 5', {}),
}


def synthetic_catalogue(n_items: int, n_users: int, events_per_user: int, seed: int = 0) -> Catalogue:
    rng = np.random.default_rng(seed)
    item_ids = [f"i{k}" for k in range(n_items)]
    first = rng.integers(0, len(GENRES), n_items)
    second = rng.integers(0, len(GENRES), n_items)
    genres = np.where(rng.random(n_items) < 0.5, np.array(GENRES, dtype=object)[first],
                      np.char.add(np.char.add(np.array(GENRES)[first], "|"), np.array(GENRES)[second]).astype(object))
    items = pd.DataFrame({"ITEM_ID": item_ids, "GENRES": genres,
                          "PRICE": np.round(np.exp(rng.normal(3.0, 0.8, n_items)), 2),
                          "CREATION_TIMESTAMP": rng.integers(1_690_000_000, 1_720_000_000, n_items)})
    user_ids = [f"u{k}" for k in range(n_users)]
    users = pd.DataFrame({"USER_ID": user_ids, "AGE": rng.integers(12, 80, n_users).astype(float)})
    n = n_users * events_per_user
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    interactions = pd.DataFrame({
        "USER_ID": np.repeat(np.array(user_ids, dtype=object), events_per_user),
        "ITEM_ID": np.array(item_ids, dtype=object)[rng.choice(n_items, n, p=popularity / popularity.sum())],
        "TIMESTAMP": rng.integers(1_700_000_000, 1_720_000_000, n),
        "EVENT_TYPE": np.where(rng.random(n) < 0.2, "purchase", "click"),
    })
    return Catalogue.build(item_ids, items=items, users=users, interactions=interactions)


def percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return statistics.median(ms), q[98]


class Clock:
    """Wall and CPU (this thread's) time of a block, in ms: the CPU time is what the request costs; the
    wall time also holds waits for a core, which on a busy 2-core machine dominate the p99."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall = (time.perf_counter() - self.wall) * 1e3
        self.cpu = (time.thread_time() - self.cpu) * 1e3


def bench_filter(catalogue: Catalogue, f: Filter, value_pools: dict, requests: int, cold: bool,
                 rng: np.random.Generator, k: int = 25) -> dict:
    n = catalogue.n_items
    rows: dict[str, list[float]] = {"mask": [], "added": [], "added_cpu": []}
    for i in range(requests + 20):  # the first 20 warm up
        row = int(rng.integers(0, catalogue.n_users))
        values = {name: f'"{v}"' if not v[0].isdigit() else v
                  for name, pool in value_pools.items() for v in [pool[int(rng.integers(0, len(pool)))]]}
        scores = torch.rand(1, n)
        scores[:, 0] = float("-inf")
        if cold:
            catalogue.item_condition_cache.clear()
        if i % 2:  # alternate which runs first, so neither gains from the caches the other warmed
            with Clock() as without:
                compose_slates(scores, k)
        with Clock() as with_filter:
            allowed = f.item_mask(catalogue, [row], values)
            mask_ms = (time.perf_counter() - with_filter.wall) * 1e3
            compose_slates(scores, k, allowed)
        if not i % 2:
            with Clock() as without:
                compose_slates(scores, k)
        if i >= 20:
            rows["mask"].append(mask_ms)
            rows["added"].append(with_filter.wall - without.wall)
            rows["added_cpu"].append(with_filter.cpu - without.cpu)
    (m50, m99), (a50, a99) = percentiles(rows["mask"]), percentiles(rows["added"])
    return {"mask_p50": m50, "mask_p99": m99, "added_p50": a50, "added_p99": a99,
            "added_cpu_p50": statistics.median(rows["added_cpu"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--events-per-user", type=int, default=60)
    p.add_argument("--requests", type=int, default=500)
    args = p.parse_args()
    torch.set_num_threads(1)
    t = time.perf_counter()
    catalogue = synthetic_catalogue(args.items, args.users, args.events_per_user)
    print(f"catalogue: {args.items} items, {args.users} users, {args.users * args.events_per_user} interactions, "
          f"built in {time.perf_counter() - t:.1f} s (once per solution)")
    rng = np.random.default_rng(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| filter | item_mask p50 ms | item_mask p99 ms | added p50 ms | added p99 ms | added CPU p50 ms |")
    print("|---|---|---|---|---|---|")
    rows = [(name, False) for name in FILTERS] + [("price <= param | exclude genre (the combined filter)", True)]
    for name, cold in rows:
        text, pools = FILTERS[name]
        r = bench_filter(catalogue, Filter.parse(text), pools, args.requests, cold, rng)
        label = name + (" — cold cache" if cold else "")
        print(f"| {label} | {r['mask_p50']:.3f} | {r['mask_p99']:.3f} | {r['added_p50']:.3f} | {r['added_p99']:.3f} "
              f"| {r['added_cpu_p50']:.3f} |")


if __name__ == "__main__":
    main()
