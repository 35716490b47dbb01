"""Ranking metrics against hand-computed values."""

import math

import pytest
import torch

from personalize_torch.metrics import functional as R
from personalize_torch.metrics.ranking_metrics import RankingMetrics, personalize_report


def scores_with_order(order: list[int], n_items: int) -> torch.Tensor:
    """Scores (1, n_items) that rank the given item indices first, in order."""
    s = torch.zeros(1, n_items)
    for pos, item in enumerate(order):
        s[0, item] = 100.0 - pos
    return s


def test_personalize_worked_example_hits_at_2_and_5():
    # Personalize's documentation: two relevant items recommended at ranks 2 and 5 -> NDCG 0.6241.
    ranks = torch.tensor([[2.0, 5.0]])
    ndcg = R.ndcg_at_k(ranks, torch.tensor([2]), k=5)
    assert ndcg.item() == pytest.approx(0.6241, abs=1e-4)
    expected = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert ndcg.item() == pytest.approx(expected, rel=1e-6)


def test_precision_recall_mrr_hit_rate_by_hand():
    ranks = torch.tensor([[2.0, 5.0, 30.0], [R.MISS, R.MISS, R.MISS]])
    n_targets = torch.tensor([3, 3])
    assert R.precision_at_k(ranks, 5).tolist() == pytest.approx([2 / 5, 0.0])
    assert R.recall_at_k(ranks, n_targets, 5).tolist() == pytest.approx([2 / 3, 0.0])
    assert R.mrr_at_k(ranks, 25).tolist() == pytest.approx([0.5, 0.0])
    assert R.mrr_at_k(ranks, 1).tolist() == pytest.approx([0.0, 0.0])
    assert R.hit_rate_at_k(ranks, 1).tolist() == [0.0, 0.0]
    assert R.hit_rate_at_k(ranks, 2).tolist() == [1.0, 0.0]
    # NDCG@1 of a miss at rank 1 is 0, NDCG@25 counts the rank-5 hit, not the rank-30 one.
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert R.ndcg_at_k(ranks, n_targets, 25)[0].item() == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / idcg)


def test_target_ranks_full_ranking_with_exclusion_and_padding():
    scores = scores_with_order([3, 1, 4, 2], n_items=6)  # item 5 scores 0, item 0 is padding
    masked = R.mask_scores(scores, exclude=torch.tensor([[3, 0]]))  # user already has item 3
    ranks = R.target_ranks(masked, torch.tensor([[4, 5, 3, 0]]))
    # Served order after masking: 1, 4, 2, 5 -> item 4 at rank 2, item 5 at rank 4;
    # an excluded target and a padding target are misses.
    assert ranks.tolist() == [[2.0, 4.0, math.inf, math.inf]]


def test_ties_are_ranked_by_item_index_like_serving():
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]])
    masked = R.mask_scores(scores)
    assert R.ranked_items(masked, 4).tolist() == [[4, 1, 2, 3]]
    assert R.target_ranks(masked, torch.tensor([[3]])).tolist() == [[4.0]]
    assert R.target_ranks(masked, torch.tensor([[1]])).tolist() == [[2.0]]


def test_coverage_counts_distinct_recommended_items():
    recommended = torch.tensor([[1, 2, 3], [2, 3, 0]])
    assert R.coverage(recommended, n_catalogue=10) == pytest.approx(0.3)


def test_ranking_metric_accumulates_means_over_batches():
    metric = RankingMetrics(n_items=8, ks=(2, 5))
    s1 = R.mask_scores(scores_with_order([1, 2, 3, 4, 5], 8))
    metric.update(s1, torch.tensor([[2, 0]]))          # hit at rank 2
    s2 = R.mask_scores(scores_with_order([7, 6, 5, 4, 3], 8))
    metric.update(s2, torch.tensor([[1, 7]]))          # hit at rank 1, item 1 ranked 7th
    out = {k: v.item() for k, v in metric.compute().items()}
    assert out["hit_rate_at_2"] == pytest.approx(1.0)
    assert out["precision_at_2"] == pytest.approx((0.5 + 0.5) / 2)
    assert out["recall_at_5"] == pytest.approx((1.0 + 0.5) / 2)
    assert out["mrr"] == pytest.approx((0.5 + 1.0) / 2)
    ndcg2_user1 = (1 / math.log2(3)) / 1.0
    ndcg2_user2 = 1.0 / (1 + 1 / math.log2(3))
    assert out["ndcg_at_2"] == pytest.approx((ndcg2_user1 + ndcg2_user2) / 2)
    # top-5 lists: {1..5} and {3..7}: 7 of the 7 real items.
    assert out["coverage"] == pytest.approx(1.0)


def test_personalize_report_uses_personalize_names():
    report = personalize_report({"ndcg_at_10": 0.5, "mrr_at_25": 0.25, "hit_rate_at_10": 0.9, "coverage": 0.1})
    assert report == {"normalized_discounted_cumulative_gain_at_10": 0.5, "mean_reciprocal_rank_at_25": 0.25,
                      "coverage": 0.1}


def test_fast_top_k_equals_a_stable_full_sort_with_many_ties():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (64, 300), generator=generator).float()
    scores[:, :3] = -math.inf
    full = torch.sort(scores, dim=1, descending=True, stable=True).indices
    for k in (1, 10, 25, 299):
        assert torch.equal(R.ranked_items(scores, k), full[:, :k])
    targets = torch.randint(1, 300, (64, 4), generator=generator)
    positions = torch.empty_like(full)
    positions.scatter_(1, full, torch.arange(1, 301).expand_as(full))
    expected = positions.gather(1, targets).float()
    expected[~torch.isfinite(scores.gather(1, targets))] = math.inf
    assert torch.equal(R.target_ranks(scores, targets), expected)


@pytest.mark.parametrize("levels", [3, 50, None])  # many ties across the cut ... none (the fast path)
def test_ranked_items_matches_a_full_stable_sort(levels):
    g = torch.Generator().manual_seed(levels or 0)
    scores = (torch.randint(0, levels, (64, 500), generator=g).float() if levels
              else torch.rand(64, 500, generator=g))
    scores[:, :7] = -torch.inf
    for k in (1, 10, 25, 499):
        expected = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(R.ranked_items(scores, k), expected)
