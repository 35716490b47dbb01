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

On a CPU that multiplies bfloat16 natively (`first_pass="auto"`, or always with `first_pass="bfloat16"`),
`top_k` scoring two rows or more (concurrent requests batched together; one row alone costs the same either
way) first scores every item with the table rounded to bfloat16 (inference/rounded_table.py: several
times faster than float32, within a computed bound of the exact logits), keeps the items within twice that
bound of each row's k-th approximate logit (`top_k.items_near_top`: every item that can be in the exact top
k), and ranks those by their exact float32 logits: the same items in the same order as the float32 path.
Their scores are exp(exact logit) over the softmax's normaliser, whose terms are the exact ones for those
items and the approximate ones for the rest of the catalogue.

Which recipes: those that declare `scores_state_against_item_table` (the recipe contract, recipes/base.py).
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.metrics.functional import ranked_items
from personalize_torch.recipes.base import Recipe
from personalize_torch.serving.inference.rounded_table import RoundedItemTable, packed_bfloat16_available
from personalize_torch.serving.inference.top_k import items_near_top, top_items

CANDIDATE_MIN_ITEMS = 1 << 16   # from this catalogue size the predictor ranks with `top_k`
FIRST_PASSES = ("auto", "bfloat16", "float32")
ROUNDED_MIN_ROWS = 2            # one row alone: the float32 pass costs as much as the first pass (bench/RESULTS.md)
ROUNDED_ROWS = 64               # rows per first pass: 128 MB of bfloat16 scores at 1M items


class CatalogueScorer:
    """User-Personalization's two halves of scoring with its item table computed once (eval mode,
    no gradients). `top_k` ranks large catalogues exactly without the dense path's copies."""

    def __init__(self, recipe: Recipe, first_pass: str = "auto"):
        self.recipe = recipe
        with torch.no_grad():
            self.table = recipe.item_embeddings().detach().contiguous()              # (N, C)
            self.bias = recipe.score_bias().detach().float().contiguous()             # (N,)
            counts = recipe.item_counts.float()
            self.popular = counts / counts.sum().clamp(min=1)                         # (N,) the fallback
        self._local = threading.local()                                               # see _probabilities
        self.rounded = rounded_item_table(self.table, self.bias, first_pass)          # None: float32 only

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
        """(B, k) item indices, best first, and their scores (softmax probabilities; for rows the model does not
        score, `recipe.scored_rows`, the popularity fallback's, as `score_state`); -inf scores where a row has
        fewer than k items left. `exclude` (B, E) item indices to leave out (0 = none), `allowed` (B, N) bool or
        None."""
        B = state.shape[0]
        top = torch.zeros(B, k, dtype=torch.long, device=state.device)
        values = torch.full((B, k), -math.inf, device=state.device)
        with torch.no_grad():
            has_history = self.recipe.scored_rows(inputs).to(state.device)   # events, or Users metadata read
            rows = torch.nonzero(has_history).view(-1)
            if len(rows) >= ROUNDED_MIN_ROWS and self.rounded is not None:
                query = self.query(state, inputs)[rows].float()
                for start in range(0, len(rows), ROUNDED_ROWS):   # bounded buffers for batch jobs' many rows
                    part = slice(start, start + ROUNDED_ROWS)
                    self._rank_rounded_into(top, values, rows[part], query[part], k, exclude, allowed)
            elif len(rows):
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
        CatalogueScorer._leave_out(scores, rows, exclude, allowed)
        chosen = top_items(scores, k)
        top[rows, :chosen.shape[1]] = chosen
        values[rows, :chosen.shape[1]] = scores.gather(1, chosen)

    def _rank_rounded_into(self, top: Tensor, values: Tensor, rows: Tensor, query: Tensor, k: int,
                           exclude: Tensor | None, allowed: Tensor | None) -> None:
        """`_rank_into` of the softmax of `query` (len(rows), C) . table + bias, through the rounded table's
        first pass (module docstring)."""
        R = query.shape[0]
        buffer = getattr(self._local, "rounded", None)
        if buffer is None or buffer.shape[0] < R or buffer.device != query.device:
            buffer = self._local.rounded = torch.empty(R, self.n_items, dtype=torch.bfloat16, device=query.device)
        approximate = buffer[:R]                                                       # (R, N) bfloat16
        peak, total = self.rounded.scan(query, approximate)                            # (R,), (R,) float64
        peak = peak.unsqueeze(1)
        self._leave_out(approximate, rows, exclude, allowed)
        margin = 2 * self.rounded.error_bound(query)
        for r, items in enumerate(items_near_top(approximate, k, margin)):
            if not len(items):
                continue
            exact = self.table[items] @ query[r] + self.bias[items]                    # float32 logits
            order = ranked_items(exact.unsqueeze(0), min(k, len(items)))[0]
            shift = peak[r].double()
            normaliser = (total[r] - torch.exp(approximate[r, items].double() - shift).sum()
                          + torch.exp(exact.double() - shift).sum())
            top[rows[r], :len(order)] = items[order]
            values[rows[r], :len(order)] = torch.exp(exact[order].double() - shift - normaliser.log()).float()

    @staticmethod
    def _leave_out(scores: Tensor, rows: Tensor, exclude: Tensor | None, allowed: Tensor | None) -> None:
        """`scores` (len(rows), N) with `exclude`, the items `allowed` does not allow and padding set to -inf,
        in place."""
        if exclude is not None and exclude.numel():
            excluded = exclude[rows]   # (index_put_: bfloat16's scatter_ copies the whole (B, N) twice)
            scores.index_put_((torch.arange(len(rows), device=scores.device).unsqueeze(1).expand_as(excluded),
                               excluded), torch.tensor(-math.inf, dtype=scores.dtype, device=scores.device))
        scores[:, 0] = -math.inf
        if allowed is not None and allowed.stride(0) == 0:
            # one mask for every row (a filter on Items only): added as 0 / -inf, one pass without a
            # (B, N) copy of the mask
            # (in the scores' dtype: adding float32 to bfloat16 converts the whole (B, N) twice)
            scores.add_(torch.zeros(allowed.shape[1], dtype=scores.dtype, device=scores.device)
                        .masked_fill_(~allowed[0], -math.inf))
        elif allowed is not None:
            # in place; 2-3x faster than slate.mask_out's integer masks on (8, 1M) scores (torch 2.13, one core)
            scores.masked_fill_(~allowed[rows], -math.inf)

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


def rounded_item_table(table: Tensor, bias: Tensor, first_pass: str) -> RoundedItemTable | None:
    """The bfloat16 table of `top_k`'s first pass: with "auto", for catalogues of CANDIDATE_MIN_ITEMS items
    or more on a CPU that multiplies bfloat16 natively; with "bfloat16", always; None with "float32"."""
    if first_pass not in FIRST_PASSES:
        raise ValueError(f"first_pass must be one of {', '.join(FIRST_PASSES)}, got {first_pass!r}")
    packed = packed_bfloat16_available(table.device)
    if first_pass == "float32" or (first_pass == "auto" and (not packed or table.shape[0] < CANDIDATE_MIN_ITEMS)):
        return None
    return RoundedItemTable(table, bias, packed)


def catalogue_scorer(recipe: Recipe, first_pass: str = "auto") -> CatalogueScorer | None:
    """The scorer of recipes whose state scores are a softmax over state . item table + bias; None for
    the others (they are scored through the recipe contract as they are)."""
    return CatalogueScorer(recipe, first_pass) if recipe.scores_state_against_item_table else None
