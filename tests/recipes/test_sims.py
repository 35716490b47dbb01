"""SIMS: hand-computed co-occurrence, sparse top-K against a dense reference, learning on demo data."""

import numpy as np
import pytest
import torch

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.errors import InputError
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.recipes import sims as sims_module
from personalize_torch.recipes.popularity_count import PopularityCount
from personalize_torch.recipes.sims import SIMS
from tests.conftest import fit_small

NO_TRIMS = {"min_user_history_length_percentile": 0.0, "max_user_history_length_percentile": 1.0,
            "min_item_interaction_count_percentile": 0.0, "max_item_interaction_count_percentile": 1.0}

# Items 1-4 (0 is padding). Distinct users per item: n(1)=4, n(2)=4, n(3)=3, n(4)=1.
# Co-interactions (distinct users): c(1,2)=3 (u1,u2,u4), c(1,3)=2 (u1,u5: u5 repeats item 1, counted once),
# c(2,3)=2 (u1,u3), c(1,4)=1, c(2,4)=1, c(3,4)=0.
HISTORIES = [[1, 2, 3], [1, 2], [2, 3], [1, 2, 4], [1, 3, 1]]


def batch(histories) -> SequenceBatch:
    width = max(map(len, histories))
    items = torch.tensor([[0] * (width - len(h)) + h for h in histories])
    return SequenceBatch(torch.arange(1, len(histories) + 1), items, torch.zeros_like(items))


def fitted(histories=HISTORIES, chunks=1, **hp) -> SIMS:
    recipe = SIMS(n_items=5, num_neighbors=3, **{"min_cointeraction_count": 1, **NO_TRIMS, **hp})
    recipe.on_train_epoch_start()
    for part in np.array_split(np.arange(len(histories)), chunks):
        recipe.accumulate(batch([histories[i] for i in part]))
    recipe.finalize()
    return recipe


def neighbours(recipe: SIMS, item: int) -> tuple[list[int], list[float]]:
    idx, score = recipe.neighbor_idx[item], recipe.neighbor_score[item]
    used = idx > 0
    return idx[used].tolist(), score[used].tolist()


def test_raw_cooccurrence_without_popularity_discount():
    recipe = fitted(popularity_discount_factor=0.0)
    assert recipe.item_users.tolist() == [0, 4, 4, 3, 1] and recipe.n_users.item() == 5
    assert neighbours(recipe, 1) == ([2, 3, 4], [3.0, 2.0, 1.0])
    assert neighbours(recipe, 3) == ([1, 2], [2.0, 2.0])          # a tie goes to the lower index
    assert neighbours(recipe, 4) == ([1, 2], [1.0, 1.0])
    assert neighbours(recipe, 0) == ([], [])


def test_popularity_discount_factor_favours_rare_items():
    # a = 1: sim = c / (n(i) n(j)); for item 1: 2 -> 3/16, 3 -> 2/12, 4 -> 1/4: the rare item 4 comes first.
    idx, score = neighbours(fitted(popularity_discount_factor=1.0), 1)
    assert idx == [4, 2, 3]
    assert score == pytest.approx([1 / 4, 3 / 16, 2 / 12])
    # a = 0.5: cosine, c / sqrt(n(i) n(j)): 2 -> 3/4, 3 -> 2/sqrt(12) = 0.577, 4 -> 1/2.
    idx, score = neighbours(fitted(popularity_discount_factor=0.5), 1)
    assert idx == [2, 3, 4]
    assert score == pytest.approx([0.75, 2 / 12 ** 0.5, 0.5])


def test_min_cointeraction_count_drops_rare_pairs_and_rare_items_fall_back_to_popular():
    recipe = fitted(popularity_discount_factor=0.0, min_cointeraction_count=2)
    assert neighbours(recipe, 1) == ([2, 3], [3.0, 2.0])
    assert neighbours(recipe, 4) == ([], [])
    recipe.eval()
    scores = recipe.score(batch([[3, 4], [4, 1], []]))
    # The last item 4 has no neighbours, the third user no history: the popularity shares n(j) / 5.
    popular = [0.0, 0.8, 0.8, 0.6, 0.2]
    assert scores[0].tolist() == pytest.approx(popular) and scores[2].tolist() == pytest.approx(popular)
    # The last item 1: neighbours score 1 + sim, every other item its popularity share, below them.
    assert scores[1].tolist() == pytest.approx([0.0, 0.8, 4.0, 3.0, 0.2])


def test_window_and_item_count_trims():
    # window 1: only consecutive events pair up: u1 no longer pairs 1 with 3, u4 no longer 1 with 4.
    assert neighbours(fitted(popularity_discount_factor=0.0, cointeraction_window=1), 1) == ([2, 3], [3.0, 1.0])
    # Item counts, sorted, [1, 3, 4, 4]: the 0.5 percentile is 3.5, so items 1 and 2 are out of training,
    # and items 3 and 4 never co-occur: no item has neighbours.
    trimmed = fitted(popularity_discount_factor=0.0, max_item_interaction_count_percentile=0.5)
    assert all(neighbours(trimmed, i) == ([], []) for i in range(5))
    # The 0.4 percentile is 3.2: items 3 and 4 are out; what is left is the pair (1, 2).
    trimmed = fitted(popularity_discount_factor=0.0, min_item_interaction_count_percentile=0.4)
    assert neighbours(trimmed, 1) == ([2], [3.0]) and neighbours(trimmed, 3) == ([], [])
    # Several batches give the same counts as one.
    assert neighbours(fitted(popularity_discount_factor=0.0, chunks=3), 1) == ([2, 3, 4], [3.0, 2.0, 1.0])


def test_string_hyperparameters_and_ranges():
    recipe = SIMS(n_items=5, popularity_discount_factor="0.25", min_cointeraction_count="2")
    assert recipe.hparams.popularity_discount_factor == 0.25 and recipe.hparams.min_cointeraction_count == 2
    with pytest.raises(InputError, match="popularity_discount_factor"):
        SIMS(n_items=5, popularity_discount_factor=1.5)


def dense_reference(histories, n_items, a, min_count, keep, k):
    x = np.zeros((len(histories), n_items))
    for u, h in enumerate(histories):
        x[u, h] = 1
    x[:, 0] = 0
    c = x.T @ x
    np.fill_diagonal(c, 0)
    n = x.sum(0)
    sim = c / np.outer(n ** a, n ** a).clip(min=1e-300)
    valid = (c >= max(min_count, 1)) & keep[:, None] & keep[None, :]
    sim = np.where(valid, sim, 0.0)
    idx = np.zeros((n_items, k), dtype=np.int64)
    score = np.zeros((n_items, k))
    for i in range(n_items):
        order = np.lexsort((np.arange(n_items), -sim[i]))
        order = order[sim[i, order] > 0][:k]
        idx[i, :len(order)] = order
        score[i, :len(order)] = sim[i, order]
    return idx, score


@pytest.mark.parametrize("a,min_count,max_pct", [(0.0, 1, 1.0), (0.5, 2, 1.0), (1.0, 1, 0.8), (0.3, 3, 0.9)])
def test_sparse_top_k_matches_a_dense_reference(a, min_count, max_pct, monkeypatch):
    monkeypatch.setattr(sims_module, "COMPACT_EVERY", 50)  # merge partial counts across batches too
    rng = np.random.default_rng(7)
    n_items = 41
    weights = 1.0 / np.arange(1, n_items)                       # long tail, so the trims and ties matter
    histories = [list(rng.choice(np.arange(1, n_items), size=rng.integers(1, 25), p=weights / weights.sum()))
                 for _ in range(120)]                             # with repeats
    recipe = SIMS(n_items=n_items, popularity_discount_factor=a, min_cointeraction_count=min_count, num_neighbors=8,
                  min_user_history_length_percentile=0.0, max_user_history_length_percentile=1.0,
                  min_item_interaction_count_percentile=0.1, max_item_interaction_count_percentile=max_pct)
    recipe.on_train_epoch_start()
    for part in np.array_split(np.arange(len(histories)), 7):
        recipe.accumulate(batch([histories[i] for i in part]))
    recipe.finalize()
    counts = np.array([sum(i in set(h) for h in histories) for i in range(n_items)])
    present = counts[counts > 0]
    low, high = np.quantile(present, [0.1, max_pct])
    keep = (counts > 0) & (counts >= low) & (counts <= high)
    idx, score = dense_reference(histories, n_items, a, min_count, keep, 8)
    assert (recipe.neighbor_idx.numpy() == idx).all()
    np.testing.assert_allclose(recipe.neighbor_score.numpy(), score, rtol=1e-6)
    assert (idx > 0).sum() > 100  # the case is not trivial


def test_sims_fits_through_lightning_and_beats_popularity_on_demo_chains(tmp_path):
    """Planted item chains (an item's successor often comes next): the last item's neighbours find them."""
    data = PreparedData(demo_dataset_group(n_users=400, n_items=150, seed=11), split="leave_one_out")
    hit_rate = {}
    for recipe_cls in (PopularityCount, SIMS):
        fitted = fit_small(recipe_cls, data, max_epochs=1,
                           trainer_args={"default_root_dir": tmp_path, "check_val_every_n_epoch": 2})
        recipe = fitted.recipe
        metric = RankingMetrics(data.n_items)
        with torch.no_grad():
            for b in fitted.dm.test_dataloader():
                metric.update(mask_scores(recipe.score(b.inputs), b.exclude), b.targets)
        hit_rate[recipe.recipe_name] = metric.compute()["hit_rate_at_10"].item()
    assert (recipe.neighbor_idx > 0).any(1).float().mean() > 0.5
    assert hit_rate["sims"] > 2 * hit_rate["popularity_count"], hit_rate
