"""Back-fill with popular items: when a campaign is set to back-fill (`backfill_popular`) and a list comes
out shorter than numResults (a filter let too few items through), the remaining places go to the most
popular items that pass the request's filter, as Personalize's placeholder "Popular item"s do (they have
no score for the user).

Every item the model can score and the filter lets through is already in the list, so what a back-fill
can add are the items that the seen-item exclusion left out (items the user already interacted with),
and items the recipe gave no finite score. They are ordered by popularity: the number of distinct users
with the item in the solution's stored training histories (ties: lower item index first). Padding and
the request's own item (related-items requests) are never added. To keep seen items out of back-fill
as well, say so in the filter (`EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)`).
"""

from __future__ import annotations

import numpy as np
import torch

from personalize_torch.data.sequences import UserSequences
from personalize_torch.metrics.functional import ranked_items

POPULAR_ITEM = "Popular item"  # PredictedItem.reason, as Personalize words it


def item_popularity(histories: UserSequences, n_items: int) -> np.ndarray:
    """(n_items,) float: distinct users per item index in `histories` (index 0, padding, is 0)."""
    owner = np.repeat(np.arange(len(histories), dtype=np.int64), histories.lengths)
    pairs = np.unique(owner * n_items + histories.item_idx.astype(np.int64))
    counts = np.bincount(pairs % n_items, minlength=n_items).astype(np.float32)
    counts[0] = 0.0
    return counts


def popular_fill(popularity: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) indices of the most popular candidate items of each row, -1 where a row has fewer than k.

    `popularity` (N,); `candidates` (B, N) bool: items that may be added (pass the filter, not padding,
    not already in the list, not the request's item)."""
    B, N = candidates.shape
    k = min(k, N)
    key = popularity.to(candidates.device).float().expand(B, N).masked_fill(~candidates, float("-inf"))
    top = ranked_items(key, k)
    ok = torch.isfinite(key.gather(1, top))
    return torch.where(ok, top, torch.full_like(top, -1))
