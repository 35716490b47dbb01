"""Metrics of user segments (Item-Affinity, Item-Attribute-Affinity): who is most likely to want an item.

Personalize evaluates USER_SEGMENTATION recipes on a per-user split (each user's oldest 80% of events in,
newest 20% held out) with "hits at 1%" and "recall at 1%". Our reading, documented here because
Personalize publishes only the names: for each item that some user interacts with in the held-out part,

    segment(i)  = the top 1% of evaluated users (at least one) ranked by the model's P(i | user)
    hits(i)     = how many users of segment(i) interact with i in their held-out events
    recall(i)   = hits(i) / how many users interact with i in their held-out events

and `hits_at_1_percent` / `recall_at_1_percent` are the means over those items. Users who already have the
item in their input events are not ranked for it. `random_recall_at_1_percent` is what a random segment of
the same size would score in expectation (its size over the number of users), the baseline to beat.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def merge_top_k(top_scores: Tensor, top_ids: Tensor, scores: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best rows per column of two blocks: a running top-k (K, Q) with its row ids, and a new block
    of scores (B, Q) whose rows have ids (B,). Returns the new (k, Q) scores and ids, best first."""
    both = torch.cat([top_scores, scores], 0)
    both_ids = torch.cat([top_ids, ids.view(-1, 1).expand(-1, scores.shape[1]).to(top_ids)], 0)
    vals, pos = torch.topk(both, min(k, both.shape[0]), dim=0)
    return vals, both_ids.gather(0, pos)


class UserSegmentMetrics:
    """Accumulates, over evaluation batches, each item's running top segment of users and the held-out
    (user, item) pairs. Plain tensors (not a torchmetrics state): the segment size depends on how many
    users are evaluated, set with `reset(n_users)` before an evaluation pass."""

    def __init__(self, n_items: int, fraction: float = 0.01):
        self.n_items = n_items
        self.fraction = fraction
        self.reset(0)

    def reset(self, n_users: int) -> None:
        self.n_users = n_users
        self.size = max(1, math.ceil(self.fraction * n_users))
        self.top_scores = torch.full((0, self.n_items), -math.inf)
        self.top_users = torch.zeros((0, self.n_items), dtype=torch.long)
        self.target_keys: list[Tensor] = []
        self.seen_users = 0

    def update(self, scores: Tensor, user_idx: Tensor, targets: Tensor) -> None:
        """`scores` (B, N): P(item | user), already masked (-inf for items the user has); `targets` (B, M)."""
        scores, user_idx, targets = scores.detach().float().cpu(), user_idx.cpu(), targets.cpu()
        self.top_scores, self.top_users = merge_top_k(self.top_scores, self.top_users, scores, user_idx, self.size)
        present = targets > 0
        users = user_idx.view(-1, 1).expand_as(targets)[present]
        self.target_keys.append(users * self.n_items + targets[present])
        self.seen_users += len(user_idx)

    def compute(self) -> dict[str, float]:
        if not self.target_keys:
            return {"hits_at_1_percent": 0.0, "recall_at_1_percent": 0.0, "random_recall_at_1_percent": 0.0}
        keys = torch.unique(torch.cat(self.target_keys))
        items = keys % self.n_items
        chosen = torch.isfinite(self.top_scores)
        segment_keys = (self.top_users * self.n_items + torch.arange(self.n_items).view(1, -1))[chosen]
        hit = torch.isin(keys, segment_keys)
        per_item_targets = torch.bincount(items, minlength=self.n_items).double()
        per_item_hits = torch.bincount(items[hit], minlength=self.n_items).double()
        evaluated = per_item_targets > 0
        n_users = max(self.n_users, self.seen_users, 1)
        return {
            "hits_at_1_percent": float(per_item_hits[evaluated].mean()),
            "recall_at_1_percent": float((per_item_hits[evaluated] / per_item_targets[evaluated]).mean()),
            "random_recall_at_1_percent": min(1.0, self.size / n_users),
        }
