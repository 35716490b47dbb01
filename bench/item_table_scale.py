"""Training throughput with a small vs a 1M-item catalogue: does a step touch every row of the item table?

    python bench/item_table_scale.py [--recipes user_personalization hrnn] [--steps 200] [--warmup 20]
    python bench/item_table_scale.py --group /tmp/personalize-scale/group-10M [--share 0/4]

The same synthetic interactions (numpy, in memory: 2M events of 200k users, items drawn Zipf from the first
10k ids) are trained twice per recipe: with a catalogue of 10k items, and with an Items dataset that lists
1M ids (the interactions unchanged, so 990k items are never seen). Each case runs in its own process (so
its peak RSS is its own) with the recipe's default hyperparameters (configs/recipe/<name>.yaml, as
train.py builds it), batch 64, for `--warmup` + `--steps` optimizer steps, and prints training positions
(predicted events) per second, steps per second and peak RSS, then the 1M / 10k ratio of positions/s.
Above `full_softmax_max_items` the recipes train with the sampled softmax, so a step should cost about
the same at any catalogue size. Run both sizes in one invocation on an otherwise idle machine: only the
ratio is comparable across machines.

With `--group` the data is instead a dataset group directory (e.g. one `bench/scale_data.py` imported from the
scale generator's CSVs), or one share of its users (`--share r/w`, what a process reads under torchrun), and
each recipe is measured once on it: the training throughput and peak memory at that size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def synthetic_group(catalogue: int, n_events: int, n_users: int, active_items: int, seed: int = 0):
    """A DatasetGroup: `n_events` interactions of `n_users` users over items drawn Zipf(1) from the first
    `active_items` ids, and an Items dataset listing `catalogue` ids (at least `active_items`)."""
    from personalize_torch.data import constants as C
    from personalize_torch.data.dataset_group import DatasetGroup

    rng = np.random.default_rng(seed)
    users = np.sort(rng.integers(n_users, size=n_events))
    weights = 1.0 / np.arange(1, active_items + 1)
    items = rng.choice(active_items, size=n_events, p=weights / weights.sum())
    times = 1_700_000_000 + np.arange(n_events) % 100_000 * 60           # increasing within a user
    interactions = pd.DataFrame({C.USER_ID: pd.Series(np.char.add("u", users.astype(str)), dtype="string"),
                                 C.ITEM_ID: pd.Series(np.char.add("i", items.astype(str)), dtype="string"),
                                 C.TIMESTAMP: times.astype(np.int64)})
    catalogue_df = None
    if catalogue >= active_items:
        catalogue_df = pd.DataFrame({C.ITEM_ID: pd.Series(np.char.add("i", np.arange(catalogue).astype(str)),
                                                          dtype="string")})
    return DatasetGroup(interactions, catalogue_df, name=f"scale_{catalogue}")


def measure(recipe_name: str, catalogue: int, args) -> dict:
    """Train `recipe_name` on the synthetic data with `catalogue` items; the throughput after warm-up."""
    import pytorch_lightning as pl
    import torch

    from personalize_torch import training
    from personalize_torch.data.datamodule import InteractionsDataModule
    from personalize_torch.data.prepared import PreparedData

    torch.set_num_threads(args.threads)
    pl.seed_everything(0)
    t = time.perf_counter()
    cfg = training.compose_config([f"recipe={recipe_name}"])
    if args.group:
        from personalize_torch.data.import_jobs import load_group_directory

        share = tuple(int(x) for x in args.share.split("/")) if args.share else None
        group = load_group_directory(args.group, share=share)
    else:
        group = synthetic_group(catalogue, args.events, args.users, args.active_items)
    data = PreparedData(group, split=training.recipe_class(cfg.recipe).default_split)
    recipe = training.build_recipe(cfg.recipe, data)
    recipe.count_statistics(data.split)
    dm = InteractionsDataModule(data, recipe.loader_needs(), batch_size=args.batch_size)
    prepare = time.perf_counter() - t

    class Clock(pl.Callback):
        positions = 0
        start = end = 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == args.warmup:
                self.start = time.perf_counter()
            if batch_idx >= args.warmup:
                self.positions += int(((batch.items[:, :-1] > 0) & (batch.items[:, 1:] > 0)).sum())

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.end = time.perf_counter()

    clock = Clock()
    trainer = pl.Trainer(max_steps=args.warmup + args.steps, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", callbacks=[clock])
    trainer.fit(recipe, datamodule=dm)
    seconds = clock.end - clock.start
    return {"recipe": recipe_name, "catalogue": data.n_items - 1, "loss": "full" if recipe.uses_full_softmax
            else "sampled", "positions_per_s": clock.positions / seconds, "steps_per_s": args.steps / seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "prepare_s": prepare,
            "events": len(data.sequences.item_idx)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="*", default=["user_personalization", "hrnn"])
    p.add_argument("--catalogues", nargs="*", type=int, default=[10_000, 1_000_000])
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--active-items", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (1: steady on shared cores)")
    p.add_argument("--group", default=None, help="a dataset group directory instead of the synthetic data")
    p.add_argument("--share", default=None, help="with --group: r/w, one share of its users")
    p.add_argument("--one", nargs=2, metavar=("RECIPE", "CATALOGUE"), help=argparse.SUPPRESS)   # a child process
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args)))
        return
    passed = sys.argv[1:]
    for recipe in args.recipes:
        rows = []
        for catalogue in ([0] if args.group else args.catalogues):
            out = subprocess.run([sys.executable, __file__, *passed, "--one", recipe, str(catalogue)], cwd=REPO,
                                 check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(f"{recipe:22s} items {row['catalogue']:>9,d} ({row['loss']:7s}) "
                  f"{row['positions_per_s']:9.0f} positions/s  {row['steps_per_s']:6.2f} steps/s  "
                  f"peak RSS {row['peak_rss_gb']:.2f} GB  (data {row['prepare_s']:.0f}s, "
                  f"{row['events']:,d} events)", flush=True)
        if len(rows) > 1:
            print(f"{recipe:22s} positions/s at {rows[-1]['catalogue']:,d} / at {rows[0]['catalogue']:,d} items: "
                  f"{rows[-1]['positions_per_s'] / rows[0]['positions_per_s']:.2f}", flush=True)


if __name__ == "__main__":
    main()
