"""Similar-Items on cold items: do their neighbours share the planted genres?

    python bench/similar_items.py [--epochs 10] [--max-interactions 5] [--users 1000 --items 400]

Trains `similar_items` and `sims` on the built-in demo data (items' GENRES and DESCRIPTION words follow
their taste cluster; some items are created late and have few interactions). For every cold item (fewer
than --max-interactions training interactions), takes its top-10 related items (what the server returns
for `itemId`) and reports the share that share a genre with it, next to chance (the share over all
pairs of items) and SIMS (co-interactions only: cold items fall back to popular items).
Also reports leave-one-out HR@10 / NDCG@10 of the next item after each user's last item.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import compose_config, train


def genre_sets(solution) -> dict[str, set[str]]:
    items = solution.items
    return {str(i): set(str(g).split("|")) for i, g in zip(items["ITEM_ID"], items["GENRES"])}


def neighbour_genre_rate(solution_dir: str, max_interactions: int, k: int = 10) -> tuple[float, float, int]:
    """(share of cold items' top-k neighbours sharing a genre, chance share, number of cold items)."""
    predictor = Predictor.from_dir(solution_dir)
    sol = predictor.solution
    genres = genre_sets(sol)
    counts = np.bincount(sol.histories.item_idx, minlength=sol.item_vocab.size_with_padding)
    cold = [str(i) for i in sol.item_vocab.to_id(np.flatnonzero(counts[1:] < max_interactions) + 1)]
    related = predictor.recommend_related(cold, k)
    shared = [len(genres[c] & genres[r.item_id]) > 0 for c, recs in zip(cold, related) for r in recs]
    ids = list(genres)
    chance = np.mean([len(genres[a] & genres[b]) > 0 for a in ids for b in ids if a != b])
    return float(np.mean(shared)) if shared else float("nan"), float(chance), len(cold)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-interactions", type=int, default=5)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=400)
    args = p.parse_args()
    rows = ["| recipe | cold items | neighbours sharing a genre | chance | HR@10 | NDCG@10 | seconds |",
            "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in ("similar_items", "sims"):
            cfg = compose_config([f"recipe={recipe}", "logger=none", "data.split=leave_one_out",
                                  f"trainer.max_epochs={args.epochs}", f"data.demo.n_users={args.users}",
                                  f"data.demo.n_items={args.items}", "trainer.enable_progress_bar=false"],
                                 output_dir=Path(tmp) / recipe)
            start = time.perf_counter()
            result = train(cfg)
            seconds = time.perf_counter() - start
            rate, chance, n_cold = neighbour_genre_rate(result["solution"], args.max_interactions)
            m = result["metrics"]["test"]
            rows.append(f"| {recipe} | {n_cold} | {rate:.3f} | {chance:.3f} | {m['hit_rate_at_10']:.4f} | "
                        f"{m['ndcg_at_10']:.4f} | {seconds:.0f} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
