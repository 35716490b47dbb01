"""What training checkpoints cost (resume.py: the state a killed run resumes from).

    python bench/checkpoint_cost.py train experiment=ml1m_half_user_personalization trainer.max_time=00:00:03:00
    python bench/checkpoint_cost.py write --items 10000 100000 1000000 [--dim 64]

`train <overrides>`: one training run through training.train with the default checkpoint settings (unless the
overrides change them); prints the training seconds, the checkpoints written, the seconds spent writing them,
that share of training, and the size of the last checkpoint.

`write`: one checkpoint write (torch.save to a temporary file, fsync, rename over the last) of a
User-Personalization with `--items` items of `--dim` dimensions: its weights, AdamW's two moments and the best
epoch's copy of the weights (RestoreBestWeights), which is what a checkpoint holds; seconds and size per item count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def train_run(overrides: list[str]) -> None:
    from personalize_torch.training import compose_config, train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*overrides, "checkpoints.keep=true", "trainer.enable_progress_bar=false"],
                             output_dir=Path(tmp) / "solution")
        result = train(cfg)
        t = result["training"]
        size = (Path(tmp) / "solution.checkpoints" / "last.ckpt").stat().st_size
        print(f"training {t['seconds']:.1f} s, {t['checkpoints_written']} checkpoints written in "
              f"{t['checkpoint_seconds']:.2f} s ({100 * t['checkpoint_seconds'] / max(t['seconds'], 1e-9):.2f}% of "
              f"training), last checkpoint {size / 2**20:.1f} MiB; test NDCG@10 "
              f"{result['metrics'].get('test', result['metrics']['val'])['ndcg_at_10']:.4f}")


def write_cost(items: list[int], dim: int) -> None:
    from personalize_torch.recipes.user_personalization import UserPersonalization

    for n in items:
        recipe = UserPersonalization(n_items=n + 1, hidden_dimension=dim, bptt=50)
        weights = recipe.state_dict()
        moments = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in weights.items() if v.is_floating_point()}
        best = {k: v.clone() for k, v in weights.items()}
        state = {"state_dict": weights, "optimizer_states": [moments], "callbacks": {"RestoreBestWeights": best}}
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            path, tmp_path = Path(tmp) / "last.ckpt", Path(tmp) / ".last.ckpt.tmp"
            times = []
            for _ in range(3):
                start = time.perf_counter()
                torch.save(state, tmp_path)
                with open(tmp_path, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp_path, path)
                times.append(time.perf_counter() - start)
            size = path.stat().st_size
        print(f"{n:>9} items x {dim}: {size / 2**20:8.1f} MiB, write {min(times):.2f} s (best of 3)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("overrides", nargs="*")
    w = sub.add_parser("write")
    w.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    w.add_argument("--dim", type=int, default=64)
    args = p.parse_args()
    if args.what == "train":
        train_run(args.overrides)
    else:
        write_cost(args.items, args.dim)


if __name__ == "__main__":
    main()
