"""Item-Affinity on Personalize's user-segmentation split: hits and recall at the top 1% of users.

    python bench/user_segments.py [--data ml100k] [--epochs 15] [--override key=value ...]

Trains `item_affinity` (each user's newest 20% of events held out) and reports, for the items users go on
to choose, the mean hits and recall of the item's top-1% user segment (metrics/user_segments.py) next to:
- random segments of the same size (expected recall = segment size / users),
- the most active users (ranked by how many events they have, leaving out those who have the item),
both computed on the same split with the same metric code.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from personalize_torch.data.batching import EvalCollate
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.metrics.user_segments import UserSegmentMetrics
from personalize_torch.training import compose_config, prepare_data, train

REPO = Path(__file__).resolve().parents[1]


def config(data: str, overrides: list[str], out: Path):
    cfg = compose_config([f"data={data}", "recipe=item_affinity", "logger=none", "data.split=user_segmentation",
                          *overrides, "trainer.enable_progress_bar=false"], output_dir=out)
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    return cfg


def most_active_users(cfg) -> dict[str, float]:
    """The same metric with every user scored by the number of their input events (for every item), on
    the data `train` prepared (same data, event selection and split)."""
    data = prepare_data(cfg)
    val = data.split.val
    metrics = UserSegmentMetrics(data.n_items)
    metrics.reset(len(val))
    collate = EvalCollate(val, None)
    for start in range(0, len(val), 512):
        batch = collate(list(range(start, min(start + 512, len(val)))))
        activity = (batch.inputs.items > 0).sum(1, keepdim=True).float().expand(-1, data.n_items)
        metrics.update(mask_scores(activity, batch.exclude), batch.inputs.user_idx, batch.targets)
    return metrics.compute()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ml100k")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--override", nargs="*", default=[])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(args.data, [f"trainer.max_epochs={args.epochs}", *args.override], Path(tmp) / "solution")
        start = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - start
        active = most_active_users(cfg)
    m = result["metrics"]["val"]
    rows = ["| data | segments from | hits@1% | recall@1% | x random | seconds |", "|---|---|---|---|---|---|",
            f"| {args.data} | item_affinity | {m['hits_at_1_percent']:.3f} | {m['recall_at_1_percent']:.4f} | "
            f"{m['recall_at_1_percent'] / m['random_recall_at_1_percent']:.1f} | {seconds:.0f} |",
            f"| {args.data} | most active users | {active['hits_at_1_percent']:.3f} | "
            f"{active['recall_at_1_percent']:.4f} | "
            f"{active['recall_at_1_percent'] / active['random_recall_at_1_percent']:.1f} | |",
            f"| {args.data} | random users (expected) | | {m['random_recall_at_1_percent']:.4f} | 1.0 | |"]
    print("\n".join(rows))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
