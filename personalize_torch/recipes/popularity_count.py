"""Popularity-Count (aws-popularity-count): items ranked by how many distinct users interacted with them.

The score of an item is the share of training users who interacted with it; every user gets the
same ranking (minus the items they already have). Ties are served, and evaluated, by item index.
"""

from __future__ import annotations

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.recipes.base import Recipe


class PopularityCount(Recipe):
    recipe_name = "popularity_count"
    count_based = True

    def __init__(self, n_items: int):
        super().__init__(n_items)
        self.save_hyperparameters()
        self.register_buffer("user_counts", torch.zeros(n_items))  # distinct users per item
        self.register_buffer("n_users", torch.zeros(()))

    def on_train_epoch_start(self) -> None:
        self.user_counts.zero_()
        self.n_users.zero_()

    def accumulate(self, batch: SequenceBatch) -> None:
        B = batch.items.shape[0]
        seen = torch.zeros(B, self.n_items, dtype=torch.bool, device=batch.items.device)
        seen.scatter_(1, batch.items, True)
        seen[:, 0] = False  # padding
        self.user_counts += seen.sum(0)
        self.n_users += B

    def score(self, inputs: SequenceBatch) -> Tensor:
        share = self.user_counts / self.n_users.clamp(min=1)
        return share.expand(inputs.items.shape[0], -1)
