"""Leave-one-out, full-ranking benchmark: each recipe next to Popularity-Count on the same split.

    python bench/benchmark.py --data ml100k beauty [--recipes popularity_count ...] [--override key=value ...]
    python bench/benchmark.py --data ml1m_half --recipes user_personalization --seeds 0 1 2 --override ...

`--data` names presets in configs/data/ (ml100k, ml1m_half, beauty, sports, toys, yelp read
../shared/data). Prints a Markdown table of test HR@10, NDCG@10, MRR@10, the training wall time, the time
of one full-ranking test pass over all test users and the process's peak memory (max RSS so far, so with
several runs in one process it is the largest of them) for each run, and the validation NDCG@10 of the
kept weights (hyperparameters are chosen on that column, never on test); with several `--seeds`, each
candidate recipe runs once per seed and a mean (± standard deviation) row follows. `--json FILE` appends
one JSON line per run (bench/side_by_side.py reads it). "training s" is the recipe's counting of its
statistics plus `trainer.fit` with the validation passes it makes, not loading the data or the final test
pass. bench/RESULTS.md keeps the last results with
the exact commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import tempfile
from pathlib import Path

from personalize_torch.training import compose_config, train

REPO = Path(__file__).resolve().parents[1]
BASELINE = "popularity_count"


def run(data: str, recipe: str, overrides: list[str], workdir: Path) -> dict:
    cfg = compose_config([f"data={data}", f"recipe={recipe}", "logger=none", *overrides,
                          "trainer.enable_progress_bar=false"], output_dir=workdir / f"{data}-{recipe}")
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    return train(cfg)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["ml100k"])
    p.add_argument("--recipes", nargs="+", default=[BASELINE])
    p.add_argument("--override", nargs="*", default=[], help="Hydra overrides for every run, e.g. trainer.max_epochs=50 "
                   "(recipe.* ones are not given to the Popularity-Count baseline)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42], help="one run per seed for each candidate recipe")
    p.add_argument("--json", help="append one JSON line per run to this file")
    args = p.parse_args()
    recipes = [BASELINE] + [r for r in args.recipes if r != BASELINE]
    rows = ["| data | recipe | seed | HR@10 | NDCG@10 | MRR@10 | users | items | training s | test pass s | "
            "peak GB | val NDCG@10 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            for recipe in recipes:
                # recipe.* overrides are the candidates' hyperparameters; the baseline takes none
                overrides = [o for o in args.override if not (recipe == BASELINE and o.startswith("recipe."))]
                results = []
                for seed in ([args.seeds[0]] if recipe == BASELINE else args.seeds):   # the baseline is deterministic
                    r = run(data, recipe, [*overrides, f"seed={seed}"], Path(tmp))
                    m, val = r["metrics"]["test"], r["metrics"]["val"]
                    results.append({**m, "val_ndcg_at_10": val["ndcg_at_10"]})
                    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
                    rows.append(f"| {data} | {recipe} | {seed} | {m['hit_rate_at_10']:.4f} | {m['ndcg_at_10']:.4f} | "
                                f"{m['mrr_at_10']:.4f} | {r['data']['n_users']} | {r['data']['n_items']} | "
                                f"{r['seconds']['fit']:.0f} | {r['seconds']['test']:.1f} | {peak_gb:.2f} | "
                                f"{val['ndcg_at_10']:.4f} |")
                    print(rows[-1], flush=True)
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps({"data": data, "recipe": recipe, "seed": seed,
                                                "hr@10": m["hit_rate_at_10"], "ndcg@10": m["ndcg_at_10"],
                                                "val_ndcg@10": val["ndcg_at_10"],
                                                "training_s": r["seconds"]["fit"], "test_s": r["seconds"]["test"],
                                                "peak_gb": round(peak_gb, 2)}) + "\n")
                if len(results) > 1:
                    def mean(k: str) -> str:
                        values = [m[k] for m in results]
                        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
                    rows.append(f"| {data} | {recipe} | mean of {len(results)} | {mean('hit_rate_at_10')} | "
                                f"{mean('ndcg_at_10')} | {mean('mrr_at_10')} | | | | | | {mean('val_ndcg_at_10')} |")
                    print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
