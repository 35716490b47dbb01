"""Exploration at inference, as Personalize's campaign settings `explorationWeight` (0-1) and
`explorationItemAgeCutOff` (days).

The served ranking mixes the model's distribution over items with an exploration distribution that
favours items little is known about: weight proportional to 1 / (1 + interactions + skips), where skips
count the impressions (IMPRESSION slates in the training data) that showed the item and chose another,
over the items no older than the cut-off (age from CREATION_TIMESTAMP, or from the item's first
interaction when there is none, measured back from the newest interaction in the data). An item shown
often without being chosen is therefore explored less: its skips are evidence the model already has.
Deterministic: the same request gets the same list.

    served = (1 - w) * p_model + w * p_explore
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import Tensor

from personalize_torch.errors import InputError

SECONDS_PER_DAY = 86_400.0


def check_exploration_settings(weight: float, age_cut_off_days: float) -> None:
    """Personalize's ranges: explorationWeight 0-1, explorationItemAgeCutOff above 0 days."""
    if not (isinstance(weight, Real) and 0.0 <= weight <= 1.0):
        raise InputError(f"must be between 0 and 1, got {weight!r}", column="explorationWeight")
    if not (isinstance(age_cut_off_days, Real) and age_cut_off_days > 0 and not math.isnan(age_cut_off_days)):
        raise InputError(f"must be a number of days above 0, got {age_cut_off_days!r}",
                         column="explorationItemAgeCutOff")


def item_ages_days(creation_ts: np.ndarray | None, first_seen_ts: np.ndarray, now: float) -> np.ndarray:
    """Age in days of each item; creation time when known, else the first interaction, else infinitely old."""
    born = first_seen_ts.astype(float)
    if creation_ts is not None:
        born = np.where(np.isfinite(creation_ts), creation_ts, born)
    age = (now - born) / SECONDS_PER_DAY
    return np.where(np.isfinite(age), np.maximum(age, 0.0), np.inf)


def exploration_distribution(evidence_counts: Tensor, ages_days: Tensor, age_cutoff_days: float) -> Tensor:
    """(n_items,) probabilities over the explorable items (index 0 = padding gets 0); `evidence_counts` are
    each item's interactions plus its shown-and-not-chosen impressions."""
    weight = 1.0 / (1.0 + evidence_counts.float())
    weight = torch.where(ages_days <= age_cutoff_days, weight, torch.zeros_like(weight))
    weight[0] = 0.0
    total = weight.sum()
    return weight / total if total > 0 else weight


def explore(scores: Tensor, exploration: Tensor, exploration_weight: float) -> Tensor:
    """Mix (B, n_items) non-negative model scores with the exploration distribution (n_items,)."""
    if exploration_weight <= 0 or exploration.sum() <= 0:
        return scores
    finite = torch.isfinite(scores)
    model = torch.where(finite, scores.clamp(min=0), torch.zeros_like(scores))
    model = model / model.sum(1, keepdim=True).clamp(min=1e-12)
    mixed = (1 - exploration_weight) * model + exploration_weight * exploration[None, :]
    return torch.where(finite, mixed, scores)
