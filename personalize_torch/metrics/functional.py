"""Full-ranking metrics as pure functions of score matrices and target ranks.

Ranks are 1-based positions in the list the model would serve: scores sorted in descending order,
equal scores ordered by item index (a stable sort, the same order `serving` returns). Excluded items
(the user's history, padding) score -inf and a target that is excluded counts as a miss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MISS = math.inf


def mask_scores(scores: Tensor, exclude: Tensor | None = None) -> Tensor:
    """Copy of `scores` (B, N) with padding (column 0) and `exclude` (B, E) item indices set to -inf."""
    scores = scores.clone().float()
    if exclude is not None and exclude.numel():
        scores.scatter_(1, exclude, -math.inf)
    scores[:, 0] = -math.inf
    return scores


def ranked_items(scores: Tensor, k: int | None = None) -> Tensor:
    """Item indices (B, k) in descending score order, ties by lower index first (all items when k is None).

    Exact and O(B * N) for k < N: `topk` finds the k-th score, then the lowest-index items tied with it
    fill the remaining places, and the k chosen items are ordered by (score desc, index asc).
    """
    n = scores.shape[1]
    if k is None or k >= n:
        return torch.sort(scores, dim=1, descending=True, stable=True).indices
    if k <= 0:
        return torch.zeros(scores.shape[0], 0, dtype=torch.long, device=scores.device)
    if k + 1 < n:
        # Fast path (a served request): when no row has a tie across the cut (the k-th score is above the
        # next one), topk's k items are the answer; only their order among equal scores needs fixing.
        vals, idx = torch.topk(scores, k + 1, dim=1)
        if bool((vals[:, k - 1] > vals[:, k]).all()):
            vals, idx = vals[:, :k], idx[:, :k]
            by_index = torch.argsort(idx, dim=1)
            idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
            return idx.gather(1, torch.sort(vals, dim=1, descending=True, stable=True).indices)
    kth = torch.topk(scores, k, dim=1).values[:, -1:]                     # (B, 1)
    above = scores > kth
    tied = scores == kth
    room = k - torch.count_nonzero(above, dim=1).unsqueeze(1)              # tied places to fill
    crowded = torch.count_nonzero(tied, dim=1).unsqueeze(1) > room        # rows with ties at the cut
    if crowded.any():
        tied = tied & (~crowded | (tied.cumsum(1) <= room))               # keep the lowest indices
    chosen = above | tied                                                  # exactly k per row
    idx = chosen.nonzero()[:, 1].view(scores.shape[0], k)                  # in index order
    order = torch.sort(scores.gather(1, idx), dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


def target_ranks(scores: Tensor, targets: Tensor) -> Tensor:
    """Rank (B, M) of each target (index 0 = padding) in the served order; MISS for padding/excluded.

    rank = #items scoring higher + #items scoring the same with a lower index + 1, computed one target
    column at a time, so memory stays O(B * N).
    """
    index = torch.arange(scores.shape[1], device=scores.device)
    target_scores = scores.gather(1, targets)                              # (B, M)
    ranks = torch.empty(targets.shape, dtype=torch.float32, device=scores.device)
    for m in range(targets.shape[1]):
        t = target_scores[:, m:m + 1]
        # sum(dtype=int64) over the boolean masks, not count_nonzero (2-3x slower on a large catalogue); the
        # index condition only for the rows where another item has the target's score
        higher = (scores > t).sum(1, dtype=torch.int64)
        tied_before = torch.zeros_like(higher)
        tied = torch.nonzero((scores == t).sum(1, dtype=torch.int64) > 1).flatten()
        if len(tied):
            tied_before[tied] = ((scores[tied] == t[tied]) & (index[None, :] < targets[tied, m:m + 1])).sum(
                1, dtype=torch.int64)
        ranks[:, m] = (higher + tied_before).float() + 1
    hit_possible = (targets > 0) & torch.isfinite(target_scores)
    return torch.where(hit_possible, ranks, torch.full_like(ranks, MISS))


def _discounts(ranks: Tensor) -> Tensor:
    return 1.0 / torch.log2(ranks + 1.0)


def ndcg_at_k(ranks: Tensor, n_targets: Tensor, k: int) -> Tensor:
    """Per user: DCG of hits within k over the ideal DCG of min(n_targets, k) hits (binary relevance)."""
    dcg = torch.where(ranks <= k, _discounts(ranks), torch.zeros_like(ranks)).sum(1)
    ideal_hits = n_targets.clamp(max=k)
    positions = torch.arange(1, k + 1, device=ranks.device, dtype=ranks.dtype)
    idcg = (_discounts(positions)[None, :] * (positions[None, :] <= ideal_hits[:, None])).sum(1)
    return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), torch.zeros_like(dcg))


def precision_at_k(ranks: Tensor, k: int) -> Tensor:
    return (ranks <= k).sum(1).float() / k


def recall_at_k(ranks: Tensor, n_targets: Tensor, k: int) -> Tensor:
    return (ranks <= k).sum(1).float() / n_targets.clamp(min=1).float()


def hit_rate_at_k(ranks: Tensor, k: int) -> Tensor:
    return (ranks <= k).any(1).float()


def mrr_at_k(ranks: Tensor, k: int | None = None) -> Tensor:
    """Reciprocal rank of the first hit (0 if it is beyond k)."""
    best = ranks.min(1).values
    rr = 1.0 / best
    return rr if k is None else torch.where(best <= k, rr, torch.zeros_like(rr))


def coverage(recommended: Tensor, n_catalogue: int) -> float:
    """Share of the catalogue (excluding padding) that appears among the recommended item indices."""
    unique = torch.unique(recommended[recommended > 0])
    return float(len(unique)) / max(n_catalogue, 1)
