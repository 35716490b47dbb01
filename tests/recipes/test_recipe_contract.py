"""The contract every recipe in RECIPES keeps, checked on small demo data."""

import numpy as np
import pytest
import torch

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes import RECIPES
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.solution_version import load_solution_version, save_solution_version
from tests.conftest import fit_small

# Every recipe that trains from data alone (a blend combines trained solution versions: tests/recipes/test_blend.py).
SINGLE_RECIPES = sorted(name for name in RECIPES if not RECIPES[name].combines_solution_versions)


@pytest.fixture(scope="module")
def data():
    return PreparedData(demo_dataset_group(n_users=200, n_items=80, seed=3), split="leave_one_out")


def fit(recipe_cls, data, tmp_path):
    fitted = fit_small(recipe_cls, data, max_epochs=2, batch_size=64, trainer_args={"default_root_dir": tmp_path})
    return fitted.recipe, fitted.trainer, fitted.dm


@pytest.mark.parametrize("name", SINGLE_RECIPES)
def test_gradients_reach_the_item_embeddings(name, data):
    recipe = RECIPES[name].from_data(data.describe())
    if recipe.count_based:
        pytest.skip("count-based recipes have no gradients")
    batch = next(iter(InteractionsDataModule(data, recipe.loader_needs(), batch_size=64).train_dataloader()))
    loss = recipe.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for n, p in recipe.named_parameters() if "item_embedding" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", SINGLE_RECIPES)
def test_recipe_contract(name, data, tmp_path):
    recipe, trainer, dm = fit(RECIPES[name], data, tmp_path)
    recipe.eval()
    batch = next(iter(dm.val_dataloader())).inputs
    with torch.no_grad():
        scores = recipe.score(batch)
    assert scores.shape == (batch.items.shape[0], data.n_items)
    allowed = recipe.recommendable_items()   # None: every item (HRNN-Coldstart: only cold items)
    if allowed is None:
        assert torch.isfinite(scores).all()
    else:
        assert 0 < allowed.sum() < data.n_items and not allowed[0]
        assert torch.isfinite(scores[:, allowed]).all() and (scores[:, ~allowed] == float("-inf")).all()

    out = save_solution_version(tmp_path / "sv", trainer, recipe, data, {"metrics": {}})
    loaded = load_solution_version(out)
    assert type(loaded.recipe) is RECIPES[name]
    with torch.no_grad():
        assert torch.equal(loaded.recipe.score(batch), scores)

    # Padding and the user's own items are never recommended; unknown users still get a full list.
    predictor = Predictor(loaded)
    users = list(data.user_vocab.ids[:5]) + ["never-seen-user"]
    recs = predictor.recommend(users, num_results=10)
    recommendable = set(data.item_vocab.ids) if allowed is None else set(data.item_vocab.to_id(allowed.nonzero()[:, 0]))
    for user, items in zip(users, recs):
        row = loaded.history_rows([user])[0]
        seen = set(data.item_vocab.to_id(loaded.histories.items_of(row))) if row >= 0 else set()
        expected = min(10, len(recommendable - seen))
        assert len(items) == expected
        ids = [r.item_id for r in items]
        assert len(set(ids)) == expected and all(i in recommendable for i in ids)
        assert not seen & set(ids)
        assert all(a.score >= b.score for a, b in zip(items, items[1:]))


def test_popularity_count_counts_distinct_users(data, tmp_path):
    recipe, _, _ = fit(RECIPES["popularity_count"], data, tmp_path)
    train = data.split.train
    owner = np.repeat(np.arange(len(train)), train.lengths)
    pairs = np.unique(owner * data.n_items + train.item_idx)
    expected = np.bincount(pairs % data.n_items, minlength=data.n_items)
    assert recipe.user_counts.numpy().tolist() == expected.tolist()
    assert recipe.n_users.item() == len(train)
