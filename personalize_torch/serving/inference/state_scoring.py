"""User-Personalization's scores for a server: its item table computed once per predictor, not per call.

The recipe contract's `user_state(inputs)` and `score_state(state, inputs)` rebuild User-Personalization's
item table (id embeddings plus the Items metadata encoder, over the whole catalogue) at every call: ~1-2 s
on one core at 1M items, which was most of a request (765 ms p50 on 1M items / 200k users) and of the ~9
minutes a server spent computing every user's state at start (in batches of 256 users: one table each).
A served model never changes, so `CatalogueScorer` computes the table once and passes it to the recipe's
own methods (`table=`): `user_state` and `score_state` give the recipe's scores bit for bit.

Large catalogues: `top_k` gives what the dense path gives (`score_state`, then `mask_scores`, the filter's
mask and `compose_slates`: the same floats, the same items) with fewer passes over the (B, n_items) scores:
the logits go to a buffer reused between requests, the softmax is taken once, excluded items are set to -inf
in place, a filter on Items only (one mask for all rows) is added as 0 / -inf, and the top k come from
`top_k.top_items`. What is left per request is one matmul of the rows' states with the (N, C) item table
(memory-bound: the table is read once per batch of rows, 256 MB at 1M items x 64) and one softmax.

Which recipes: those that declare `scores_state_against_item_table` (the recipe contract, recipes/base.py).
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.recipes.base import Recipe
from personalize_torch.serving.inference.top_k import top_items

CANDIDATE_MIN_ITEMS = 1 << 16   # from this catalogue size the predictor ranks with `top_k`


class CatalogueScorer:
    """User-Personalization's two halves of scoring with its item table computed once (eval mode,
    no gradients). `top_k` ranks large catalogues exactly without the dense path's copies."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        with torch.no_grad():
            self.table = recipe.item_embeddings().detach().contiguous()              # (N, C)
            self.bias = recipe.score_bias().detach().float().contiguous()             # (N,)
            counts = recipe.item_counts.float()
            self.popular = counts / counts.sum().clamp(min=1)                         # (N,) the fallback
        self._local = threading.local()                                               # see _probabilities

    @property
    def n_items(self) -> int:
        return self.table.shape[0]

    def user_state(self, inputs: SequenceBatch) -> Tensor:
        """(B, C) `recipe.user_state(inputs)`."""
        with torch.no_grad():
            return self.recipe.user_state(inputs, self.table)

    def score_state(self, state: Tensor, inputs: SequenceBatch) -> Tensor:
        """(B, N) `recipe.score_state(state, inputs)`: softmax scores of every item."""
        with torch.no_grad():
            return self.recipe.score_state(state, inputs, self.table)

    def query(self, state: Tensor, inputs: SequenceBatch) -> Tensor:
        """(B, C) the vector `score_state` multiplies the item table with: the state plus the embedding of
        the context of the event being predicted (the request's, else the user's latest)."""
        next_context, context = inputs.next_context, inputs.context
        if next_context is None and context is not None and inputs.items.shape[1]:
            next_context = context[:, -1]
        if next_context is not None and len(self.recipe.next_context_embeddings):
            state = state + self.recipe.next_context_embeddings(next_context)
        return state

    def top_k(self, state: Tensor, inputs: SequenceBatch, k: int, exclude: Tensor | None,
              allowed: Tensor | None) -> tuple[Tensor, Tensor]:
        """(B, k) item indices, best first, and their scores (softmax probabilities; for rows without a
        history the popularity fallback's, as `score_state`); -inf scores where a row has fewer than k items
        left. `exclude` (B, E) item indices to leave out (0 = none), `allowed` (B, N) bool or None."""
        B = state.shape[0]
        top = torch.zeros(B, k, dtype=torch.long, device=state.device)
        values = torch.full((B, k), -math.inf, device=state.device)
        with torch.no_grad():
            has_history = (inputs.items > 0).any(1).to(state.device)
            rows = torch.nonzero(has_history).view(-1)
            if len(rows):
                scores = self._probabilities(self.query(state, inputs)[rows].float())
                self._rank_into(top, values, rows, scores, k, exclude, allowed)
            rows = torch.nonzero(~has_history).view(-1)
            if len(rows):
                self._rank_into(top, values, rows, self.popular.expand(len(rows), -1).clone(), k, exclude, allowed)
        return top, values

    @staticmethod
    def _rank_into(top: Tensor, values: Tensor, rows: Tensor, scores: Tensor, k: int, exclude: Tensor | None,
                   allowed: Tensor | None) -> None:
        """The top k of `scores` (len(rows), N), changed in place: `exclude`, `allowed` and padding left out,
        into `rows` of `top` / `values`."""
        if exclude is not None and exclude.numel():
            scores.scatter_(1, exclude[rows], -math.inf)
        scores[:, 0] = -math.inf
        if allowed is not None and allowed.stride(0) == 0:
            # one mask for every row (a filter on Items only): added as 0 / -inf, one pass without a
            # (B, N) copy of the mask
            scores.add_(torch.zeros(allowed.shape[1], device=scores.device).masked_fill_(~allowed[0], -math.inf))
        elif allowed is not None:
            # in place; 2-3x faster than slate.mask_out's integer masks on (8, 1M) scores (torch 2.13, one core)
            scores.masked_fill_(~allowed[rows], -math.inf)
        chosen = top_items(scores, k)
        top[rows, :chosen.shape[1]] = chosen
        values[rows, :chosen.shape[1]] = scores.gather(1, chosen)

    def _probabilities(self, query: Tensor) -> Tensor:
        """(B, N) the softmax as `score_state` computes it (the same operations, the same floats). The logits
        go to a buffer kept per thread, grown to the largest batch seen: a fresh (8, 1M) float32 tensor is a
        new 32 MB mapping whose pages fault in at every request."""
        B = query.shape[0]
        buffer = getattr(self._local, "logits", None)
        if buffer is None or buffer.shape[0] < B or buffer.device != query.device:
            buffer = self._local.logits = torch.empty(B, self.n_items, device=query.device)
        logits = buffer[:B]
        torch.mm(query, self.table.T, out=logits).add_(self.bias)   # = item_scores(query, table) + bias
        logits[:, 0] = -math.inf
        return torch.softmax(logits, dim=1)


def catalogue_scorer(recipe: Recipe) -> CatalogueScorer | None:
    """The scorer of recipes whose state scores are a softmax over state . item table + bias; None for
    the others (they are scored through the recipe contract as they are)."""
    return CatalogueScorer(recipe) if recipe.scores_state_against_item_table else None
