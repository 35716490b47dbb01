"""Losses against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from personalize_torch.losses import full_softmax_loss, sampled_softmax_loss, slate_choice_loss


def test_full_softmax_never_predicts_padding_and_matches_cross_entropy():
    emb = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    hidden = torch.tensor([[2.0, 0.0]])
    loss = full_softmax_loss(hidden, torch.tensor([1]), emb)
    logits = torch.tensor([[2.0, 0.0, 2.0]])  # items 1..3; padding's 18 is ignored
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0])).item())
    bias = torch.tensor([0.0, 0.0, 0.0, -1.0])
    with_bias = full_softmax_loss(hidden, torch.tensor([1]), emb, item_bias=bias)
    assert with_bias.item() == pytest.approx(F.cross_entropy(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([0])).item())


def test_slate_choice_is_a_softmax_over_the_shown_items_only():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    hidden = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    targets = torch.tensor([1, 2])
    # user 0 chose 1 out of {1, 2, 3}; user 1 chose 2 out of {2} only (no choice: skipped)
    slates = torch.tensor([[2, 1, 3], [2, 0, 0]])
    loss = slate_choice_loss(hidden, targets, slates, emb)
    s1, s2, s3 = 1.0, 2.0, 3.0     # hidden . emb[item] for user 0
    expected = -math.log(math.exp(s1) / (math.exp(s1) + math.exp(s2) + math.exp(s3)))
    assert loss.item() == pytest.approx(expected)  # item 4, never shown, plays no part
    assert slate_choice_loss(hidden[1:], targets[1:], slates[1:], emb).item() == 0.0


def test_sampled_softmax_with_all_negatives_equal_to_full_softmax_under_uniform_q():
    torch.manual_seed(0)
    n_items = 6
    emb = torch.randn(n_items, 4)
    hidden = torch.randn(3, 4)
    targets = torch.tensor([1, 2, 5])
    log_q = torch.full((n_items,), math.log(1 / (n_items - 1)))
    log_q[0] = -math.inf
    generator = torch.Generator().manual_seed(0)
    sampled = sampled_softmax_loss(hidden, targets, emb, log_q, 20000, generator=generator)
    # With K uniform negatives (accidental hits masked), the negatives' exp-logits sum to about
    # K * sum_{j != t} exp(s_j), the positive's to (n - 1) exp(s_t): the loss is log(1 + that ratio).
    scores = hidden @ emb.T
    expected = []
    for i, t in enumerate(targets.tolist()):
        others = sum(math.exp(scores[i, j]) for j in range(1, n_items) if j != t)
        expected.append(math.log(1 + 20000 * others / ((n_items - 1) * math.exp(scores[i, t]))))
    assert sampled.item() == pytest.approx(sum(expected) / 3, abs=0.02)


def test_sampled_softmax_logq_correction_under_a_skewed_proposal():
    """Negatives drawn mostly from popular items, each logit corrected by -log q: the sum over the K sampled
    negatives estimates K times the whole catalogue's sum, not the popular items' share of it."""
    torch.manual_seed(0)
    emb, hidden = torch.randn(6, 4), torch.randn(3, 4)
    targets = torch.tensor([1, 4, 5])
    q = torch.tensor([0.0, 0.5, 0.25, 0.125, 0.0625, 0.0625])
    k = 20000
    sampled = sampled_softmax_loss(hidden, targets, emb, q.log(), k, generator=torch.Generator().manual_seed(0))
    scores = hidden @ emb.T
    expected = [math.log(1 + k * q[t].item() * sum(math.exp(scores[i, j]) for j in range(1, 6) if j != t)
                         / math.exp(scores[i, t])) for i, t in enumerate(targets.tolist())]
    without_correction = [math.log(1 + k * sum(q[j].item() * math.exp(scores[i, j]) for j in range(1, 6) if j != t)
                                   / math.exp(scores[i, t])) for i, t in enumerate(targets.tolist())]
    assert sampled.item() == pytest.approx(sum(expected) / 3, abs=0.02)
    assert abs(sum(without_correction) / 3 - sum(expected) / 3) > 0.2


@pytest.mark.parametrize("weighted", [False, True])
def test_full_softmax_gradients_match_autograd_cross_entropy(weighted):
    """The hand-written backward gives autograd's values and gradients (hidden, item table, item bias)."""
    torch.manual_seed(0)
    hidden = torch.randn(7, 4, dtype=torch.double, requires_grad=True)
    emb = torch.randn(9, 4, dtype=torch.double, requires_grad=True)
    bias = torch.randn(9, dtype=torch.double, requires_grad=True)
    targets = torch.tensor([1, 2, 3, 8, 8, 5, 1])
    weights = torch.rand(7, dtype=torch.double) + 0.5 if weighted else None
    loss = full_softmax_loss(hidden, targets, emb, weights, bias)
    grads = torch.autograd.grad(3 * loss, (hidden, emb, bias))
    logits = (hidden @ emb.T + bias)[:, 1:]                                  # padding left out
    per = F.cross_entropy(logits, targets - 1, reduction="none")
    expected = per.mean() if weights is None else (per * weights).sum() / weights.sum()
    expected_grads = torch.autograd.grad(3 * expected, (hidden, emb, bias))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


def test_full_softmax_under_bf16_autocast_is_close_to_float32_with_float32_gradients():
    """bf16-mixed training (a GPU's default): the catalogue product in bf16, the softmax in float32; the
    gradients come back in the parameters' dtype and close to float32's."""
    torch.manual_seed(0)
    hidden = torch.randn(50, 16, requires_grad=True)
    emb = torch.randn(300, 16, requires_grad=True)
    bias = torch.randn(300, requires_grad=True)
    targets = torch.randint(1, 300, (50,))
    weights = torch.rand(50) + 0.5
    exact = full_softmax_loss(hidden, targets, emb, weights, bias)
    exact_grads = torch.autograd.grad(exact, (hidden, emb, bias))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = full_softmax_loss(hidden, targets, emb, weights, bias)
    grads = torch.autograd.grad(loss, (hidden, emb, bias))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(exact.item(), rel=2e-2)
    for got, want in zip(grads, exact_grads):
        assert got.dtype == torch.float32
        assert (got - want).norm() / want.norm() < 2e-2
