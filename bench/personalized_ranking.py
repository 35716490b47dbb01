"""Personalized-Ranking: re-rank candidate lists that hide each user's true next item.

    python bench/personalized_ranking.py [--data ml100k] [--epochs 15] [--popular 25] [--random 25] [--seed 0]
                                         [--override key=value ...]

Trains `personalized_ranking` through `training.train` (the train.py path, leave-one-out split), then,
for every test user, builds a candidate list: the held-out next item (the test target) + the `--popular`
most popular training items + `--random` random items (none repeated, none the target), shuffled. The
list is ranked with `Predictor.rank` from the user's history before the target (the test inputs; the
solution version's stored histories include the test event, so they are swapped for the test inputs),
and compared with (b) the shuffled input order and (c) popularity order (training interaction counts).
Reported per ordering: NDCG@10, NDCG over the whole list, HR@10 and MRR of the target.
bench/RESULTS.md keeps the last results with the exact command.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import compose_config, prepare_data, train

REPO = Path(__file__).resolve().parents[1]


def train_config(data: str, epochs: int, overrides: list[str], out: Path):
    cfg = compose_config([f"data={data}", "recipe=personalized_ranking", "logger=none", "data.split=leave_one_out",
                          f"trainer.max_epochs={epochs}", *overrides, "trainer.enable_progress_bar=false"],
                         output_dir=out)
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    return cfg


def candidate_lists(targets: np.ndarray, popularity: np.ndarray, n_popular: int, n_random: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(U, 1 + n_popular + n_random) item indices per user: target, popular, random; each row shuffled."""
    n_items = len(popularity)
    by_pop = np.argsort(-popularity[1:], kind="stable") + 1                       # item indices, most popular first
    rows = []
    for t in targets:
        popular = by_pop[by_pop != t][:n_popular]
        pool = np.setdiff1d(np.arange(1, n_items), np.concatenate([[t], popular]))
        rows.append(rng.permutation(np.concatenate([[t], popular, rng.choice(pool, n_random, replace=False)])))
    return np.asarray(rows, dtype=np.int64)


def target_metrics(ranks: np.ndarray) -> dict[str, float]:
    """NDCG@10, NDCG over the list, HR@10 and MRR of one target per list at 1-based `ranks`."""
    gain = 1.0 / np.log2(ranks + 1.0)
    return {"ndcg_at_10": float(np.mean(np.where(ranks <= 10, gain, 0.0))), "ndcg": float(np.mean(gain)),
            "hit_rate_at_10": float(np.mean(ranks <= 10)), "mrr": float(np.mean(1.0 / ranks))}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ml100k")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--popular", type=int, default=25)
    p.add_argument("--random", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the bench machine is shared)")
    p.add_argument("--override", nargs="*", default=[], help="Hydra overrides, e.g. recipe.hidden_dimension=32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = train_config(args.data, args.epochs, args.override, Path(tmp) / "solution")
        start = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - start
        predictor = Predictor.from_dir(result["solution"])
        data = prepare_data(cfg)   # what `train` prepared (same data, event selection, split and seed)
        if (data.fingerprint != result["data"]["fingerprint"]
                or list(data.item_vocab.ids) != list(predictor.solution.item_vocab.ids)):
            raise RuntimeError("the rebuilt split's data or item vocabulary differs from the solution's")
        test = data.split.test
        # Rank from the histories before the test targets (the stored histories include them).
        predictor = Predictor(dataclasses.replace(predictor.solution, histories=test.history))
        targets = np.array([test.targets_of(r)[0] for r in range(len(test))], dtype=np.int64)
        users = data.user_vocab.to_id(test.history.user_idx)
        popularity = np.bincount(data.split.train.item_idx, minlength=data.n_items).astype(float)
        lists = candidate_lists(targets, popularity, args.popular, args.random, np.random.default_rng(args.seed))
        vocab = predictor.solution.item_vocab
        ranked = predictor.rank(list(users), [list(vocab.to_id(row)) for row in lists])
        target_ids = vocab.to_id(targets)
        model_ranks = np.array([[r.item_id for r in items].index(t) + 1 for items, t in zip(ranked, target_ids)])
        input_ranks = np.array([list(row).index(t) + 1 for row, t in zip(lists, targets)])
        pop_order = np.argsort(-popularity[lists], axis=1, kind="stable")
        pop_ranks = np.array([list(row[order]).index(t) + 1 for row, order, t in zip(lists, pop_order, targets)])

    val = result["metrics"]["val"]
    full = result["metrics"].get("test", {})
    L = lists.shape[1]
    print(f"\n{args.data}: {len(users)} test users, lists of {L} items (target + {args.popular} popular + "
          f"{args.random} random, shuffled); training {seconds:.0f} s; catalogue test NDCG@10 "
          f"{full.get('ndcg_at_10', math.nan):.4f} (val {val['ndcg_at_10']:.4f})\n")
    print("| ordering | NDCG@10 | NDCG (list) | HR@10 | MRR |")
    print("|---|---|---|---|---|")
    for name, ranks in [("personalized_ranking (Predictor.rank)", model_ranks), ("input order (shuffled)", input_ranks),
                        ("popularity order", pop_ranks)]:
        m = target_metrics(ranks.astype(float))
        print(f"| {name} | {m['ndcg_at_10']:.4f} | {m['ndcg']:.4f} | {m['hit_rate_at_10']:.4f} | {m['mrr']:.4f} |")


if __name__ == "__main__":
    main()
