"""Personalized ranking: each user's given item list re-ordered by a solution's scores (Personalize's
GetPersonalizedRanking, and batch lines with "itemList").

What a ranked list holds, as Personalize documents it:
- the list's items the solution knows, best first, each with a score: a softmax over those items, so
  the scores of a list sum to 1. Recipes score with non-negative numbers (next-item probabilities, or
  shares of users for count-based recipes), so the softmax is taken over their logarithms: each score
  divided by the list's total (a list whose items all score 0 gets equal scores). A recipe whose scores
  can be negative is treated as returning logits. Equal scores keep the input order.
- then the items the solution does not know, in input order, without a score (`score` None).
- The request's filter (`RequestOptions.filter` with `filter_values`) removes items from the list; it
  judges the items the solution knows (an unknown item has no data to judge, so it stays).
- The user's items are ranked like any other (Personalize ranks the whole given list); the user's
  history and streamed events (`RequestOptions.events`) are the model's input, and the request's
  `context` is the context of the event being predicted, as for `Predictor.recommend`. Exploration is a
  campaign setting of User-Personalization's recommendations and does not apply to ranking.
- An item given twice is ranked once, at its first position's turn.
Any recipe ranks: the scores are the recipe's scores of the whole catalogue, read at the list's items
(`Predictor.rank` computes them and the filter, then `ranked_lists` orders each list).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from personalize_torch.errors import InputError

MAX_INPUT_ITEMS = 500  # Personalize's limit on a GetPersonalizedRanking inputList


def list_softmax(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's kept entries of `scores` (B, L) (`keep` bool (B, L)), 0 elsewhere.

    Non-negative rows are probabilities (or shares) already: softmax of their logarithms, that is each
    score over the row's kept total (equal shares when that total is 0). Rows with a negative score are
    logits: an ordinary softmax (-inf, an item the recipe never recommends, gets 0; equal shares when every
    kept score is -inf). Computed in float64 so small probabilities keep their order.
    """
    scores = scores.double()
    as_logits = ((scores < 0) & keep).any(1, keepdim=True)                       # (B, 1)
    logits = torch.where(keep, scores, -torch.inf)
    dead = ~torch.isfinite(logits).any(1, keepdim=True)        # nothing kept, or every kept score is -inf
    soft = torch.softmax(torch.where(dead, torch.where(keep, 0.0, -torch.inf), logits), dim=1)
    probs = torch.where(keep, scores.clamp(min=0), 0.0)
    total = probs.sum(1, keepdim=True)
    equal = keep / keep.sum(1, keepdim=True).clamp(min=1)
    probs = torch.where(total > 0, probs / total.clamp(min=1e-300), equal)
    return torch.where(as_logits, soft, probs).where(keep, 0.0)


def padded_lists(item_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) object array of each list's distinct items (first occurrence kept, in order, '' padding)
    and (B, L) bool of the filled places."""
    rows = []
    for b, items in enumerate(item_lists):
        if isinstance(items, str) or not all(isinstance(i, str) and i for i in items):
            raise InputError(f"row {b}: expected a list of non-empty item id strings", column="inputList")
        if len(items) > MAX_INPUT_ITEMS:
            raise InputError(f"row {b}: {len(items)} items; at most {MAX_INPUT_ITEMS} can be ranked",
                             column="inputList")
        rows.append(list(dict.fromkeys(items)))
    L = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), L), "", dtype=object)
    filled = np.zeros((len(rows), L), dtype=bool)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = r
        filled[b, :len(r)] = True
    return ids, filled


def ranked_lists(ids: np.ndarray, filled: np.ndarray, item_idx: np.ndarray, scores: torch.Tensor,
                 allowed: torch.Tensor | None) -> list[list[tuple[str, float | None]]]:
    """Each row of `ids` (B, L) ranked as the module docstring says: (item id, score) of the known, allowed
    items best first with softmax scores, then (item id, None) of the unknown items in input order.
    `filled` (B, L): the places holding an item; `item_idx` (B, L): each item's index, 0 when unknown;
    `scores` (B, n_items): the recipe's scores of the catalogue for each user; `allowed` (B, n_items) bool:
    what the request's filter keeps (None: everything)."""
    B, L = ids.shape
    idx = torch.from_numpy(np.where(filled, item_idx, 0).astype(np.int64))         # (B, L), 0 = unknown / none
    known = idx > 0
    keep = known.clone()
    if allowed is not None:
        keep &= allowed.cpu().gather(1, idx)
    probs = list_softmax(scores.cpu().gather(1, idx), keep)                        # (B, L)
    # Kept known items by score (stable: ties keep input order), then unknown items in input order.
    unknown = torch.from_numpy(filled) & ~known
    key = torch.where(keep, probs, torch.where(unknown, -1.0, -2.0))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices.numpy()
    probs, keep, unknown = probs.numpy(), keep.numpy(), unknown.numpy()
    out = []
    for b in range(B):
        row = order[b][keep[b, order[b]] | unknown[b, order[b]]]
        out.append([(ids[b, j], float(probs[b, j]) if keep[b, j] else None) for j in row])
    return out
