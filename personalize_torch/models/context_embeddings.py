"""Embeddings of contextual interaction fields (DEVICE, LOCATION, ...): one table per field, summed.

Tables start small (std `CONTEXT_INIT_STD`, like the item vectors). nn.Embedding's default N(0, 1) made a
context vector ~20x longer than an item vector in 32 dimensions: the device swamped every input it was
added to (bench/hrnn.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CONTEXT_INIT_STD = 0.02


class ContextEmbeddings(nn.ModuleList):
    """A ModuleList of one nn.Embedding per field (so checkpoints keep the keys `<name>.<field>.weight`)."""

    def __init__(self, cardinalities: list[int] | None, dim: int):
        super().__init__(nn.Embedding(n, dim, padding_idx=0) for n in (cardinalities or []))
        for table in self:
            nn.init.normal_(table.weight, std=CONTEXT_INIT_STD)
            with torch.no_grad():
                table.weight[0].zero_()   # index 0: no value

    def forward(self, context: Tensor | None) -> Tensor | None:
        """Sum of the field embeddings of context indices (..., F): (..., dim); None when there is no
        context or the model has no context fields."""
        if context is None or not len(self):
            return None
        return sum(table(context[..., f]) for f, table in enumerate(self))
