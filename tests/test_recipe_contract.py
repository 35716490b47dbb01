"""The contract every recipe in RECIPES keeps, checked on small demo data."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes import RECIPES

# Every recipe that trains from data alone (a blend combines trained solution versions: tests/test_blend.py).
SINGLE_RECIPES = sorted(name for name in RECIPES if name != "blend")
from personalize_torch.serving.predictor import Predictor
from personalize_torch.solution_version import load_solution_version, save_solution_version
from personalize_torch.training import make_recipe


@pytest.fixture(scope="module")
def datamodule():
    dm = InteractionsDataModule(demo_dataset_group(n_users=200, n_items=80, seed=3), split="leave_one_out",
                                batch_size=64)
    dm.setup()
    return dm


def fit(recipe_cls, dm, tmp_path):
    recipe = make_recipe(recipe_cls, dm)
    dm.configure_for(recipe)
    trainer = pl.Trainer(max_epochs=1 if recipe.count_based else 2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=tmp_path)
    trainer.fit(recipe, datamodule=dm)
    return recipe, trainer


@pytest.mark.parametrize("name", SINGLE_RECIPES)
def test_gradients_reach_the_item_embeddings(name, datamodule):
    recipe = make_recipe(RECIPES[name], datamodule)
    if recipe.count_based:
        pytest.skip("count-based recipes have no gradients")
    datamodule.configure_for(recipe)
    batch = next(iter(datamodule.train_dataloader()))
    loss = recipe.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for n, p in recipe.named_parameters() if "item_embedding" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", SINGLE_RECIPES)
def test_recipe_contract(name, datamodule, tmp_path):
    dm = datamodule
    recipe, trainer = fit(RECIPES[name], dm, tmp_path)
    recipe.eval()
    batch = next(iter(dm.val_dataloader())).inputs
    with torch.no_grad():
        scores = recipe.score(batch)
    assert scores.shape == (batch.items.shape[0], dm.n_items)
    allowed = recipe.recommendable_items()   # None: every item (HRNN-Coldstart: only cold items)
    if allowed is None:
        assert torch.isfinite(scores).all()
    else:
        assert 0 < allowed.sum() < dm.n_items and not allowed[0]
        assert torch.isfinite(scores[:, allowed]).all() and (scores[:, ~allowed] == float("-inf")).all()

    out = save_solution_version(tmp_path / "sv", trainer, recipe, dm, {"metrics": {}})
    loaded = load_solution_version(out)
    assert type(loaded.recipe) is RECIPES[name]
    with torch.no_grad():
        assert torch.equal(loaded.recipe.score(batch), scores)

    # Padding and the user's own items are never recommended; unknown users still get a full list.
    predictor = Predictor(loaded)
    users = list(dm.user_vocab.ids[:5]) + ["never-seen-user"]
    recs = predictor.recommend(users, num_results=10)
    recommendable = set(dm.item_vocab.ids) if allowed is None else set(dm.item_vocab.to_id(allowed.nonzero()[:, 0]))
    for user, items in zip(users, recs):
        row = loaded.history_rows([user])[0]
        seen = set(dm.item_vocab.to_id(loaded.histories.items_of(row))) if row >= 0 else set()
        expected = min(10, len(recommendable - seen))
        assert len(items) == expected
        ids = [r.item_id for r in items]
        assert len(set(ids)) == expected and all(i in recommendable for i in ids)
        assert not seen & set(ids)
        assert all(a.score >= b.score for a, b in zip(items, items[1:]))


def test_popularity_count_counts_distinct_users(datamodule, tmp_path):
    dm = datamodule
    recipe, _ = fit(RECIPES["popularity_count"], dm, tmp_path)
    train = dm.split.train
    owner = np.repeat(np.arange(len(train)), train.lengths)
    pairs = np.unique(owner * dm.n_items + train.item_idx)
    expected = np.bincount(pairs % dm.n_items, minlength=dm.n_items)
    assert recipe.user_counts.numpy().tolist() == expected.tolist()
    assert recipe.n_users.item() == len(train)
