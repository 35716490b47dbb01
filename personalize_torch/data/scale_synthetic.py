"""Large synthetic data sets (1M to 100M interactions) in Personalize's CSV format, with planted truth.

``write_scale_data`` writes into one folder:

* ``interactions.csv`` - USER_ID, ITEM_ID, TIMESTAMP (epoch seconds), EVENT_TYPE (``click``, some
  ``purchase``); rows grouped by user, each user's rows in time order;
* ``items.csv`` (optional) - ITEM_ID, CATEGORY (the item's taste cluster), PRICE, CREATION_TIMESTAMP,
  one row per catalogue item, touched or not;
* ``users.csv`` (optional) - USER_ID, SEGMENT (the user's taste cluster with probability 0.7, else a
  random cluster);
* ``<name>.schema.json`` - the Personalize (Avro) schema of each CSV;
* ``truth.json`` - the generation parameters and the NDCG@10 / Recall@10 of the generator's own
  next-item probabilities (the oracle), next to popularity's, on a leave-last-out split.

Planted structure (the tests in ``tests/data/test_scale_synthetic.py`` measure each one):

1. **Long-tail popularity** - item ``i`` has the Zipf weight ``1 / rank_i`` (random ranks).
2. **Taste clusters** - items are dealt evenly into ``n_clusters`` clusters, each user belongs to one
   (uniformly). A fresh pick comes from the user's cluster with probability ``p_in_cluster`` (by Zipf
   weight within the cluster), otherwise from the whole generative catalogue (by Zipf weight).
3. **Sequences** - the items of each cluster form a ring in random order; ``successor[i]`` is the next
   item on ``i``'s ring. After the first event, a user's next event is the successor of their previous
   item with probability ``p_successor``, else a fresh pick. Popularity cannot see this.
4. **Sessions** - events are 30 s to 30 min apart within a session; a new session (probability
   ``p_new_session`` per event) starts at least 2 h, typically ~1.5 days, later.
5. **Activity** - a user has ``3 + Multinomial`` events with lognormal (sigma 1) propensities, so the
   counts are long-tailed, at least 3 each, and sum exactly to ``n_interactions``.
6. **Event types** - an event is a ``purchase`` with probability 0.06 when its item is in the user's
   cluster, 0.02 otherwise; all others are clicks.

Generative items are ``0 .. n_items - 1``; a larger ``n_catalogue_items`` adds items that never get an
event (they are in items.csv only). Ids are ``u0000123`` / ``i0000456``.

Everything is vectorized (numpy, pyarrow CSV); users are generated and written in chunks of about
``chunk_events`` events, so memory stays bounded by the chunk and the per-user arrays. Output is a
function of the parameters (seed and chunk size included): the same parameters give identical bytes.

CLI: ``python -m personalize_torch.data.scale_synthetic --out DIR --size 10M`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from personalize_torch.data.constants import (
    CREATION_TIMESTAMP,
    EVENT_TYPE,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    TIMESTAMP,
    USER_ID,
    USERS,
)
from personalize_torch.data.schema import Field, Schema

__all__ = [
    "CATEGORY",
    "CLICK",
    "PRESETS",
    "PRICE",
    "PURCHASE",
    "SEGMENT",
    "PlantedModel",
    "ScaleParams",
    "build_planted_model",
    "main",
    "oracle_ndcg_at_k",
    "parse_count",
    "write_scale_data",
]

CATEGORY = "CATEGORY"
PRICE = "PRICE"
SEGMENT = "SEGMENT"
CLICK = "click"
PURCHASE = "purchase"

# --size presets: interactions -> (items, users)
PRESETS = {"1M": (1_000_000, 100_000, 100_000), "10M": (10_000_000, 1_000_000, 1_000_000),
           "100M": (100_000_000, 1_000_000, 10_000_000)}

MIN_EVENTS_PER_USER = 3
ACTIVITY_SIGMA = 1.0  # lognormal sigma of the users' activity propensities
P_SEGMENT_IS_CLUSTER = 0.7
P_PURCHASE_IN_CLUSTER, P_PURCHASE_OFF_CLUSTER = 0.06, 0.02
WITHIN_SESSION_GAP = (30, 120.0, 1800)  # min s, mean extra s (exponential), max s
BETWEEN_SESSION_GAP = (7200, 36 * 3600.0)  # min s, mean extra s (exponential)
USER_START_SPREAD = 90 * 86400  # users' first events are spread over this many seconds
ITEM_CREATION_SPREAD = 2 * 365 * 86400  # items are created in this window before start_time
MIN_ID_DIGITS = 7

# Independent random streams, so e.g. asking for users.csv never changes interactions.csv.
_STREAM_MODEL, _STREAM_EVENTS, _STREAM_USERS_FILE, _STREAM_ITEMS_FILE = 0, 1, 2, 3


@dataclass(frozen=True)
class ScaleParams:
    """Sizes and planted-structure knobs of a scale data set (all of them go into truth.json)."""

    n_interactions: int
    n_items: int
    n_users: int
    n_catalogue_items: int = 0  # 0: same as n_items
    n_clusters: int = 0  # 0: n_items // 1000, clipped to [8, 1000]
    seed: int = 0
    zipf_exponent: float = 1.0
    p_in_cluster: float = 0.8
    p_successor: float = 0.3
    p_new_session: float = 0.15
    start_time: int = 1_700_000_000
    chunk_events: int = 1_000_000

    def resolved(self) -> ScaleParams:
        """These parameters with defaults filled in, checked."""
        n_clusters = self.n_clusters or int(np.clip(self.n_items // 1000, 8, 1000))
        catalogue = self.n_catalogue_items or self.n_items
        out = ScaleParams(**{**asdict(self), "n_clusters": n_clusters, "n_catalogue_items": catalogue})
        if out.n_items < 2 * n_clusters:
            raise ValueError(f"n_items ({out.n_items}) must be at least 2 per cluster ({n_clusters} clusters)")
        if catalogue < out.n_items:
            raise ValueError(f"n_catalogue_items ({catalogue}) must be >= n_items ({out.n_items})")
        if out.n_users < 1 or out.n_interactions < MIN_EVENTS_PER_USER * out.n_users:
            raise ValueError(f"n_interactions ({out.n_interactions}) must be >= {MIN_EVENTS_PER_USER} x n_users "
                             f"({out.n_users})")
        for name in ("p_in_cluster", "p_successor", "p_new_session"):
            if not 0.0 <= getattr(out, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(out, name)}")
        if out.chunk_events < 1:
            raise ValueError("chunk_events must be positive")
        return out


@dataclass
class PlantedModel:
    """The generator's hidden state. Items are stored in *ring order*: position ``p`` holds item
    ``ring_item[p]``; each cluster is the contiguous block ``cluster_start[c] : cluster_start[c + 1]``
    and the successor of the item at ``p`` is the next position of the block (wrapping around)."""

    params: ScaleParams
    weight: np.ndarray  # (n_items,) Zipf weight of each generative item, sums to 1
    item_cluster: np.ndarray  # (n_catalogue_items,) cluster of every catalogue item
    ring_item: np.ndarray  # (n_items,) item at ring position p
    ring_pos: np.ndarray  # (n_items,) ring position of item i
    cluster_start: np.ndarray  # (n_clusters + 1,) block bounds in ring order
    # (2 n_items,) increasing: in ring order, cluster index + CDF of the weight within the cluster, then
    # n_clusters + CDF of the weight over all items: a pick is one search for c + u (in cluster c) or
    # n_clusters + u (anywhere), u uniform in [0, 1)
    pick_cdf: np.ndarray
    user_cluster: np.ndarray  # (n_users,)
    n_events: np.ndarray  # (n_users,) events per user, >= 3, sums to n_interactions
    cluster_names: list[str] = field(default_factory=list)

    @property
    def successor(self) -> np.ndarray:
        """(n_items,) successor item of every generative item."""
        pos = np.arange(self.ring_item.size)
        cluster = np.searchsorted(self.cluster_start, pos, side="right") - 1
        start, size = self.cluster_start[cluster], np.diff(self.cluster_start)[cluster]
        out = np.empty_like(self.ring_item)
        out[self.ring_item] = self.ring_item[start + (pos - start + 1) % size]
        return out


def build_planted_model(params: ScaleParams) -> PlantedModel:
    """The hidden state for ``params`` (deterministic; item- and user-level arrays only)."""
    p = params.resolved()
    rng = np.random.default_rng([p.seed, _STREAM_MODEL])
    rank = rng.permutation(p.n_items) + 1
    weight = 1.0 / rank.astype(np.float64) ** p.zipf_exponent
    weight /= weight.sum()
    item_cluster = np.empty(p.n_catalogue_items, dtype=np.int32)
    item_cluster[: p.n_items] = rng.permutation(p.n_items) % p.n_clusters  # even cluster sizes
    item_cluster[p.n_items :] = rng.integers(0, p.n_clusters, p.n_catalogue_items - p.n_items)
    # ring order: by cluster, random order within a cluster
    ring_item = np.lexsort((rng.random(p.n_items), item_cluster[: p.n_items]))
    ring_pos = np.empty_like(ring_item)
    ring_pos[ring_item] = np.arange(p.n_items)
    cluster_start = np.searchsorted(item_cluster[ring_item], np.arange(p.n_clusters + 1))
    ring_weight = weight[ring_item]
    ring_cluster = item_cluster[ring_item]
    cum = np.cumsum(ring_weight)
    before = np.concatenate([[0.0], cum])[cluster_start[:-1]]  # mass before each cluster's block
    mass = np.add.reduceat(ring_weight, cluster_start[:-1])
    within = np.clip((cum - before[ring_cluster]) / mass[ring_cluster], 0.0, 1.0)
    within[cluster_start[1:] - 1] = 1.0
    global_cdf = cum / cum[-1]
    global_cdf[-1] = 1.0
    user_cluster = rng.integers(0, p.n_clusters, p.n_users).astype(np.int32)
    propensity = rng.lognormal(0.0, ACTIVITY_SIGMA, p.n_users)
    extra = rng.multinomial(p.n_interactions - MIN_EVENTS_PER_USER * p.n_users, propensity / propensity.sum())
    n_events = (extra + MIN_EVENTS_PER_USER).astype(np.int64)
    width = len(str(p.n_clusters - 1))
    return PlantedModel(
        params=p, weight=weight, item_cluster=item_cluster, ring_item=ring_item, ring_pos=ring_pos,
        cluster_start=cluster_start, pick_cdf=np.concatenate([ring_cluster + within, p.n_clusters + global_cdf]),
        user_cluster=user_cluster, n_events=n_events,
        cluster_names=[f"cluster{c:0{width}d}" for c in range(p.n_clusters)],
    )


# ---------------------------------------------------------------------------------------------- events


@dataclass
class _Chunk:
    user: np.ndarray  # (E,) global user index
    item: np.ndarray  # (E,) item index
    timestamp: np.ndarray  # (E,) int64
    purchase: np.ndarray  # (E,) bool
    ends: np.ndarray  # (n_chunk_users,) end offset of each user's rows


def _generate_chunk(model: PlantedModel, u0: int, u1: int, index: int) -> _Chunk:
    """All events of users ``u0 .. u1 - 1``, each user's in time order."""
    p = model.params
    rng = np.random.default_rng([p.seed, _STREAM_EVENTS, index])
    counts = model.n_events[u0:u1]
    ends = np.cumsum(counts)
    n = int(ends[-1])
    starts = ends - counts
    local = np.repeat(np.arange(u1 - u0), counts)
    first = np.zeros(n, dtype=bool)
    first[starts] = True
    cluster = model.user_cluster[u0:u1][local]

    # A fresh pick at every event that does not follow its predecessor's successor ("anchors").
    follows = ~first & (rng.random(n) < p.p_successor)
    anchors = np.flatnonzero(~follows)
    in_cluster = rng.random(anchors.size) < p.p_in_cluster
    needle = np.where(in_cluster, cluster[anchors], p.n_clusters) + rng.random(anchors.size)
    fresh = _sorted_search(model.pick_cdf, needle) % model.ring_item.size  # ring positions
    # An event j steps after its anchor is the anchor's item moved j places along its cluster's ring.
    anchor_of = np.cumsum(~follows) - 1
    steps = np.arange(n) - anchors[anchor_of]
    pos0 = fresh[anchor_of]
    c0 = model.item_cluster[model.ring_item[pos0]]
    block, size = model.cluster_start[c0], np.diff(model.cluster_start)[c0]
    item = model.ring_item[block + (pos0 - block + steps) % size]

    # Sessions: short gaps inside, long gaps between; the first gap places the user's first event.
    x = rng.exponential(1.0, n)
    lo, mean, hi = WITHIN_SESSION_GAP
    b_lo, b_mean = BETWEEN_SESSION_GAP
    new_session = rng.random(n) < p.p_new_session
    gap = np.where(new_session, b_lo + b_mean * x, np.minimum(lo + mean * x, hi)).astype(np.int64)
    gap[starts] = rng.integers(0, USER_START_SPREAD, u1 - u0)
    cum = np.cumsum(gap)
    timestamp = p.start_time + cum - np.repeat(cum[starts] - gap[starts], counts)

    p_buy = np.where(model.item_cluster[item] == cluster, P_PURCHASE_IN_CLUSTER, P_PURCHASE_OFF_CLUSTER)
    purchase = rng.random(n) < p_buy
    return _Chunk(local + u0, item, timestamp, purchase, ends)


def _sorted_search(cdf: np.ndarray, needle: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cdf, needle, side="right")`` clipped to the last index, with the needles
    sorted first: sorted lookups walk the table in order, ~3x faster than random ones on 1M items."""
    order = np.argsort(needle)
    out = np.empty(needle.size, dtype=np.int64)
    out[order] = np.searchsorted(cdf, needle[order], side="right")
    return np.minimum(out, cdf.size - 1)


def _chunk_bounds(p: ScaleParams) -> list[tuple[int, int]]:
    users_per_chunk = max(1, int(p.chunk_events * p.n_users // p.n_interactions))
    return [(u, min(u + users_per_chunk, p.n_users)) for u in range(0, p.n_users, users_per_chunk)]


# --------------------------------------------------------------------------------------------- writing


def _id_width(n: int) -> int:
    return max(MIN_ID_DIGITS, len(str(n - 1)))


def fixed_width_ids(prefix: str, index: np.ndarray, width: int) -> pa.StringArray:
    """``prefix`` + zero-padded ``index`` as an Arrow string array, built from one byte buffer."""
    n, head = index.size, prefix.encode()
    row = len(head) + width
    if (n + 1) * row >= 2**31:
        raise ValueError("too many ids for one array; write in chunks")
    buf = np.empty((n, row), dtype=np.uint8)
    buf[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    v = index.astype(np.int64)
    for d in range(row - 1, len(head) - 1, -1):  # one pass per digit, not per id
        buf[:, d] = v % 10 + 48
        v = v // 10
    offsets = np.arange(0, (n + 1) * row, row, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))


class _CsvFile:
    """A CSV written table by table into ``<path>.partial``, renamed to ``path`` when the ``with``
    block ends without an error (so a crash never leaves a half-written file under the real name)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.partial, self.schema = path, path.with_name(path.name + ".partial"), schema
        self.sink = pa.OSFile(str(self.partial), "wb")
        self.sink.write((",".join(schema.names) + "\n").encode())  # unquoted header
        self.writer = pacsv.CSVWriter(self.sink, schema,
                                      write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))

    def write(self, columns: dict) -> None:
        self.writer.write_table(pa.table(columns, schema=self.schema))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.writer.close()
        self.sink.close()
        if exc_type is None:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def _dictionary(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


_DICT = pa.dictionary(pa.int32(), pa.string())
_INTERACTIONS_ARROW = pa.schema([(USER_ID, pa.string()), (ITEM_ID, pa.string()), (TIMESTAMP, pa.int64()),
                                 (EVENT_TYPE, _DICT)])
_ITEMS_ARROW = pa.schema([(ITEM_ID, pa.string()), (CATEGORY, _DICT), (PRICE, pa.float64()),
                          (CREATION_TIMESTAMP, pa.int64())])
_USERS_ARROW = pa.schema([(USER_ID, pa.string()), (SEGMENT, _DICT)])


def personalize_schemas() -> dict[str, dict]:
    """The Avro schemas of the three files, as Personalize takes them."""
    return {
        "interactions": Schema(INTERACTIONS, [Field(USER_ID, "string"), Field(ITEM_ID, "string"),
                                              Field(TIMESTAMP, "long"), Field(EVENT_TYPE, "string")]).to_avro(),
        "items": Schema(ITEMS, [Field(ITEM_ID, "string"), Field(CATEGORY, "string", categorical=True),
                                Field(PRICE, "float"), Field(CREATION_TIMESTAMP, "long")]).to_avro(),
        "users": Schema(USERS, [Field(USER_ID, "string"), Field(SEGMENT, "string", categorical=True)]).to_avro(),
    }


def _write_items(model: PlantedModel, out: Path) -> None:
    p = model.params
    rng = np.random.default_rng([p.seed, _STREAM_ITEMS_FILE])
    cluster_level = rng.normal(3.0, 0.8, p.n_clusters)  # log price level of each cluster
    price = np.round(np.exp(cluster_level[model.item_cluster] + rng.normal(0.0, 0.5, p.n_catalogue_items)), 2)
    created = p.start_time - rng.integers(1, ITEM_CREATION_SPREAD, p.n_catalogue_items)
    with _CsvFile(out / "items.csv", _ITEMS_ARROW) as csv:
        for i0 in range(0, p.n_catalogue_items, p.chunk_events):
            i1 = min(i0 + p.chunk_events, p.n_catalogue_items)
            csv.write({ITEM_ID: fixed_width_ids("i", np.arange(i0, i1), _id_width(p.n_catalogue_items)),
                       CATEGORY: _dictionary(model.item_cluster[i0:i1], model.cluster_names),
                       PRICE: price[i0:i1], CREATION_TIMESTAMP: created[i0:i1]})


def _write_users(model: PlantedModel, out: Path) -> None:
    p = model.params
    rng = np.random.default_rng([p.seed, _STREAM_USERS_FILE])
    segment = np.where(rng.random(p.n_users) < P_SEGMENT_IS_CLUSTER, model.user_cluster,
                       rng.integers(0, p.n_clusters, p.n_users))
    with _CsvFile(out / "users.csv", _USERS_ARROW) as csv:
        for u0 in range(0, p.n_users, p.chunk_events):
            u1 = min(u0 + p.chunk_events, p.n_users)
            csv.write({USER_ID: fixed_width_ids("u", np.arange(u0, u1), _id_width(p.n_users)),
                       SEGMENT: _dictionary(segment[u0:u1], model.cluster_names)})


def write_scale_data(out_dir, params: ScaleParams, with_items: bool = False, with_users: bool = False,
                     oracle_users: int = 100_000, k: int = 10, progress: bool = False) -> dict:
    """Generate and write the data set into ``out_dir``; return the contents of truth.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = build_planted_model(params)
    p = model.params
    sample = _oracle_sample(p.n_users, oracle_users)
    sample_prev = np.empty(sample.size, dtype=np.int64)
    sample_target = np.empty(sample.size, dtype=np.int64)
    train_counts = np.zeros(p.n_catalogue_items, dtype=np.int64)  # events but each user's last
    last_counts = np.zeros(p.n_catalogue_items, dtype=np.int64)
    written = 0

    bounds = _chunk_bounds(p)
    item_width, user_width = _id_width(p.n_catalogue_items), _id_width(p.n_users)
    with _CsvFile(out / "interactions.csv", _INTERACTIONS_ARROW) as interactions:
        for index, (u0, u1) in enumerate(bounds):
            ch = _generate_chunk(model, u0, u1, index)
            interactions.write({USER_ID: fixed_width_ids("u", ch.user, user_width),
                                ITEM_ID: fixed_width_ids("i", ch.item, item_width),
                                TIMESTAMP: ch.timestamp,
                                EVENT_TYPE: _dictionary(ch.purchase.astype(np.int32), [CLICK, PURCHASE])})
            last = ch.ends - 1
            train = np.ones(ch.item.size, dtype=bool)
            train[last] = False
            train_counts += np.bincount(ch.item[train], minlength=p.n_catalogue_items)
            last_counts += np.bincount(ch.item[last], minlength=p.n_catalogue_items)
            written += ch.item.size
            lo, hi = np.searchsorted(sample, [u0, u1])
            sample_target[lo:hi] = ch.item[last[sample[lo:hi] - u0]]
            sample_prev[lo:hi] = ch.item[last[sample[lo:hi] - u0] - 1]
            if progress:
                print(f"chunk {index + 1}/{len(bounds)}: {written:,}/{p.n_interactions:,} interactions, "
                      f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    if with_users:
        _write_users(model, out)
    if with_items:
        _write_items(model, out)

    files = ["interactions"] + (["items"] if with_items else []) + (["users"] if with_users else [])
    for name in files:
        (out / f"{name}.schema.json").write_text(json.dumps(personalize_schemas()[name], indent=2) + "\n")
    truth = {
        "params": asdict(p),
        "files": [f"{name}.csv" for name in files],
        "n_items_touched": int(np.count_nonzero(train_counts + last_counts)),
        "planted": _planted_description(p),
        **_oracle_metrics(model, sample, sample_prev, sample_target, train_counts, k),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _planted_description(p: ScaleParams) -> dict:
    return {
        "item_weight": f"1 / rank ** {p.zipf_exponent}, random ranks",
        "item_cluster": "items.csv CATEGORY",
        "user_cluster_in_users_csv": f"SEGMENT equals the user's cluster with probability {P_SEGMENT_IS_CLUSTER}",
        "successor": "next item on a random ring through each cluster's items",
        "min_events_per_user": MIN_EVENTS_PER_USER,
        "within_session_gap_s": list(WITHIN_SESSION_GAP),
        "between_session_gap_s": list(BETWEEN_SESSION_GAP),
        "p_purchase": {"in_cluster": P_PURCHASE_IN_CLUSTER, "off_cluster": P_PURCHASE_OFF_CLUSTER},
    }


# ---------------------------------------------------------------------------------------------- oracle


def _oracle_sample(n_users: int, n_sample: int) -> np.ndarray:
    """An evenly strided, deterministic sample of user indices."""
    stride = max(1, -(-n_users // max(n_sample, 1)))
    return np.arange(0, n_users, stride)


def _dcg(rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(NDCG@k, hit@k) of one relevant item at 1-based ``rank``."""
    hit = rank <= k
    return np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0), hit


def _true_rank(model: PlantedModel, cluster: np.ndarray, prev: np.ndarray, target: np.ndarray, k: int,
               p_successor: float) -> np.ndarray:
    """1-based rank of ``target`` under the true next-item probability (capped at k + 1)

        P(y | cluster c, prev x) = p_successor [y = successor(x)]
                                   + (1 - p_successor) (p_in w_y / W_c [y in c] + (1 - p_in) w_y).

    Only the k heaviest items of the cluster, the k heaviest overall and successor(x) can reach the
    top k (any other item is outranked by k of those), so ranking those candidates is exact."""
    p = model.params
    w = model.weight
    ring_w = w[model.ring_item]
    mass = np.add.reduceat(ring_w, model.cluster_start[:-1])
    by_weight = model.ring_item[np.lexsort((-ring_w, model.item_cluster[model.ring_item]))]  # blocks kept
    kk = min(k, int(np.diff(model.cluster_start).min()))
    cluster_top = by_weight[model.cluster_start[:-1, None] + np.arange(kk)]  # (C, kk) heaviest per cluster
    global_top = np.argsort(-w, kind="stable")[:k]
    succ = model.successor[prev]
    cand = np.concatenate([cluster_top[cluster], np.broadcast_to(global_top, (cluster.size, k)),
                           succ[:, None], target[:, None]], axis=1)  # (m, 2k + 2)
    in_c = model.item_cluster[cand] == cluster[:, None]
    base = p.p_in_cluster * w[cand] / mass[cluster][:, None] * in_c + (1 - p.p_in_cluster) * w[cand]
    score = (1 - p_successor) * base + p_successor * (cand == succ[:, None])
    # drop duplicate candidates, keeping the target's own column
    order = np.argsort(cand, axis=1, kind="stable")
    sorted_cand = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros_like(sorted_cand, dtype=bool)
    dup_sorted[:, :-1] = sorted_cand[:, :-1] == sorted_cand[:, 1:]  # all but the last copy
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    target_score = score[:, -1:]
    others = (cand != target[:, None]) & ~dup
    # ties are counted against the ranking: equal scores rank above the target
    return 1 + np.minimum((others & (score >= target_score)).sum(axis=1), k)


def _popularity_rank(train_counts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of ``target`` by training-event count over the whole catalogue, ties counted against."""
    sorted_counts = np.sort(train_counts)
    return train_counts.size - np.searchsorted(sorted_counts, train_counts[target], side="left")


def _oracle_metrics(model: PlantedModel, users: np.ndarray, prev: np.ndarray, target: np.ndarray,
                    train_counts: np.ndarray, k: int) -> dict:
    cluster = model.user_cluster[users]
    out: dict = {"evaluation": {
        "protocol": "each user's last event is the target, given the previous one; rank over the whole "
                    "catalogue, nothing excluded, ties counted against; popularity counts all other events",
        "k": k, "n_users": int(users.size), "user_stride": int(users[1] - users[0]) if users.size > 1 else 1}}
    for name, rank in (
        ("oracle", _true_rank(model, cluster, prev, target, k, model.params.p_successor)),
        ("taste_only_oracle", _true_rank(model, cluster, prev, target, k, 0.0)),
        ("popularity", _popularity_rank(train_counts, target)),
    ):
        ndcg, hit = _dcg(rank, k)
        out[name] = {f"ndcg_at_{k}": round(float(ndcg.mean()), 6), f"recall_at_{k}": round(float(hit.mean()), 6)}
    return out


def oracle_ndcg_at_k(folder, k: int = 10, n_users_sample: int = 100_000) -> dict:
    """NDCG@k and Recall@k of the true next-item probabilities, of the same without the sequence
    (taste only), and of popularity, measured on the interactions.csv in ``folder`` (generated with
    the parameters in its truth.json): each sampled user's last event is the target."""
    folder = Path(folder)
    params = ScaleParams(**json.loads((folder / "truth.json").read_text())["params"])
    model = build_planted_model(params)
    table = pacsv.read_csv(folder / "interactions.csv", convert_options=pacsv.ConvertOptions(
        include_columns=[USER_ID, ITEM_ID, TIMESTAMP],
        column_types={USER_ID: pa.string(), ITEM_ID: pa.string(), TIMESTAMP: pa.int64()}))
    user = _parse_ids(table[USER_ID])
    item = _parse_ids(table[ITEM_ID])
    order = np.lexsort((table[TIMESTAMP].to_numpy(), user))
    user, item = user[order], item[order]
    is_last = np.ones(user.size, dtype=bool)
    is_last[:-1] = user[:-1] != user[1:]
    last = np.flatnonzero(is_last)
    train_counts = np.bincount(item[~is_last], minlength=model.params.n_catalogue_items)
    sample = _oracle_sample(model.params.n_users, n_users_sample)
    rows = last[np.searchsorted(user[last], sample)]
    return _oracle_metrics(model, sample, item[rows - 1], item[rows], train_counts, k)


def _parse_ids(column: pa.ChunkedArray) -> np.ndarray:
    """``u0000123`` -> 123 (the generator's fixed-width ids)."""
    return pc.cast(pc.utf8_slice_codeunits(column, 1), pa.int64()).to_numpy()


# ------------------------------------------------------------------------------------------------- CLI


def parse_count(text: str) -> int:
    """``"10M"`` -> 10_000_000; accepts k/K, M, B/G suffixes, decimals (``"1.5M"``) and plain integers."""
    s = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 10**3, "K": 10**3, "M": 10**6, "m": 10**6, "B": 10**9, "G": 10**9}.get(s[-1:], 1)
    number = s[:-1] if scale > 1 else s
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (examples: 200k, 10M, 1000)") from None
    if value != int(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a whole count: {text!r}")
    return int(value)


def main(argv: list[str] | None = None) -> dict:
    """Write a large synthetic Personalize data set (CSV + schemas + truth.json) with planted patterns.

    Sizes accept suffixes: 200k, 1M, 10M, 100M. --size picks a preset (1M interactions: 100k items and
    100k users; 10M: 1M items, 1M users; 100M: 1M items, 10M users); --interactions / --items / --users
    override it. truth.json holds the parameters and, on a leave-last-out split, the NDCG@10 of ranking
    by the generator's own next-item probabilities (what a perfect model would score on average) next to
    popularity's (the baseline every recipe should beat).

    examples:
      python -m personalize_torch.data.scale_synthetic --out data/scale10m --size 10M
      python -m personalize_torch.data.scale_synthetic --out data/small --interactions 200k --items 20k \\
          --users 20k --with-items --with-users --seed 1
    """
    parser = argparse.ArgumentParser(prog="python -m personalize_torch.data.scale_synthetic",
                                     description=inspect.cleandoc(main.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--size", choices=sorted(PRESETS), help="preset sizes by number of interactions")
    parser.add_argument("--interactions", type=parse_count, help="number of interaction rows (exact)")
    parser.add_argument("--items", type=parse_count, help="number of items that can be picked")
    parser.add_argument("--users", type=parse_count, help="number of users (each gets at least 3 events)")
    parser.add_argument("--catalogue-items", type=parse_count, default=0,
                        help="items in items.csv (>= --items; the extra ones never get an event)")
    parser.add_argument("--clusters", type=int, default=0, help="taste clusters (default: items / 1000, 8 to 1000)")
    parser.add_argument("--with-items", action="store_true", help="also write items.csv")
    parser.add_argument("--with-users", action="store_true", help="also write users.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-users", type=parse_count, default=100_000,
                        help="users sampled for the oracle numbers in truth.json")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    n_inter, n_items, n_users = PRESETS.get(args.size, (None, None, None))
    n_inter, n_items, n_users = (args.interactions or n_inter, args.items or n_items, args.users or n_users)
    if not (n_inter and n_items and n_users):
        parser.error("give --size, or all of --interactions, --items and --users")
    params = ScaleParams(n_interactions=n_inter, n_items=n_items, n_users=n_users,
                         n_catalogue_items=args.catalogue_items, n_clusters=args.clusters, seed=args.seed)
    try:
        params.resolved()
    except ValueError as err:
        parser.error(str(err))
    t0 = time.perf_counter()
    truth = write_scale_data(args.out, params, with_items=args.with_items, with_users=args.with_users,
                             oracle_users=args.oracle_users, progress=not args.quiet)
    print(f"wrote {', '.join(truth['files'])} to {args.out} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(json.dumps({name: truth[name] for name in ("oracle", "taste_only_oracle", "popularity")}))
    return truth


if __name__ == "__main__":
    main()
