"""Users the solution does not know, described by their Users metadata: HRNN-Meta and User-Personalization
against Popularity-Count and an oracle, on planted data.

    python bench/cold_users.py [--seeds 0 1 2 --epochs 20 --users 2000 --recipes hrnn_meta user_personalization]
    python bench/cold_users.py --warm demo demo_sparse [--seeds 0 1 2 --epochs 10]

Planted data (`planted_cold_users`): each user has a categorical SEGMENT (Users dataset) and a REGION that
says nothing; each of their events is an item of their segment with probability `p_in_segment`, else any
item. Items have no metadata, so which items belong to a segment is learned from the warm users' events. A
share of the users (`cold_share`) is held out entirely: their events are not in training, only their Users
row. Each cold user's first event is the target; a model scores them through the served path
(`Predictor.recommend` on the saved solution version: the user is not in its histories, their metadata
comes from the Users dataset the solution was trained with).

Printed per recipe: HitRate@10 / NDCG@10 of the cold users' first events, for the recipe, for
Popularity-Count (the items with the most training events) and for the oracle (each segment's most chosen
training items: what a model that knew the planted rule would list), means over the seeds and each seed's
NDCG@10; also the warm users' leave-one-out test NDCG@10 with and without `use_user_metadata`, paired by
seed, so the cost or gain for known users is seen next to it. One intra-op thread.

`--warm`: User-Personalization with and without `use_user_metadata` on the demo data (whose Users dataset has
MEMBERSHIP and AGE_GROUP, which predict a user's taste cluster) and its sparse variant (2000 users of 4-12
events): leave-one-out test NDCG@10 of the known users, paired by seed (the data's and the model's).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.solution_version import load_solution_version, save_solution_version

RECIPES = {"hrnn_meta": HRNNMeta, "user_personalization": UserPersonalization}


def planted_cold_users(n_users: int = 2000, n_segments: int = 8, items_per_segment: int = 25,
                       events: tuple[int, int] = (4, 12), p_in_segment: float = 0.7, cold_share: float = 0.2,
                       seed: int = 0) -> tuple[DatasetGroup, pd.DataFrame]:
    """(the training dataset group: the warm users' events and every user's Users row, the cold users'
    events). Users u0..; the last `cold_share` of them are cold. Event times: one user after another, events
    a minute apart."""
    rng = np.random.default_rng(seed)
    n_items = n_segments * items_per_segment
    segment = rng.integers(0, n_segments, n_users)
    lengths = rng.integers(events[0], events[1] + 1, n_users)
    user = np.repeat(np.arange(n_users), lengths)
    position = np.arange(len(user)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    # within a segment, items are chosen by a Zipf-like popularity, so the segment's top items are worth learning
    rank = np.minimum(rng.zipf(1.3, len(user)) - 1, items_per_segment - 1)
    own = segment[user] + n_segments * rank
    item = np.where(rng.random(len(user)) < p_in_segment, own, rng.integers(0, n_items, len(user)))
    events_df = pd.DataFrame({C.USER_ID: [f"u{u}" for u in user], C.ITEM_ID: [f"i{i}" for i in item],
                              C.TIMESTAMP: 1_700_000_000 + user * 10_000 + position * 60})
    users = pd.DataFrame({C.USER_ID: [f"u{u}" for u in range(n_users)], "SEGMENT": [f"s{s}" for s in segment],
                          "REGION": [f"r{r}" for r in rng.integers(0, 4, n_users)]})
    cold = user >= n_users - int(round(cold_share * n_users))
    return DatasetGroup(events_df[~cold].reset_index(drop=True), users=users, name="planted_cold_users"), \
        events_df[cold].reset_index(drop=True)


def first_events(events: pd.DataFrame) -> pd.DataFrame:
    """Each user's first event (USER_ID, ITEM_ID)."""
    return events.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable").drop_duplicates(C.USER_ID)


def hit_and_ndcg(lists: list[list[str]], targets: list[str], k: int = 10) -> tuple[float, float]:
    """HitRate@k and NDCG@k of one target item per list."""
    ranks = [lst[:k].index(t) if t in lst[:k] else None for lst, t in zip(lists, targets)]
    hits = [r is not None for r in ranks]
    return float(np.mean(hits)), float(np.mean([1 / np.log2(r + 2) if r is not None else 0.0 for r in ranks]))


def baselines(group: DatasetGroup, cold_first: pd.DataFrame, k: int = 10) -> dict[str, tuple[float, float]]:
    """Popularity-Count (most training events) and the oracle (the cold user's segment's most chosen items)."""
    train = group.interactions
    popular = train[C.ITEM_ID].value_counts(sort=True).index[:k].tolist()
    segment = group.users.set_index(C.USER_ID)["SEGMENT"]
    by_segment = (train.assign(SEGMENT=segment.reindex(train[C.USER_ID]).to_numpy())
                  .groupby("SEGMENT")[C.ITEM_ID].agg(lambda s: s.value_counts().index[:k].tolist()))
    targets = cold_first[C.ITEM_ID].tolist()
    oracle = [by_segment[segment[u]] for u in cold_first[C.USER_ID]]
    return {"Popularity-Count": hit_and_ndcg([popular] * len(targets), targets, k),
            "oracle (segment's top items)": hit_and_ndcg(oracle, targets, k)}


def train_and_save(recipe_cls, data: PreparedData, out: Path, epochs: int, seed: int, batch_size: int = 64,
                   **hyperparameters) -> tuple[Path, float]:
    """The recipe trained on `data` for `epochs` and saved; (its solution version, warm test NDCG@10)."""
    pl.seed_everything(seed, workers=True)
    recipe = recipe_cls.from_data(data.describe(), **hyperparameters)
    recipe.count_statistics(data.split)
    dm = InteractionsDataModule(data, recipe.loader_needs(), batch_size=batch_size)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
                         limit_val_batches=0)
    trainer.fit(recipe, datamodule=dm)
    warm = trainer.test(recipe, datamodule=dm, verbose=False)[0]["test/ndcg_at_10"]
    return save_solution_version(out, trainer, recipe, data, {}), float(warm)


def cold_metrics(solution: Path, cold_first: pd.DataFrame, k: int = 10) -> tuple[float, float]:
    """HitRate@k / NDCG@k of the cold users' first events, each user scored through `Predictor.recommend`."""
    predictor = Predictor(load_solution_version(solution))
    users = cold_first[C.USER_ID].tolist()
    lists = [[r.item_id for r in row] for row in predictor.recommend(users, k)]
    return hit_and_ndcg(lists, cold_first[C.ITEM_ID].tolist(), k)


WARM_DATA = {"demo": {}, "demo_sparse": {"n_users": 2000, "events_per_user": (4, 12)}}


def warm_comparison(names: list[str], seeds: list[int], epochs: int) -> None:
    """User-Personalization's test NDCG@10 with and without `use_user_metadata` on demo data, paired by seed."""
    print("| data | seed | use_user_metadata=true | use_user_metadata=false | change |\n|---|---|---|---|---|")
    for name in names:
        changes = []
        for seed in seeds:
            data = PreparedData(demo_dataset_group(seed=seed, **WARM_DATA[name]), split="leave_one_out", seed=seed)
            ndcg = {}
            for use in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    _, ndcg[use] = train_and_save(UserPersonalization, data, Path(tmp) / "s", epochs, seed,
                                                  use_user_metadata=use)
            changes.append(ndcg[True] / ndcg[False] - 1)
            print(f"| {name} | {seed} | {ndcg[True]:.4f} | {ndcg[False]:.4f} | {changes[-1]:+.1%} |", flush=True)
        print(f"| {name} | mean | | | {np.mean(changes):+.1%} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--warm", nargs="+", choices=list(WARM_DATA), help="compare known users' NDCG@10 instead")
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.warm:
        return warm_comparison(args.warm, args.seeds, args.epochs)
    rows = {}
    for seed in args.seeds:
        group, cold = planted_cold_users(n_users=args.users, seed=seed)
        cold_first = first_events(cold)
        data = PreparedData(group, split="leave_one_out", seed=seed)
        for name, value in baselines(group, cold_first).items():
            rows.setdefault((name, ""), []).append((*value, float("nan")))
        for recipe in args.recipes:
            for use in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    solution, warm = train_and_save(RECIPES[recipe], data, Path(tmp) / "s", args.epochs, seed,
                                                    hidden_dimension=args.dim, use_user_metadata=use)
                    hit, ndcg = cold_metrics(solution, cold_first)
                rows.setdefault((recipe, f"use_user_metadata={str(use).lower()}"), []).append((hit, ndcg, warm))
                print(f"seed {seed} {recipe} use_user_metadata={use}: cold HR@10 {hit:.4f} NDCG@10 {ndcg:.4f}, "
                      f"warm test NDCG@10 {warm:.4f}", flush=True)
    print(f"\n{args.users} users (20% cold), {args.epochs} epochs, hidden_dimension {args.dim}, seeds {args.seeds}\n")
    print("| model | setting | cold HR@10 | cold NDCG@10 | cold NDCG@10 per seed | warm test NDCG@10 per seed |")
    print("|---|---|---|---|---|---|")
    for (name, setting), values in rows.items():
        v = np.array(values)
        warm = " / ".join(f"{w:.4f}" for w in v[:, 2]) if not np.isnan(v[:, 2]).all() else ""
        print(f"| {name} | {setting} | {v[:, 0].mean():.4f} | {v[:, 1].mean():.4f} | "
              f"{' / '.join(f'{x:.4f}' for x in v[:, 1])} | {warm} |")


if __name__ == "__main__":
    main()
