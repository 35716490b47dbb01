"""One torchmetrics Metric that accumulates every ranking metric over evaluation batches."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from personalize_torch.metrics import functional as R

# Our metric names -> Amazon Personalize's names in its solution-version metrics.
PERSONALIZE_NAMES = {
    "coverage": "coverage",
    "mrr_at_25": "mean_reciprocal_rank_at_25",
    "ndcg_at_5": "normalized_discounted_cumulative_gain_at_5",
    "ndcg_at_10": "normalized_discounted_cumulative_gain_at_10",
    "ndcg_at_25": "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5": "precision_at_5",
    "precision_at_10": "precision_at_10",
    "precision_at_25": "precision_at_25",
    # USER_SEGMENTATION recipes (metrics/user_segments.py)
    "hits_at_1_percent": "hits_at_1_percent",
    "recall_at_1_percent": "recall_at_1_percent",
}


def personalize_report(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics Personalize reports for a solution version, under its names."""
    return {PERSONALIZE_NAMES[k]: v for k, v in metrics.items() if k in PERSONALIZE_NAMES}


class RankingMetrics(Metric):
    """Means over users of NDCG / precision / recall / hit rate at each k, MRR@25 and MRR, plus coverage.

    `update(scores, targets)` takes scores already masked with `ranking.mask_scores` (B, N) and the
    targets (B, M, 0 = padding). Coverage is the share of the catalogue in the top `max(ks)` lists.
    """

    full_state_update = False

    def __init__(self, n_items: int, ks: tuple[int, ...] = (5, 10, 25)):
        super().__init__()
        self.ks = tuple(ks)
        self.n_items = n_items
        self.names = [f"{m}_at_{k}" for k in self.ks for m in ("ndcg", "precision", "recall", "hit_rate")]
        self.names += ["mrr_at_10", "mrr_at_25", "mrr"]
        self.add_state("sums", default=torch.zeros(len(self.names), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("users", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("covered", default=torch.zeros(n_items, dtype=torch.bool), dist_reduce_fx="max")

    def update(self, scores: Tensor, targets: Tensor) -> None:
        ranks = R.target_ranks(scores, targets)
        n_targets = (targets > 0).sum(1)
        values = []
        for k in self.ks:
            values += [R.ndcg_at_k(ranks, n_targets, k), R.precision_at_k(ranks, k),
                       R.recall_at_k(ranks, n_targets, k), R.hit_rate_at_k(ranks, k)]
        values += [R.mrr_at_k(ranks, 10), R.mrr_at_k(ranks, 25), R.mrr_at_k(ranks)]
        self.sums += torch.stack([v.double().sum() for v in values])
        self.users += scores.shape[0]
        top = R.ranked_items(scores, max(self.ks))
        top = top[torch.isfinite(scores.gather(1, top))]
        self.covered[top] = True

    def compute(self) -> dict[str, Tensor]:
        means = self.sums / self.users.clamp(min=1)
        out = {name: means[i].float() for i, name in enumerate(self.names)}
        out["coverage"] = self.covered[1:].float().mean()
        return out
