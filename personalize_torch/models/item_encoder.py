"""Item representations from metadata, so items with few or no interactions still get a vector.

    item vector = id embedding + mean of the item's categorical value embeddings + W @ numeric features
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ItemMetadataEncoder(nn.Module):
    def __init__(self, dim: int, n_values: int, n_numeric: int):
        super().__init__()
        self.values = nn.Embedding(max(n_values, 1), dim, padding_idx=0)
        self.numeric = nn.Linear(n_numeric, dim, bias=False) if n_numeric else None
        nn.init.normal_(self.values.weight, std=0.02)
        if self.numeric is not None:
            # Small, like the id embeddings: Linear's default init made the numeric part of every item
            # vector ~100x larger than the rest, so initial scores were dominated by (standardized) price
            # or creation time and training spent its first epochs undoing that.
            nn.init.normal_(self.numeric.weight, std=0.02)
        with torch.no_grad():
            self.values.weight[0].zero_()

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        """(n_items, dim) from categorical (n_items, S) value indices (0 = none) and numeric (n_items, K)."""
        present = (categorical > 0).unsqueeze(-1).float()                          # (n, S, 1)
        summed = (self.values(categorical) * present).sum(1)                        # (n, dim)
        out = summed / present.sum(1).clamp(min=1.0)
        if self.numeric is not None:
            out = out + self.numeric(numeric)
        return out
