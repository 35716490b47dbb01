"""Popularity-Count (aws-popularity-count): items ranked by how many distinct users interacted with them.

The score of an item is the share of training users who interacted with it; every user gets the
same ranking (minus the items they already have). Ties are served, and evaluated, by item index.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.split import Split
from personalize_torch.recipes.base import Recipe


class PopularityCount(Recipe):
    recipe_name = "popularity_count"
    count_based = True
    fitted_by_counting = True   # count_statistics is the whole fit: no pass over training batches

    def __init__(self, n_items: int):
        super().__init__(n_items)
        self.save_hyperparameters()
        self.register_buffer("user_counts", torch.zeros(n_items))  # distinct users per item
        self.register_buffer("n_users", torch.zeros(()))

    def count_statistics(self, split: Split) -> None:
        """Distinct training users per item: one unique over (user, item) keys and one bincount."""
        train = split.train
        owner = np.repeat(np.arange(len(train), dtype=np.int64), train.lengths)
        pairs = np.unique(owner * self.n_items + train.item_idx)
        counts = np.bincount(pairs % self.n_items, minlength=self.n_items)[:self.n_items]
        counts[0] = 0   # padding
        self.user_counts.copy_(torch.from_numpy(counts.astype(np.float32)))
        self.n_users.fill_(len(train))

    def accumulate(self, batch: SequenceBatch) -> None:
        pass   # counted in count_statistics

    def score(self, inputs: SequenceBatch) -> Tensor:
        share = self.user_counts / self.n_users.clamp(min=1)
        return share.expand(inputs.items.shape[0], -1)
