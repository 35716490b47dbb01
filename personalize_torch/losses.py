"""Next-item losses over the catalogue.

* `full_softmax_loss`: cross-entropy over every item (what makes SASRec-class models strong:
  Klenitskiy & Vasilev 2023, "Turning Dross Into Gold Loss").
* `sampled_softmax_loss`: cross-entropy over the target and K shared negatives drawn from a proposal
  distribution q, with the logQ correction (logits minus log q) so the estimate stays unbiased for
  popular items (Yi et al. 2019); accidental hits of the target among the negatives are masked.

* `slate_choice_loss`: the user's choice among what was shown — a softmax over the impression slate
  (the chosen item plus the shown-and-not-chosen ones). It is a separate term: skipped items are only
  pushed below the chosen one for this user, never down the whole catalogue, which would punish the
  items that are shown most (their exposure is the catalogue softmax's business, via an item bias).

All take the hidden states of the positions to predict (N, C), their targets (N,), the output item
embedding table (n_items, C, row 0 = padding) and optional per-position weights (N,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOW_PRECISION = (torch.bfloat16, torch.float16)


def _weighted_mean(losses: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum().clamp(min=1e-12)


class _FullSoftmaxCrossEntropy(torch.autograd.Function):
    """Weighted mean cross-entropy of `hidden @ table.T + bias` (N, n_items) with a hand-written backward.

    The (N, n_items) logits are the largest tensor of a training step, and on CPU the passes over them
    are most of its time. Autograd's cross-entropy makes about nine (addmm, log-softmax, a zero-filled
    gradient, a scatter, the log-softmax backward, ...); here the forward turns the logits in place into
    the gradient `w * (softmax - onehot)` right away (four passes), and the backward is the two matmuls
    and a column sum. Same values and gradients (tests/models/test_losses.py).
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, table: Tensor, bias: Tensor, targets: Tensor, weights: Tensor,
                compute_dtype: torch.dtype) -> Tensor:
        if compute_dtype in LOW_PRECISION:   # autocast: the product in bf16, the softmax and its gradient in float32
            logits = torch.mm(hidden.to(compute_dtype), table.to(compute_dtype).t()).float().add_(bias)
        else:
            logits = torch.addmm(bias, hidden, table.t())                 # (N, n_items)
        lse = torch.logsumexp(logits, dim=1)                               # (N,)
        rows = torch.arange(len(targets), device=targets.device)
        loss = ((lse - logits[rows, targets]) * weights).sum()
        grad = logits.sub_((lse - weights.log()).unsqueeze(1)).exp_()     # w * softmax, in place
        grad[rows, targets] -= weights                                     # w * (softmax - onehot)
        ctx.save_for_backward(hidden, table, grad)
        ctx.compute_dtype = compute_dtype
        return loss

    @staticmethod
    def backward(ctx, upstream: Tensor):
        hidden, table, grad = ctx.saved_tensors
        grad_hidden = grad_table = grad_bias = None
        dtype = ctx.compute_dtype
        product_grad = grad.to(dtype)
        if ctx.needs_input_grad[0]:
            grad_hidden = ((product_grad @ table.to(dtype)) * upstream).to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            grad_table = ((product_grad.t() @ hidden.to(dtype)) * upstream).to(table.dtype)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0) * upstream
        return grad_hidden, grad_table, grad_bias, None, None, None


def full_softmax_loss(hidden: Tensor, targets: Tensor, item_embedding: Tensor, weights: Tensor | None = None,
                      item_bias: Tensor | None = None) -> Tensor:
    # The bias carries -inf for padding, which is never a next item.
    bias = item_bias if item_bias is not None else hidden.new_zeros(item_embedding.shape[0])
    bias = torch.cat([bias.new_full((1,), -math.inf), bias[1:]])
    if len(targets) == 0:
        return hidden.sum() * 0.0
    w = hidden.new_full((len(targets),), 1.0 / len(targets)) if weights is None else weights / weights.sum().clamp(min=1e-12)
    device = hidden.device.type
    # Under autocast (bf16-mixed on a GPU) the catalogue product runs in the autocast dtype, as autocast's own
    # matmul would, and the softmax in float32; otherwise all in the inputs' dtype.
    compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    logit_dtype = torch.float32 if compute_dtype in LOW_PRECISION else hidden.dtype
    return _FullSoftmaxCrossEntropy.apply(hidden, item_embedding, bias.to(logit_dtype), targets,
                                          w.detach().to(logit_dtype), compute_dtype)


def sampled_softmax_loss(hidden: Tensor, targets: Tensor, item_embedding: Tensor, log_q: Tensor,
                         num_negatives: int, weights: Tensor | None = None, generator: torch.Generator | None = None,
                         item_bias: Tensor | None = None, negatives: Tensor | None = None) -> Tensor:
    """`log_q` (n_items,): log-probabilities of the proposal; padding must have probability 0. `negatives`
    (K,): rows of `item_embedding` already drawn from the proposal (None: `num_negatives` drawn here). The
    rows may be a subset of the catalogue (a batch's items and its negatives, models/item_rows.py): then
    `item_embedding`, `log_q` and `item_bias` hold those rows, and `targets` and `negatives` index them."""
    if negatives is None:
        negatives = torch.multinomial(log_q.exp(), num_negatives, replacement=True, generator=generator)  # (K,)
    bias = item_bias if item_bias is not None else torch.zeros_like(log_q)
    pos = (hidden * item_embedding[targets]).sum(-1, keepdim=True) + (bias - log_q)[targets, None]  # (N, 1)
    neg = hidden @ item_embedding[negatives].T + (bias - log_q)[None, negatives]                  # (N, K)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], -math.inf)                       # accidental hits
    logits = torch.cat([pos, neg], dim=1)
    labels = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
    return _weighted_mean(F.cross_entropy(logits, labels, reduction="none"), weights)


def slate_choice_loss(hidden: Tensor, targets: Tensor, slates: Tensor, item_embedding: Tensor,
                      weights: Tensor | None = None, item_bias: Tensor | None = None) -> Tensor:
    """Cross-entropy of the chosen item against the other items of its slate (N, S; 0 = padding);
    the logits are `hidden . item` (plus `item_bias` (n_items,) when given).

    Positions whose slate shows nothing besides the chosen item carry no choice and are skipped; the
    result is 0 when no position has a real slate.
    """
    others = slates.masked_fill(slates == targets[:, None], 0)              # chosen item counted once
    has_choice = (others > 0).any(1)
    if not has_choice.any():
        return hidden.sum() * 0.0
    hidden, targets, others = hidden[has_choice], targets[has_choice], others[has_choice]
    candidates = torch.cat([targets[:, None], others], dim=1)                # (n, 1 + S), chosen first
    logits = torch.einsum("nc,nsc->ns", hidden, item_embedding[candidates])
    if item_bias is not None:
        logits = logits + item_bias[candidates]
    logits = logits.masked_fill(candidates == 0, -math.inf)
    labels = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
    losses = F.cross_entropy(logits, labels, reduction="none")
    return _weighted_mean(losses, weights[has_choice] if weights is not None else None)
