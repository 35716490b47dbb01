"""Promotions (GetRecommendations' `promotions`): a share of the list reserved for items that pass a
promotion filter, as Amazon Personalize does.

- Slots: `promoted_slots(num_results, percent)` = ceil(num_results * percentPromotedItems / 100), so any
  promotion on a non-empty list promotes at least one item (Personalize documents the percentage, not
  its rounding; rounding up is the choice made here).
- Which items: the highest-scored items (the same scores, seen-item exclusion and exploration as the rest
  of the list) that pass the promotion's filter with the promotion's own filterValues. The request's
  filter does not apply to them, and the promotion's filter does not apply to the other items. When
  fewer items pass, the list has as many promoted items as there are and the other items fill the rest.
- Where: Personalize places promoted items "randomly relative to other recommended items, but in sorted
  order relative to other promoted items". Here too: `promoted_positions` draws the promoted items'
  places uniformly at random among the list's places (seedable), and both groups keep their own order.
- Tagging: promoted items carry the promotion's name (`promotionName`) and reason ["Promoted item"].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from personalize_torch.filters import Filter

PROMOTED_ITEM = "Promoted item"  # PredictedItem.reason, as Personalize words it
T = TypeVar("T")


@dataclass(frozen=True)
class Promotion:
    """One request's promotion: its name, the percentage of the list it takes (1-100), the parsed
    promotion filter and that filter's values; `seed` fixes the promoted items' positions (None = random)."""

    name: str
    percent_promoted_items: int
    filter: Filter
    filter_values: Mapping[str, str] | None = None
    seed: int | None = None

    def __post_init__(self):
        if not 1 <= int(self.percent_promoted_items) <= 100:
            raise ValueError(f"percentPromotedItems must be between 1 and 100, got {self.percent_promoted_items}")


def promoted_slots(num_results: int, percent: int) -> int:
    """Places reserved for promoted items in a list of `num_results`: ceil(num_results * percent / 100)."""
    return min(num_results, math.ceil(num_results * percent / 100)) if num_results > 0 else 0


def promoted_positions(n_promoted: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions (0-based) of `n_promoted` promoted items in a list of `length`, drawn uniformly."""
    if not 0 <= n_promoted <= length:
        raise ValueError(f"cannot place {n_promoted} promoted items in a list of {length}")
    return np.sort(rng.choice(length, size=n_promoted, replace=False)) if n_promoted else np.zeros(0, np.int64)


def interleave(promoted: Sequence[T], others: Sequence[T], positions: np.ndarray) -> list[T]:
    """`promoted` at `positions` (sorted, one each), `others` in the remaining places, each in its order."""
    if len(positions) != len(promoted):
        raise ValueError(f"{len(positions)} positions for {len(promoted)} promoted items")
    out: list[T] = []
    p = o = 0
    at = set(int(i) for i in positions)
    for place in range(len(promoted) + len(others)):
        if place in at:
            out.append(promoted[p])
            p += 1
        else:
            out.append(others[o])
            o += 1
    return out
