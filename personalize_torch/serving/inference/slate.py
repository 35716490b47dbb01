"""One request's final list from its scores: the promoted part (`promotions`), the model's part under the
request's filter, and popular back-fill (`backfill`), with no item twice.

    compose_slates(scores, k, allowed, promotion, promotion_allowed, popularity, current_items)
        -> per row, a list of SlateItem(idx, score, promotion_name, reason)

Without a promotion and without back-fill this is the plain filtered top-k of each row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from personalize_torch.serving.inference.backfill import POPULAR_ITEM, popular_fill
from personalize_torch.serving.inference.promotions import (
    PROMOTED_ITEM,
    Promotion,
    interleave,
    promoted_positions,
    promoted_slots,
)
from personalize_torch.serving.inference.top_k import top_items

NEG_INF = float("-inf")
_BITS = {torch.float32: (torch.int32, -8388608), torch.float64: (torch.int64, -4503599627370496)}  # -inf's bits


def mask_out(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """`scores` with the items not `allowed` at -inf (a new tensor), as `scores.masked_fill(~allowed, -inf)`.

    On the CPU a masked fill over a large catalogue branches per item; choosing each float's bits with
    AND / OR masks instead is branch-free and several times faster, and this is most of what a filter adds
    to a request (bench/filter_latency.py; bench/RESULTS.md, "Filter latency").
    """
    if scores.device.type != "cpu" or scores.dtype not in _BITS:
        return scores.masked_fill(~allowed, NEG_INF)
    int_type, neg_inf_bits = _BITS[scores.dtype]
    keep = allowed.to(int_type).neg_()                     # all ones where allowed, 0 elsewhere
    out = scores.contiguous().view(int_type) & keep       # the allowed scores' bits, 0 elsewhere
    out |= keep.bitwise_not_().bitwise_and_(neg_inf_bits)  # -inf's bits elsewhere (two buffers in all)
    return out.view(scores.dtype)


@dataclass
class SlateItem:
    idx: int                                  # item index
    score: float | None                       # None for back-filled popular items (no score for the user)
    promotion_name: str | None = None
    reason: tuple[str, ...] | None = None


def compose_slates(scores: torch.Tensor, k: int, allowed: torch.Tensor | None = None,
                   promotion: Promotion | None = None, promotion_allowed: torch.Tensor | None = None,
                   popularity: torch.Tensor | None = None,
                   current_items: np.ndarray | None = None) -> list[list[SlateItem]]:
    """Each row's list of at most `k` items.

    - `scores` (B, N): the model's scores with excluded items (padding, seen items, the request's item) at
      -inf; items at -inf are never recommended or promoted.
    - `allowed` (B, N) bool: the request's filter (None = no filter); it applies to the non-promoted part.
    - `promotion` with `promotion_allowed` (B, N): the promotion and its filter's mask.
    - `popularity` (N,): back-fill short lists with popular items that pass `allowed` (None = no back-fill);
      `current_items` (B,) item indices the back-fill must skip too (related-items requests; 0 = none).
    """
    B, N = scores.shape
    k = max(0, min(int(k), N))
    chosen = torch.zeros(B, N, dtype=torch.bool, device=scores.device)  # items in the list so far
    promo_idx = promo_ok = promo_val = None
    rest = scores
    if promotion is not None:
        if promotion_allowed is None:
            raise ValueError("a promotion needs its filter's mask (promotion_allowed)")
        eligible = mask_out(scores, promotion_allowed.view(B, N))
        promo_idx = top_items(eligible, promoted_slots(k, promotion.percent_promoted_items))
        promo_val = eligible.gather(1, promo_idx)
        promo_ok = torch.isfinite(promo_val)
        chosen |= torch.zeros_like(chosen).scatter_(1, promo_idx, promo_ok)
        rest = mask_out(scores, ~chosen)
    if allowed is not None:
        rest = mask_out(rest, allowed.view(B, N))
    top = top_items(rest, k)
    top_val = rest.gather(1, top)
    top_ok = torch.isfinite(top_val)

    n_promoted = promo_ok.sum(1) if promo_ok is not None else torch.zeros(B, dtype=torch.long, device=scores.device)
    fill = None
    if popularity is not None and bool(((n_promoted + top_ok.sum(1)) < k).any()):
        chosen |= torch.zeros_like(chosen).scatter_(1, top, top_ok)
        candidates = ~chosen
        candidates[:, 0] = False
        if allowed is not None:
            candidates &= allowed.view(B, N)
        if current_items is not None:
            cur = torch.as_tensor(np.asarray(current_items, dtype=np.int64), device=scores.device).view(B)
            candidates[torch.arange(B, device=scores.device), cur] = False  # index 0 (none) is already False
        fill = popular_fill(popularity, candidates, k).cpu().numpy()

    top, top_val, top_ok = top.cpu().numpy(), top_val.cpu().numpy(), top_ok.cpu().numpy()
    if promotion is not None:
        promo_idx, promo_val, promo_ok = promo_idx.cpu().numpy(), promo_val.cpu().numpy(), promo_ok.cpu().numpy()
        rng = np.random.default_rng(promotion.seed)
    out = []
    for b in range(B):
        promoted: list[SlateItem] = []
        if promotion is not None:
            promoted = [SlateItem(int(i), float(v), promotion.name, (PROMOTED_ITEM,))
                        for i, v in zip(promo_idx[b][promo_ok[b]], promo_val[b][promo_ok[b]])]
        room = k - len(promoted)
        others = [SlateItem(int(i), float(v)) for i, v in zip(top[b][top_ok[b]][:room], top_val[b][top_ok[b]][:room])]
        if fill is not None and len(others) < room:
            extra = fill[b][fill[b] >= 0][:room - len(others)]
            others += [SlateItem(int(i), None, None, (POPULAR_ITEM,)) for i in extra]
        if promoted:
            out.append(interleave(promoted, others, promoted_positions(len(promoted), len(promoted) + len(others), rng)))
        else:
            out.append(others)
    return out
