"""Built-in demo data set: seeded, Personalize-shaped, with planted structure.

``generate_demo_data`` returns the three Personalize datasets (Interactions, Items, Users) as
DataFrames, their Avro JSON schemas, and the planted ground truth (:class:`DemoTruth`), so tests
and notebooks can check that a recipe recovers what was put in. The same seed always gives
identical DataFrames.

Planted structure (each one is real and measurable, see ``tests/data/test_synthetic.py``):

1. **Long-tail popularity** - every item has a Zipf weight ``1 / rank`` (random ranks); it drives
   both which items users pick within their taste and which items get shown (exposure).
2. **Taste clusters** - each user belongs to one of ``n_clusters`` clusters; each item's first
   genre is its cluster. A non-chain pick comes from the user's cluster with probability
   ``P_IN_CLUSTER`` (0.8), otherwise from any item.
3. **Sequential chains** - within each cluster items are linked in chains of 1-5 items; an item
   that is not the last of its chain has a ``successor`` (same cluster). After a click on such an
   item the next click is its successor with probability ``P_SUCCESSOR`` (0.5), if the successor
   already exists at that time. A popularity model cannot see this, a sequence model can.
4. **Sessions** - a user's clicks come in sessions: 30 s to 30 min apart inside a session, at
   least 2 h (typically ~1.5 days) between sessions.
5. **Impressions** - each click carries the slate it was picked from (5-10 items, ``|``-joined,
   chosen item at a random position). The rest of the slate is drawn from global popularity
   (exposure) only, so shown-and-not-chosen items are mostly popular off-taste items while chosen
   items fit the user's cluster.
   With ``slate_choice=True`` the click is instead *chosen from* the slate: the slate (5-10 existing
   items) is drawn by exposure first, then the user picks one with probability proportional to
   ``exp(utility) * device price factor``, where ``utility = CHOICE_CLUSTER_BONUS * [item in the
   user's cluster] + x_user . y_item`` (latent taste vectors, ``CHOICE_LATENT_DIM`` dims); a chain
   successor, when followed, takes a slot of the slate and is the pick. Each slate then says which
   shown items the user passed over, information the clicks alone do not carry.
6. **New items** - ``LATE_ITEM_FRACTION`` of the items are created during the event period
   (``CREATION_TIMESTAMP`` between the 50th and 90th percentile of event times); no item gets an
   event, nor is shown, before its creation time. The other items are created before
   ``start_time``.
7. **Device context** - every session has a ``DEVICE`` (mostly the user's primary device); on
   ``mobile`` users tilt towards cheap items, on ``desktop`` towards expensive ones (``PRICE``).
8. **User metadata** - ``MEMBERSHIP`` and ``AGE_GROUP`` each equal the cluster's preferred value
   with probability 0.7, so user metadata predicts the taste cluster.

Besides the clicks, a click is followed a few seconds later by a ``purchase`` row of the same item
(same slate and device) with a probability that grows with ``EVENT_VALUE``, a 1-5 rating-like
value that is high when the item fits the user's cluster.

CLI: ``python -m personalize_torch.data.synthetic --out DIR [--n-users N --n-items M --seed S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from personalize_torch.data.constants import (
    CREATION_TIMESTAMP,
    EVENT_TYPE,
    EVENT_VALUE,
    IMPRESSION,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    MULTI_VALUE_SEPARATOR,
    TIMESTAMP,
    USER_ID,
    USERS,
)

__all__ = [
    "DemoData",
    "DemoTruth",
    "generate_demo_data",
    "write_demo_data",
    "main",
    "DEVICE",
    "GENRES",
    "PRICE",
    "DESCRIPTION",
    "MEMBERSHIP",
    "AGE_GROUP",
    "CLICK",
    "PURCHASE",
    "DEVICES",
    "MEMBERSHIPS",
    "AGE_GROUPS",
]

# Non-reserved (dataset-specific) column names of the demo data set.
DEVICE = "DEVICE"
GENRES = "GENRES"
PRICE = "PRICE"
DESCRIPTION = "DESCRIPTION"
MEMBERSHIP = "MEMBERSHIP"
AGE_GROUP = "AGE_GROUP"

CLICK = "click"
PURCHASE = "purchase"

SCHEMA_NAMESPACE = "com.amazonaws.personalize.schema"
SCHEMA_VERSION = "1.0"

DEVICES = ("mobile", "desktop", "tablet")
PRIMARY_DEVICE_PROBS = (0.5, 0.35, 0.15)
# Multiplicative pick weight is exp(effect * z), z the item's standardized log price.
DEVICE_PRICE_EFFECT = {"mobile": -0.8, "desktop": 0.5, "tablet": 0.0}
P_PRIMARY_DEVICE = 0.8

MEMBERSHIPS = ("free", "silver", "gold")
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
P_PREFERRED_METADATA = 0.7

GENRE_VOCABULARY = (
    "Action", "Comedy", "Drama", "Horror", "Romance", "SciFi", "Documentary", "Thriller",
    "Animation", "Fantasy", "Mystery", "Western", "Musical", "Crime", "Adventure", "Family",
)  # fmt: skip

P_IN_CLUSTER = 0.8
P_SUCCESSOR = 0.5
ZIPF_EXPONENT = 1.0
MAX_CHAIN_LENGTH = 5
P_SECOND_GENRE = 0.4
LATE_ITEM_FRACTION = 0.1
LATE_CREATION_QUANTILES = (0.5, 0.9)

SLATE_SIZE = (5, 10)  # inclusive, chosen item included
# slate_choice=True: utility of an item for a user (see the module docstring)
CHOICE_CLUSTER_BONUS = 1.5
CHOICE_LATENT_DIM = 4
CHOICE_LATENT_SCALE = 0.8

P_NEW_SESSION = 0.15
WITHIN_SESSION_GAP = (30, 120.0, 1800)  # min s, mean extra s (exponential), max s
BETWEEN_SESSION_GAP = (7200, 36 * 3600.0)  # min s, mean extra s (exponential)
USER_START_SPREAD = 60 * 86400  # users' first events are spread over this many seconds
PURCHASE_DELAY = (2, 15)  # seconds after the click, inclusive
P_PURCHASE_BASE, P_PURCHASE_SLOPE = 0.02, 0.05  # P(purchase | click) = base + slope * (EVENT_VALUE - 1)

_DAY = 86400

_ADJECTIVES = (
    "gripping", "quiet", "bold", "charming", "dark", "witty", "sweeping", "tender", "offbeat",
    "classic", "fresh", "haunting",
)  # fmt: skip
_TOPICS = (
    "a small-town family", "two rival siblings", "an unlikely friendship", "a lost city",
    "a stubborn detective", "a summer that changed everything", "a band on the road",
    "a forgotten inventor", "a long journey home", "a secret society",
)  # fmt: skip


@dataclass
class DemoTruth:
    """The planted ground truth of a demo data set (cluster k's genre is ``genres[k]``)."""

    genres: list[str]
    user_cluster: dict[str, int]
    item_cluster: dict[str, int]
    successor: dict[str, str | None]
    item_popularity: dict[str, float]  # planted Zipf weight, sums to 1
    late_items: list[str]  # items created after start_time
    user_primary_device: dict[str, str]
    start_time: int
    p_in_cluster: float = P_IN_CLUSTER
    p_successor: float = P_SUCCESSOR
    max_within_session_gap: int = WITHIN_SESSION_GAP[2]
    min_between_session_gap: int = BETWEEN_SESSION_GAP[0]
    device_price_effect: dict[str, float] = field(default_factory=lambda: dict(DEVICE_PRICE_EFFECT))


@dataclass
class DemoData:
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    interactions_schema: dict
    items_schema: dict
    users_schema: dict
    truth: DemoTruth


def _schema(name: str, fields: list[dict]) -> dict:
    return {
        "type": "record",
        "name": name,
        "namespace": SCHEMA_NAMESPACE,
        "fields": fields,
        "version": SCHEMA_VERSION,
    }


def _schemas() -> tuple[dict, dict, dict]:
    interactions = _schema(
        INTERACTIONS,
        [
            {"name": USER_ID, "type": "string"},
            {"name": ITEM_ID, "type": "string"},
            {"name": TIMESTAMP, "type": "long"},
            {"name": EVENT_TYPE, "type": "string"},
            {"name": EVENT_VALUE, "type": "float"},
            {"name": IMPRESSION, "type": "string"},
            {"name": DEVICE, "type": "string", "categorical": True},
        ],
    )
    items = _schema(
        ITEMS,
        [
            {"name": ITEM_ID, "type": "string"},
            {"name": GENRES, "type": "string", "categorical": True},
            {"name": PRICE, "type": "float"},
            {"name": CREATION_TIMESTAMP, "type": "long"},
            {"name": DESCRIPTION, "type": "string", "textual": True},
        ],
    )
    users = _schema(
        USERS,
        [
            {"name": USER_ID, "type": "string"},
            {"name": MEMBERSHIP, "type": "string", "categorical": True},
            {"name": AGE_GROUP, "type": "string", "categorical": True},
        ],
    )
    return interactions, items, users


def _genre_names(n_clusters: int) -> list[str]:
    names = list(GENRE_VOCABULARY[:n_clusters])
    names += [f"Genre{k}" for k in range(len(names), n_clusters)]
    return names


def _pick_with_preference(rng: np.random.Generator, preferred: np.ndarray, n_values: int, p: float) -> np.ndarray:
    """``preferred`` with probability ``p``, else a uniform value (which may also be the preferred one)."""
    uniform = rng.integers(0, n_values, size=preferred.shape)
    return np.where(rng.random(preferred.shape) < p, preferred, uniform)


def _stacked_cdf(weights: np.ndarray) -> np.ndarray:
    """Row-normalized CDFs of a (k, n) weight matrix, row r shifted by +r and flattened (sorted)."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf + np.arange(weights.shape[0])[:, None]).ravel()


def _constrained_pick(
    rng: np.random.Generator,
    stacked_cdf: np.ndarray,
    n_items: int,
    combo: np.ndarray,
    now: np.ndarray,
    prev: np.ndarray,
    creation: np.ndarray,
    pop: np.ndarray,
    max_rounds: int = 32,
) -> np.ndarray:
    """Per row, an item from CDF row ``combo`` conditioned on existing at ``now`` and != ``prev``.

    Exact rejection sampling; rows still unresolved after ``max_rounds`` (e.g. a cluster whose
    items are all not yet created) fall back to popularity over the existing items.
    """
    out = np.full(combo.size, -1, dtype=np.int64)
    pending = np.arange(combo.size)
    for _ in range(max_rounds):
        r = combo[pending] + rng.random(pending.size)
        draw = np.searchsorted(stacked_cdf, r, side="right") - combo[pending] * n_items
        draw = np.clip(draw, 0, n_items - 1)
        ok = (creation[draw] <= now[pending]) & (draw != prev[pending])
        out[pending[ok]] = draw[ok]
        pending = pending[~ok]
        if pending.size == 0:
            return out
    weights = pop[None, :] * (creation[None, :] <= now[pending, None])
    has_prev = prev[pending] >= 0
    weights[np.flatnonzero(has_prev), prev[pending][has_prev]] = 0.0
    empty = weights.sum(axis=1) <= 0
    weights[empty] = pop[None, :] * (creation[None, :] <= now[pending][empty, None])
    cum = np.cumsum(weights, axis=1)
    r = rng.random(pending.size) * cum[:, -1]
    out[pending] = np.minimum((cum <= r[:, None]).sum(axis=1), n_items - 1)
    return out


def _exposure_draw(
    rng: np.random.Generator,
    cdf: np.ndarray,
    creation: np.ndarray,
    now: np.ndarray,
    exclude: np.ndarray,
    n_draw: np.ndarray,
    width: int,
    n_candidates: int = 24,
) -> np.ndarray:
    """Per row, ``n_draw`` distinct existing items != ``exclude``, sampled by popularity without
    replacement (successive draws, rejecting repeats), padded with -1 to ``width`` columns."""
    m = now.size
    out = np.full((m, width), -1, dtype=np.int64)
    pending = np.arange(m)
    lower = np.tril(np.ones((n_candidates, n_candidates), dtype=bool), k=-1)
    while pending.size:
        cand = np.searchsorted(cdf, rng.random((pending.size, n_candidates)), side="right")
        cand = np.minimum(cand, cdf.size - 1)
        dup = ((cand[:, :, None] == cand[:, None, :]) & lower[None]).any(axis=2)
        ok = ~dup & (creation[cand] <= now[pending, None]) & (cand != exclude[pending, None])
        rank = np.cumsum(ok, axis=1)
        keep = ok & (rank <= n_draw[pending, None])
        done = rank[:, -1] >= n_draw[pending]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
        picked = np.take_along_axis(cand, order, axis=1)
        picked[~np.take_along_axis(keep, order, axis=1)] = -1
        out[pending[done]] = picked[done]
        pending = pending[~done]
    return out


def _choose_from_slate(
    rng: np.random.Generator,
    exposure_cdf: np.ndarray,
    creation: np.ndarray,
    creation_sorted: np.ndarray,
    now: np.ndarray,
    prev: np.ndarray,
    forced: np.ndarray,
    log_weight: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: a slate of 5-10 existing items drawn by exposure (never ``prev``), then the pick, with
    probability proportional to ``exp(log_weight[row, item])`` among the slate's items; a row with a
    ``forced`` item (>= 0, a followed chain successor) has it put in a random slot (if the slate lacks
    it) and picks it. Returns (picks (m,), slates (m, width), -1 padded)."""
    m = now.size
    size = rng.integers(SLATE_SIZE[0], SLATE_SIZE[1] + 1, m)
    n_available = np.searchsorted(creation_sorted, now, side="right") - (prev >= 0)
    slate = _exposure_draw(rng, exposure_cdf, creation, now, prev, np.maximum(np.minimum(size, n_available), 1), width)
    filled = slate >= 0
    logits = np.where(filled, np.take_along_axis(log_weight, np.maximum(slate, 0), axis=1), -np.inf)
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, slate.shape)))
    pick = slate[np.arange(m), np.argmax(logits + gumbel, axis=1)]
    forced_rows = np.flatnonzero(forced >= 0)
    for r in forced_rows:
        if not (slate[r] == forced[r]).any():
            slate[r, rng.integers(0, int(filled[r].sum()))] = forced[r]
        pick[r] = forced[r]
    return pick, slate


def _make_chains(rng: np.random.Generator, item_cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """successor[i] = next item of i's chain (same cluster), or -1."""
    successor = np.full(item_cluster.shape[0], -1, dtype=np.int64)
    for c in range(n_clusters):
        members = rng.permutation(np.flatnonzero(item_cluster == c))
        pos = 0
        while pos < members.size:
            length = int(rng.integers(1, MAX_CHAIN_LENGTH + 1))
            chain = members[pos : pos + length]
            successor[chain[:-1]] = chain[1:]
            pos += length
    return successor


def _timeline(rng: np.random.Generator, n_events: np.ndarray, start_time: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user click times and session starts, as (n_users, max_events) matrices."""
    n_users, t_max = n_events.shape[0], int(n_events.max())
    new_session = rng.random((n_users, t_max)) < P_NEW_SESSION
    new_session[:, 0] = True
    lo, mean, hi = WITHIN_SESSION_GAP
    within = np.minimum(lo + rng.exponential(mean, (n_users, t_max)), hi)
    b_lo, b_mean = BETWEEN_SESSION_GAP
    between = b_lo + rng.exponential(b_mean, (n_users, t_max))
    gaps = np.where(new_session, between, within).astype(np.int64)
    gaps[:, 0] = rng.integers(0, USER_START_SPREAD, n_users)
    return start_time + np.cumsum(gaps, axis=1), new_session


def generate_demo_data(
    n_users: int = 1000,
    n_items: int = 400,
    n_clusters: int = 8,
    events_per_user: tuple[int, int] = (15, 60),
    seed: int = 0,
    start_time: int = 1_700_000_000,
    slate_choice: bool = False,
) -> DemoData:
    """Generate the demo data set; deterministic for a given set of arguments. ``slate_choice``: each
    click is chosen from an exposure-drawn slate (see the module docstring, item 5)."""
    lo_ev, hi_ev = (int(v) for v in events_per_user)
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    if n_items < max(2 * n_clusters, SLATE_SIZE[1] + 2):
        raise ValueError(f"n_items must be >= max(2 * n_clusters, {SLATE_SIZE[1] + 2}), got {n_items}")
    if not 1 <= lo_ev <= hi_ev:
        raise ValueError(f"events_per_user must be (lo, hi) with 1 <= lo <= hi, got {events_per_user}")

    rng = np.random.default_rng(seed)
    genre_names = _genre_names(n_clusters)
    user_ids = np.array([f"u{u}" for u in range(n_users)], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(n_items)], dtype=object)

    # ---- items: cluster, popularity, chains, price
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
    rank = rng.permutation(n_items)
    pop = 1.0 / (rank + 1.0) ** ZIPF_EXPONENT
    pop /= pop.sum()
    successor = _make_chains(rng, item_cluster, n_clusters)
    price = np.round(np.exp(rng.normal(3.0, 0.6, n_items)), 2)
    log_price = np.log(price)
    z_price = (log_price - log_price.mean()) / log_price.std()
    price_factor = np.exp(np.array([DEVICE_PRICE_EFFECT[d] for d in DEVICES])[:, None] * z_price[None, :])

    # ---- users: cluster, metadata, devices
    user_cluster = rng.integers(0, n_clusters, n_users)
    membership = _pick_with_preference(rng, user_cluster % len(MEMBERSHIPS), len(MEMBERSHIPS), P_PREFERRED_METADATA)
    age_group = _pick_with_preference(rng, user_cluster % len(AGE_GROUPS), len(AGE_GROUPS), P_PREFERRED_METADATA)
    primary_device = rng.choice(len(DEVICES), size=n_users, p=PRIMARY_DEVICE_PROBS)

    # ---- timeline: click times, sessions, per-session device
    n_events = rng.integers(lo_ev, hi_ev + 1, n_users)
    t_max = int(n_events.max())
    ts, new_session = _timeline(rng, n_events, start_time)
    session_idx = np.cumsum(new_session, axis=1) - 1
    session_device = _pick_with_preference(
        rng, np.broadcast_to(primary_device[:, None], (n_users, t_max)), len(DEVICES), P_PRIMARY_DEVICE
    )
    device = np.take_along_axis(session_device, session_idx, axis=1)
    valid = np.arange(t_max)[None, :] < n_events[:, None]

    # ---- item creation times: late items appear inside the event period
    n_late = int(round(LATE_ITEM_FRACTION * n_items))
    is_late = np.zeros(n_items, dtype=bool)
    is_late[rng.choice(n_items, size=n_late, replace=False)] = True
    q_lo, q_hi = np.quantile(ts[valid], LATE_CREATION_QUANTILES)
    creation = start_time - rng.integers(_DAY, 2 * 365 * _DAY, n_items)
    late_times = rng.integers(int(q_lo), int(q_hi) + 1, n_items)
    creation = np.where(is_late, late_times, creation).astype(np.int64)

    # ---- the clicks, one step (event position) at a time, vectorized over users
    # Pick distributions per (cluster, device, taste-draw) combination, as one flat stacked CDF;
    # constraints (item exists, not the previous item) are applied by exact rejection sampling.
    in_cluster_item = (item_cluster[None, :] == np.arange(n_clusters)[:, None]).astype(np.float64)
    taste_mask = np.stack([np.ones_like(in_cluster_item), in_cluster_item], axis=1)  # (cluster, taste, item)
    combo_w = pop[None, None, None, :] * price_factor[None, :, None, :] * taste_mask[:, None, :, :]
    pick_cdf = _stacked_cdf(combo_w.reshape(-1, n_items))
    exposure_cdf = np.cumsum(pop)
    exposure_cdf /= exposure_cdf[-1]
    creation_sorted = np.sort(creation)

    if slate_choice:   # drawn after everything else, so slate_choice=False data stay as they were
        user_taste = rng.normal(0.0, CHOICE_LATENT_SCALE, (n_users, CHOICE_LATENT_DIM))
        item_taste = rng.normal(0.0, CHOICE_LATENT_SCALE, (n_items, CHOICE_LATENT_DIM))
        utility = CHOICE_CLUSTER_BONUS * (user_cluster[:, None] == item_cluster[None, :]) + user_taste @ item_taste.T

    max_slate = SLATE_SIZE[1]
    chosen = np.full((n_users, t_max), -1, dtype=np.int64)
    slates = np.full((n_users, t_max, max_slate), -1, dtype=np.int64)
    cols = np.arange(max_slate)
    for t in range(t_max):
        users = np.flatnonzero(n_events > t)
        m = users.size
        now = ts[users, t]
        prev = chosen[users, t - 1] if t > 0 else np.full(m, -1)

        if slate_choice:
            succ = np.where(prev >= 0, successor[np.maximum(prev, 0)], -1)
            follow = (succ >= 0) & (creation[np.maximum(succ, 0)] <= now) & (rng.random(m) < P_SUCCESSOR)
            chosen[users, t], slates[users, t] = _choose_from_slate(
                rng, exposure_cdf, creation, creation_sorted, now, prev, np.where(follow, succ, -1),
                utility[users] + np.log(price_factor[device[users, t]]), max_slate)
            continue

        # taste + popularity + device/price pick
        taste = rng.random(m) < P_IN_CLUSTER
        combo = (user_cluster[users] * len(DEVICES) + device[users, t]) * 2 + taste
        pick = _constrained_pick(rng, pick_cdf, n_items, combo, now, prev, creation, pop)

        # chain: the successor of the previous item, if it already exists
        succ = np.where(prev >= 0, successor[np.maximum(prev, 0)], -1)
        follow = (succ >= 0) & (creation[np.maximum(succ, 0)] <= now) & (rng.random(m) < P_SUCCESSOR)
        item = np.where(follow, succ, pick)
        chosen[users, t] = item

        # slate: the chosen item plus popular (exposed) items drawn without replacement
        size = rng.integers(SLATE_SIZE[0], SLATE_SIZE[1] + 1, m)
        n_available = np.searchsorted(creation_sorted, now, side="right")
        n_others = np.minimum(size - 1, n_available - 1)
        others = _exposure_draw(rng, exposure_cdf, creation, now, item, n_others, max_slate - 1)
        size = n_others + 1
        pos = (rng.random(m) * size).astype(np.int64)
        src = np.clip(np.where(cols[None, :] < pos[:, None], cols[None, :], cols[None, :] - 1), 0, max_slate - 2)
        slate = np.take_along_axis(others, src, axis=1)
        slate[cols[None, :] == pos[:, None]] = item
        slate[cols[None, :] >= size[:, None]] = -1
        slates[users, t] = slate

    # ---- flatten clicks, add values and purchases
    u_idx, t_idx = np.nonzero(valid)
    c_item = chosen[u_idx, t_idx]
    c_ts = ts[u_idx, t_idx]
    c_dev = device[u_idx, t_idx]
    n_clicks = u_idx.size
    fits = item_cluster[c_item] == user_cluster[u_idx]
    value = np.clip(np.round(np.where(fits, 4.0, 2.3) + rng.normal(0.0, 0.8, n_clicks), 1), 1.0, 5.0)
    bought = rng.random(n_clicks) < P_PURCHASE_BASE + P_PURCHASE_SLOPE * (value - 1.0)
    delay = rng.integers(PURCHASE_DELAY[0], PURCHASE_DELAY[1] + 1, n_clicks)

    id_list = item_ids.tolist()
    slate_rows = slates[u_idx, t_idx].tolist()
    slate_str = np.array([MULTI_VALUE_SEPARATOR.join([id_list[s] for s in row if s >= 0]) for row in slate_rows], dtype=object)

    p = np.flatnonzero(bought)
    ev_user = np.concatenate([u_idx, u_idx[p]])
    ev_seq = np.concatenate([t_idx, t_idx[p]])
    ev_kind = np.concatenate([np.zeros(n_clicks, dtype=np.int64), np.ones(p.size, dtype=np.int64)])
    ev_item = np.concatenate([c_item, c_item[p]])
    ev_ts = np.concatenate([c_ts, c_ts[p] + delay[p]])
    ev_value = np.concatenate([value, value[p]])
    ev_slate = np.concatenate([slate_str, slate_str[p]])
    ev_dev = np.concatenate([c_dev, c_dev[p]])
    order = np.lexsort((ev_kind, ev_seq, ev_user, ev_ts))

    interactions = pd.DataFrame(
        {
            USER_ID: pd.array(user_ids[ev_user[order]], dtype="str"),
            ITEM_ID: pd.array(item_ids[ev_item[order]], dtype="str"),
            TIMESTAMP: ev_ts[order].astype(np.int64),
            EVENT_TYPE: pd.array(np.array([CLICK, PURCHASE], dtype=object)[ev_kind[order]], dtype="str"),
            EVENT_VALUE: ev_value[order].astype(np.float64),
            IMPRESSION: pd.array(ev_slate[order], dtype="str"),
            DEVICE: pd.array(np.array(DEVICES, dtype=object)[ev_dev[order]], dtype="str"),
        }
    )

    # ---- items table
    second = (item_cluster + rng.integers(1, max(n_clusters, 2), n_items)) % n_clusters
    has_second = (rng.random(n_items) < P_SECOND_GENRE) & (n_clusters > 1)
    adjective = rng.integers(0, len(_ADJECTIVES), n_items)
    topic = rng.integers(0, len(_TOPICS), n_items)
    genres_col, descriptions = [], []
    for i in range(n_items):
        names = [genre_names[item_cluster[i]]] + ([genre_names[second[i]]] if has_second[i] else [])
        genres_col.append(MULTI_VALUE_SEPARATOR.join(names))
        words = " and ".join(n.lower() for n in names)
        adj = _ADJECTIVES[adjective[i]]
        article = "An" if adj[0] in "aeiou" else "A"
        descriptions.append(f"{article} {adj} {words} story about {_TOPICS[topic[i]]}.")
    items = pd.DataFrame(
        {
            ITEM_ID: pd.array(item_ids, dtype="str"),
            GENRES: pd.array(genres_col, dtype="str"),
            PRICE: price.astype(np.float64),
            CREATION_TIMESTAMP: creation,
            DESCRIPTION: pd.array(descriptions, dtype="str"),
        }
    )

    # ---- users table
    users = pd.DataFrame(
        {
            USER_ID: pd.array(user_ids, dtype="str"),
            MEMBERSHIP: pd.array(np.array(MEMBERSHIPS, dtype=object)[membership], dtype="str"),
            AGE_GROUP: pd.array(np.array(AGE_GROUPS, dtype=object)[age_group], dtype="str"),
        }
    )

    truth = DemoTruth(
        genres=genre_names,
        user_cluster=dict(zip(user_ids.tolist(), user_cluster.tolist())),
        item_cluster=dict(zip(id_list, item_cluster.tolist())),
        successor={id_list[i]: (id_list[s] if s >= 0 else None) for i, s in enumerate(successor.tolist())},
        item_popularity=dict(zip(id_list, pop.tolist())),
        late_items=[id_list[i] for i in np.flatnonzero(is_late)],
        user_primary_device=dict(zip(user_ids.tolist(), (DEVICES[d] for d in primary_device))),
        start_time=int(start_time),
    )
    interactions_schema, items_schema, users_schema = _schemas()
    return DemoData(interactions, items, users, interactions_schema, items_schema, users_schema, truth)


def write_demo_data(data: DemoData, out_dir) -> dict[str, Path]:
    """Write ``{interactions,items,users}.csv`` and ``*.schema.json`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame, schema in (
        ("interactions", data.interactions, data.interactions_schema),
        ("items", data.items, data.items_schema),
        ("users", data.users, data.users_schema),
    ):
        csv_path = out / f"{name}.csv"
        frame.to_csv(csv_path, index=False)
        schema_path = out / f"{name}.schema.json"
        schema_path.write_text(json.dumps(schema, indent=2) + "\n")
        paths[name] = csv_path
        paths[f"{name}_schema"] = schema_path
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m personalize_torch.data.synthetic",
        description="Write the seeded personalize-torch demo data set (CSV + Personalize schemas).",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n-users", type=int, default=1000)
    parser.add_argument("--n-items", type=int, default=400)
    parser.add_argument("--n-clusters", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = generate_demo_data(n_users=args.n_users, n_items=args.n_items, n_clusters=args.n_clusters, seed=args.seed)
    paths = write_demo_data(data, args.out)
    print(
        f"{len(data.interactions)} interactions, {len(data.items)} items, {len(data.users)} users "
        f"in {time.perf_counter() - t0:.2f}s"
    )
    for path in paths.values():
        print(path)
    return paths


if __name__ == "__main__":
    main()
