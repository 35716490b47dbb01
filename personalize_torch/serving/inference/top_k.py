"""Exact top-k of (B, N) scores over a large catalogue without a full top-k pass per row.

    top_items(scores, k) == metrics.functional.ranked_items(scores, k)   # descending, ties by lower index

`torch.topk` over a 1M-item row costs ~5 ms on one core (bench/serving_scale.py). Here each row's items are
cut into blocks of BLOCK; the maximum of every block (one streaming pass, ~0.1 ms per 1M items) gives, as the
k-th largest block maximum m, a lower bound of the row's k-th largest score (the k largest block maxima are k
distinct items). Every item scoring at least the k-th score, ties included, is therefore in a block whose
maximum is at least m: only those blocks (k of them, more only with ties) are ranked exactly, with
`ranked_items` over their items in index order, so ties still go to the lower index.

`items_near_top(scores, k, margin)` gives, by the same blocks, every item whose score is within `margin` of
its row's k-th largest: with approximate scores off by at most margin / 2, the items that can be in the
exact top k (inference/rounded_table.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from personalize_torch.metrics.functional import ranked_items

BLOCK = 1024


def _block_maxima(scores: Tensor) -> Tensor:
    """(B, ceil(N / BLOCK)) the maximum of each block of BLOCK items."""
    N = scores.shape[1]
    n_blocks = N // BLOCK
    full = n_blocks * BLOCK
    maxima = scores[:, :full].unflatten(1, (n_blocks, BLOCK)).amax(2)
    if full < N:                                                                       # the short last block
        maxima = torch.cat([maxima, scores[:, full:].amax(1, keepdim=True)], 1)
    return maxima


def _candidate_items(scores: Tensor, k: int) -> list[Tensor]:
    """Per row, the items (ascending indices) of the blocks whose maximum is at least the k-th largest block
    maximum: every item of the row's top k, ties included."""
    B, N = scores.shape
    maxima = _block_maxima(scores)
    kth = maxima.topk(k, dim=1).values[:, -1]                                            # (B,)
    offsets = torch.arange(BLOCK, device=scores.device)
    out = []
    for b in range(B):
        blocks = torch.nonzero(maxima[b] >= kth[b]).view(-1)                             # ascending
        items = (blocks.unsqueeze(1) * BLOCK + offsets).view(-1)
        out.append(items[items < N])
    return out


def top_items(scores: Tensor, k: int) -> Tensor:
    """(B, k) item indices of each row's k best scores, best first, ties by lower index (as `ranked_items`)."""
    B, N = scores.shape
    k = max(0, min(int(k), N))
    if k == 0 or N // BLOCK < 4 * k:   # small catalogues: blocks save nothing
        return ranked_items(scores, k)
    out = torch.empty(B, k, dtype=torch.long, device=scores.device)
    for b, items in enumerate(_candidate_items(scores, k)):
        out[b] = items[ranked_items(scores[b, items].unsqueeze(0), k)[0]]
    return out


def items_near_top(scores: Tensor, k: int, margin: Tensor) -> list[Tensor]:
    """Per row, the items (ascending indices) whose score is finite and at least the row's k-th largest
    score minus `margin` (B,); every finite item when a row has fewer than k."""
    B, N = scores.shape
    k = max(1, min(int(k), N))
    maxima = _block_maxima(scores)
    if maxima.shape[1] >= k:   # the k-th largest block maximum is at most the k-th largest score
        kth_block = maxima.topk(k, dim=1).values[:, -1].float()
    else:
        kth_block = torch.full((B,), -torch.inf, device=scores.device)
    offsets = torch.arange(BLOCK, device=scores.device)
    out = []
    for b in range(B):
        low = kth_block[b] - margin[b]
        blocks = torch.nonzero(maxima[b] >= low).view(-1)
        items = (blocks.unsqueeze(1) * BLOCK + offsets).view(-1)
        items = items[items < N]
        values = scores[b, items].float()
        keep = torch.isfinite(values) & (values >= low)
        items, values = items[keep], values[keep]
        if len(values) >= k:        # the k-th score itself is among them: the tighter threshold
            kth = values.topk(k).values[-1]
            items = items[values >= kth - margin[b]]
        out.append(items)
    return out
