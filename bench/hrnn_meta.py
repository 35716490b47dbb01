"""HRNN-Meta vs HRNN (next to Popularity-Count), and HRNN-Coldstart on a newest-items split.

    python bench/hrnn_meta.py meta --data demo demo_sparse ml100k [--epochs 10 --dim 32 --seeds 42 1 2 --ablations]
    python bench/hrnn_meta.py coldstart [--n-cold 30 --epochs 10 --dim 32]

`meta`: leave-one-out, full ranking, test NDCG@10 / HR@10 of Popularity-Count, HRNN and HRNN-Meta with
the same hyperparameters (means over `--seeds`, each seed's NDCG@10 listed; `--ablations` adds HRNN-Meta
without item metadata, numeric item fields, user metadata or context). `demo` is the default demo
data (1000 users, 400 items, 15-60 events each);
`demo_sparse` the same generator with 2000 users of 4-12 events (`events_per_user`): short histories,
so an item's genre (its taste cluster) carries more of the signal (the users' MEMBERSHIP / AGE_GROUP
predict the cluster too, but two history items already name it); `ml100k`
reads ../shared/data/movielens/ml-100k with its GENRES and the users' AGE / GENDER / OCCUPATION.

`coldstart`: the demo data with the `--n-cold` newest items (by CREATION_TIMESTAMP) held out: training
has only events before the oldest of them (`data.cold_items.hold_out_newest_items`), HRNN-Coldstart's
cold window (`cold_start_max_duration`, relative to the newest item) is set to cover exactly those
items, and each user who went on to choose some of them is a test case: recall@10 = the share of the
distinct new items the user chose that are in the user's top 10 of the new items, the model reading
the user's events before the first such choice (training events and later ones, as a served model
reads a user's recent events). Baselines: the
new items ranked by how many users chose them in the held-out period ("most popular cold item"; an
oracle, it reads the test period) and random order (expected recall@10 = 10 / n_cold).

`coldstart`: one seed. One intra-op thread (the machine's cores are shared); prints Markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from personalize_torch import training
from personalize_torch.data import constants as C
from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.cold_items import DAY, hold_out_newest_items
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.synthetic import generate_demo_data, write_demo_data
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.models.context_embeddings import ContextEmbeddings
from personalize_torch.recipes.hrnn_meta import HRNNMeta

REPO = Path(__file__).resolve().parents[1]
# `meta --data` names: the config overrides that select each data set (as `python train.py` takes them)
DATA = {"demo": [],
        "demo_sparse": ["data.demo.n_users=2000", "data.demo.n_items=400", "+data.demo.events_per_user=[4,12]",
                        "data.demo.seed=0"],
        "ml100k": ["data=ml100k"]}


def config(data: list[str], recipe: str, seed: int, batch_size: int, hp: dict | None = None) -> DictConfig:
    """The training config of one run: `data` overrides, the recipe with hyperparameters `hp`, leave-one-out."""
    cfg = training.compose_config([*data, f"recipe={recipe}", "logger=none", f"seed={seed}", "data.split=leave_one_out",
                                   f"data.batch_size={batch_size}",
                                   *(f"recipe.{k}={str(v).lower() if isinstance(v, bool) else v}"
                                     for k, v in (hp or {}).items())])
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    return cfg


def fit(cfg: DictConfig, data: PreparedData, epochs: int, ablate=None):
    """The recipe and loaders `train(cfg)` builds on `data`, trained for `epochs` on the CPU without validation."""
    pl.seed_everything(cfg.seed, workers=True)
    recipe = training.build_recipe(cfg.recipe, data)
    if ablate is not None:
        ablate(recipe)
    recipe.count_statistics(data.split)
    dm = training.data_module(cfg.data, data, recipe, seed=cfg.seed)
    trainer = pl.Trainer(max_epochs=1 if recipe.count_based else epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=tempfile.mkdtemp())
    trainer.fit(recipe, datamodule=dm)
    return recipe, trainer, dm


def _no_numeric(recipe: HRNNMeta) -> None:
    recipe.item_numeric.zero_()          # standardized PRICE / CREATION_TIMESTAMP -> all at the mean


def _no_context(recipe: HRNNMeta) -> None:
    dim = recipe.hparams.hidden_dimension   # no tables: the context embeddings give None
    recipe.context_embeddings = ContextEmbeddings(None, dim)
    recipe.next_context_embeddings = ContextEmbeddings(None, dim)


# `--ablations`: HRNN-Meta with one kind of input left out (hyperparameters where the recipe has them).
ABLATIONS = {"hrnn_meta, no item metadata": ({"use_item_metadata": False}, None),
             "hrnn_meta, no numeric item fields": ({}, _no_numeric),
             "hrnn_meta, no user metadata": ({"use_user_metadata": False}, None),
             "hrnn_meta, no context": ({}, _no_context)}


def meta(args) -> None:
    """One row per (data, recipe): HR@10 and NDCG@10 averaged over `--seeds` (each seed's NDCG@10 listed),
    seconds per training."""
    rows = ["| data | recipe | HR@10 | NDCG@10 | NDCG@10 per seed | users | items | seconds |",
            "|---|---|---|---|---|---|---|---|"]
    hp = dict(hidden_dimension=args.dim, loss="full", dropout=args.dropout, embedding_dropout=args.dropout,
              learning_rate=args.lr)
    for name in args.data:
        if name not in DATA:
            raise SystemExit(f"unknown data {name!r}")
        # the split is leave-one-out (no seed in it): one prepared data set for every recipe and seed
        data = training.prepare_data(config(DATA[name], "popularity_count", args.seeds[0], args.batch_size))
        runs = [("popularity_count", "popularity_count", None, None), ("hrnn", "hrnn", hp, None),
                ("hrnn_meta", "hrnn_meta", hp, None)]
        if args.ablations:
            runs += [(label, "hrnn_meta", {**hp, **change}, ablate) for label, (change, ablate) in ABLATIONS.items()]
        for label, recipe_name, extra, ablate in runs:
            start = time.perf_counter()
            seeds = args.seeds[:1] if recipe_name == "popularity_count" else args.seeds   # counts: no randomness
            results = []
            for seed in seeds:
                cfg = config(DATA[name], recipe_name, seed, args.batch_size, extra)
                recipe, trainer, dm = fit(cfg, data, args.epochs, ablate=ablate)
                results.append(trainer.test(recipe, datamodule=dm, verbose=False)[0])
            hr, ndcg = (np.mean([m[f"test/{k}_at_10"] for m in results]) for k in ("hit_rate", "ndcg"))
            per_seed = " / ".join(f"{m['test/ndcg_at_10']:.4f}" for m in results)
            rows.append(f"| {name} | {label} | {hr:.4f} | {ndcg:.4f} | {per_seed} | {len(data.user_vocab)} | "
                        f"{len(data.item_vocab)} | {(time.perf_counter() - start) / len(seeds):.0f} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


def recall_at(scores: torch.Tensor, targets: list[np.ndarray], k: int) -> float:
    """Mean over users of |top-k ∩ targets| / |targets| (scores: -inf for items that may not be ranked)."""
    top = torch.topk(scores, k, dim=1).indices.numpy()
    return float(np.mean([len(set(t) & set(row)) / len(t) for row, t in zip(top, targets)]))


def coldstart(args) -> None:
    demo = generate_demo_data(seed=args.seed)
    train_events, held_out, newest = hold_out_newest_items(demo.interactions, demo.items, args.n_cold)
    with tempfile.TemporaryDirectory() as tmp:
        # the training events as Personalize CSVs (with the demo schemas), read as `python train.py
        # data.interactions=...` would read them
        files = write_demo_data(dataclasses.replace(demo, interactions=train_events), tmp)
        cfg = config([f"data.{key}={files[key]}" for key in ("interactions", "items", "users", "interactions_schema",
                                                              "items_schema", "users_schema")],
                     "hrnn_coldstart", 42, args.batch_size,
                     dict(hidden_dimension=args.dim, loss="full", dropout=args.dropout, embedding_dropout=args.dropout,
                          learning_rate=args.lr))
        data = training.prepare_data(cfg)
    created = data.item_creation_timestamps
    window = (np.nanmax(created) - created[data.item_vocab.to_idx(newest)].min()) / DAY
    cfg.recipe.cold_start_max_duration = float(window) + 1e-6   # the cold window: exactly the held-out items
    start = time.perf_counter()
    recipe, _, _ = fit(cfg, data, args.epochs)
    seconds = time.perf_counter() - start
    cold = recipe.cold_items()
    assert set(data.item_vocab.to_id(cold.nonzero()[:, 0].numpy())) == set(newest)

    # Test cases: each user who chose new items after the cut. Input: all the user's events before the
    # first such choice (training events and later ones, as a served model reads recent events); targets:
    # the distinct new items the user chose from then on.
    events = pd.concat([train_events, held_out], ignore_index=True).sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
    events = events.assign(ITEM_IDX=data.item_vocab.to_idx(events[C.ITEM_ID].to_numpy(dtype=object)))
    first = events[events[C.ITEM_ID].isin(set(newest))].groupby(C.USER_ID)[C.TIMESTAMP].min()
    events = events[events[C.USER_ID].isin(first.index)].reset_index(drop=True)
    is_new = events[C.ITEM_ID].isin(set(newest))
    t0 = events[C.USER_ID].map(first)
    targets = [np.unique(g) for _, g in events[is_new & (events[C.TIMESTAMP] >= t0)].groupby(C.USER_ID)["ITEM_IDX"]]
    history = events[events[C.TIMESTAMP] < t0].groupby(C.USER_ID)
    device = data.context_vocabs["DEVICE"]
    users = first.index.to_numpy(dtype=object)
    T = recipe.input_length
    items = torch.zeros(len(users), T, dtype=torch.long)
    times = torch.zeros(len(users), T, dtype=torch.long)
    context = torch.zeros(len(users), T, 1, dtype=torch.long)
    for b, user in enumerate(users):   # a few hundred users: a loop is fine in a bench
        if user not in history.groups:
            continue
        h = history.get_group(user).tail(T)
        n = len(h)
        items[b, T - n:] = torch.from_numpy(h["ITEM_IDX"].to_numpy())
        times[b, T - n:] = torch.from_numpy(h[C.TIMESTAMP].to_numpy())
        context[b, T - n:, 0] = torch.from_numpy(device.to_idx(h["DEVICE"].astype(str).to_numpy(dtype=object)))
    inputs = SequenceBatch(torch.from_numpy(data.user_vocab.to_idx(users)), items, times, context=context)
    recipe.eval()
    with torch.no_grad():
        scores = mask_scores(recipe.score(inputs), items)
    counts = np.bincount(np.concatenate(targets), minlength=data.n_items).astype(float)
    popular = torch.full_like(scores, float("-inf"))
    popular[:, cold] = torch.from_numpy(counts)[cold].float() - torch.arange(int(cold.sum())) * 1e-6
    k = 10
    result = {"hrnn_coldstart": recall_at(scores, targets, k), "most popular cold item (oracle)":
              recall_at(popular, targets, k), "random cold items (expected)": k / int(cold.sum())}
    print(f"{args.n_cold} newest items held out; {len(targets)} users chose {sum(map(len, targets))} distinct "
          f"(user, new item) pairs; {len(data.sequences.item_idx)} training events; {seconds:.0f} s to train")
    print(f"| ranking of the {int(cold.sum())} cold items | recall@{k} |\n|---|---|")
    for name, value in result.items():
        print(f"| {name} | {value:.4f} |")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("meta")
    m.add_argument("--data", nargs="+", default=["demo_sparse"])
    m.add_argument("--seeds", type=int, nargs="+", default=[42], help="train HRNN and HRNN-Meta once per seed")
    m.add_argument("--ablations", action="store_true", help="also HRNN-Meta without each kind of input")
    c = sub.add_parser("coldstart")
    c.add_argument("--n-cold", type=int, default=30)
    c.add_argument("--seed", type=int, default=0)
    for s in (m, c):
        s.add_argument("--epochs", type=int, default=10)
        s.add_argument("--dim", type=int, default=32)
        s.add_argument("--batch-size", type=int, default=128)
        s.add_argument("--dropout", type=float, default=0.4, help="dropout and embedding_dropout")
        s.add_argument("--lr", type=float, default=5e-3)
    args = p.parse_args()
    meta(args) if args.command == "meta" else coldstart(args)


if __name__ == "__main__":
    main()
