"""Reading only the rows of an item table that a training step needs, with gradients on those rows only.

With a sampled softmax a step reads a few thousand items (the batch's events and the sampled negatives) of
a catalogue that may hold millions. Indexing the whole table (`table[items]`) gives a dense gradient as
large as the table, which autograd zero-fills, Adam then sweeps (moments, weight decay) and the next step
frees: at 1M items that was over 90% of a step (bench/item_table_scale.py). Here:

- `BatchRows.of(negatives, *items)`: the sorted distinct item indices a step reads (padding, index 0,
  always first), `local(items)` the same items as rows of the gathered table, `negatives` likewise;
- `gather_rows(weight, ids)`: `weight[ids]` for an (n,) or (n, C) parameter, whose gradient is a sparse
  tensor over the rows `ids` (as `nn.Embedding(sparse=True)` gives, for any parameter), so an optimizer
  that updates rows (recipes/optimizer.py) never touches the others.

Plain torch, no Lightning: a notebook can use it with any model that takes an item table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BatchRows:
    ids: Tensor         # (U,) sorted distinct item indices the step reads; ids[0] == 0 (padding)
    negatives: Tensor   # (K,) the sampled negatives, as rows of `ids` (positions in it)

    @classmethod
    def of(cls, negatives: Tensor, *items: Tensor) -> BatchRows:
        """The rows of `negatives` (K,) and of every index in `items` (any shapes), padding included."""
        ids = torch.unique(torch.cat([negatives.new_zeros(1), negatives, *(t.flatten() for t in items)]))
        return cls(ids, torch.searchsorted(ids, negatives))

    def local(self, items: Tensor) -> Tensor:
        """`items` (any shape, each in `ids`) as row positions in `ids`; padding (0) stays 0."""
        return torch.searchsorted(self.ids, items)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: Tensor, ids: Tensor, padding_idx: int | None) -> Tensor:
        ctx.save_for_backward(ids)
        ctx.shape, ctx.padding_idx = weight.shape, padding_idx
        return weight.index_select(0, ids)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ids,) = ctx.saved_tensors
        if ctx.padding_idx is not None:   # as nn.Embedding(padding_idx=...): that row gets no gradient
            pad = (ids == ctx.padding_idx).view(-1, *([1] * (grad.dim() - 1)))
            grad = grad.masked_fill(pad, 0.0)
        return torch.sparse_coo_tensor(ids.unsqueeze(0), grad, ctx.shape, check_invariants=False), None, None


def gather_rows(weight: Tensor, ids: Tensor, padding_idx: int | None = None) -> Tensor:
    """`weight[ids]` ((U,) or (U, C)) whose gradient reaches `weight` as a sparse tensor over the rows `ids`
    (row `padding_idx` gets none). `ids` (U,) need not be distinct: repeated rows' gradients add up."""
    return _GatherRows.apply(weight, ids, padding_idx)
