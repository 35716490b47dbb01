"""Next-item losses over the catalogue.

* `full_softmax_loss`: cross-entropy over every item (what makes SASRec-class models strong:
  Klenitskiy & Vasilev 2023, "Turning Dross Into Gold Loss").
* `sampled_softmax_loss`: cross-entropy over the target and K shared negatives drawn from a proposal
  distribution q, with the logQ correction (logits minus log q) so the estimate stays unbiased for
  popular items (Yi et al. 2019); accidental hits of the target among the negatives are masked.

Both take the hidden states of the positions to predict (N, C), their targets (N,), the output item
embedding table (n_items, C, row 0 = padding) and optional per-position weights (N,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _weighted_mean(losses: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum().clamp(min=1e-12)


def full_softmax_loss(hidden: Tensor, targets: Tensor, item_embedding: Tensor, weights: Tensor | None = None
                      ) -> Tensor:
    logits = hidden @ item_embedding.T                                   # (N, n_items)
    logits[:, 0] = -math.inf                                             # padding is never a next item
    return _weighted_mean(F.cross_entropy(logits, targets, reduction="none"), weights)


def sampled_softmax_loss(hidden: Tensor, targets: Tensor, item_embedding: Tensor, log_q: Tensor,
                         num_negatives: int, weights: Tensor | None = None, generator: torch.Generator | None = None
                         ) -> Tensor:
    """`log_q` (n_items,): log-probabilities of the proposal; padding must have probability 0."""
    negatives = torch.multinomial(log_q.exp(), num_negatives, replacement=True, generator=generator)  # (K,)
    pos = (hidden * item_embedding[targets]).sum(-1, keepdim=True) - log_q[targets, None]        # (N, 1)
    neg = hidden @ item_embedding[negatives].T - log_q[None, negatives]                            # (N, K)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], -math.inf)                       # accidental hits
    logits = torch.cat([pos, neg], dim=1)
    labels = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
    return _weighted_mean(F.cross_entropy(logits, labels, reduction="none"), weights)
