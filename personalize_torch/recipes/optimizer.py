"""The recipes' optimizer: AdamW, updating an item table only at the rows a step touched.

`RowSparseAdamW` is `torch.optim.AdamW` (same arguments, same state, the same numbers) for every parameter
whose gradient is dense. A parameter whose gradient arrives as a sparse tensor over rows (`gather_rows` in
models/item_rows.py: a sampled-softmax step over a large catalogue reads only the batch's items) is updated
at those rows only, "lazily", as TensorFlow's LazyAdam and torch's SparseAdam do:

- a touched row's moments take its gradient; the other rows keep theirs and do not move (dense AdamW
  would still shrink them and move them by their old momentum);
- the bias correction counts the parameter's steps, as AdamW's;
- decoupled weight decay shrinks the touched rows only, so an item is regularized each time it is used
  (as an input, a target or a sampled negative) rather than at every step.

So a step costs what the batch reads, not what the catalogue holds. It is one optimizer with AdamW's
parameter groups and state keys: Lightning's automatic optimization, the learning-rate schedules, the
`train/lr` log and checkpoints (optimizer state included) are unchanged. `clip_gradients_` clips dense
and row gradients together (torch's clip_grad_norm_ / clip_grad_value_ refuse sparse tensors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


class RowSparseAdamW(torch.optim.AdamW):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def step(self, closure=None):
        loss = None
        if closure is not None:   # Lightning passes the training step and backward as the closure
            with torch.enable_grad():
                loss = closure()
        rows = [(p, group) for group in self.param_groups for p in group["params"]
                if p.grad is not None and p.grad.is_sparse]
        grads = [p.grad for p, _ in rows]
        for p, _ in rows:   # AdamW skips parameters without a gradient
            p.grad = None
        try:
            super().step()
        finally:
            for (p, _), grad in zip(rows, grads):
                p.grad = grad
        with torch.no_grad():
            for (p, group), grad in zip(rows, grads):
                self._update_rows(p, grad.coalesce(), group)
        return loss

    def _update_rows(self, p: Tensor, grad: Tensor, group: dict) -> None:
        """AdamW's update (torch's single-tensor formulas) applied to the rows of `grad` only."""
        state = self.state[p]
        if not state:   # the state AdamW keeps, so checkpoints and a later dense step read it the same way
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        lr, weight_decay, eps = float(group["lr"]), group["weight_decay"], group["eps"]
        beta1, beta2 = (float(b) for b in group["betas"])
        rows, values = grad.indices()[0], grad.values()
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(values, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(eps)
        updated = p.index_select(0, rows).mul_(1 - lr * weight_decay)
        updated.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1 ** step))
        p.index_copy_(0, rows, updated)


def clip_gradients_(parameters: Iterable[Tensor], clip_value: float, algorithm: str = "norm") -> None:
    """Clip the gradients of `parameters`, dense or sparse over rows, in place: by their total 2-norm
    (`norm`, as torch.nn.utils.clip_grad_norm_) or each entry to [-clip_value, clip_value] (`value`)."""
    params = [p for p in parameters if p.grad is not None]
    for p in params:
        if p.grad.is_sparse:   # repeated rows summed first: the norm and the clamp are of the summed gradient
            p.grad = p.grad.coalesce()
    if algorithm == "value":
        for p in params:
            if p.grad.is_sparse:
                p.grad = _with_values(p.grad, p.grad.values().clamp(-clip_value, clip_value))
            else:
                p.grad.clamp_(-clip_value, clip_value)
        return
    if not params:
        return
    norms = [(p.grad.values() if p.grad.is_sparse else p.grad).norm(2) for p in params]
    total = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]), 2)
    coefficient = (clip_value / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad.is_sparse:
            p.grad = _with_values(p.grad, p.grad.values() * coefficient.to(p.grad.device))
        else:
            p.grad.mul_(coefficient.to(p.grad.device))


def _with_values(grad: Tensor, values: Tensor) -> Tensor:
    """The coalesced sparse `grad` with new `values`."""
    return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, check_invariants=False, is_coalesced=True)
