"""Contextual fields (DEVICE, ...) start as small vectors, so they do not swamp the items they are added to."""

import torch

from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.models.context_embeddings import ContextEmbeddings
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.user_personalization import UserPersonalization
from tests.conftest import fit_small


def test_tables_sum_fields_and_index_zero_is_no_value():
    torch.manual_seed(0)
    tables = ContextEmbeddings([4, 3], dim=8)
    context = torch.tensor([[1, 2], [0, 0], [3, 0]])
    out = tables(context)
    torch.testing.assert_close(out[0], tables[0].weight[1] + tables[1].weight[2])
    assert torch.count_nonzero(out[1]) == 0
    assert tables(None) is None and ContextEmbeddings([], 8)(context) is None
    assert tables[0].weight[1:].std() < 0.05


def test_recipes_start_context_vectors_at_the_scale_of_item_vectors():
    data = PreparedData(demo_dataset_group(n_users=120, n_items=50, seed=1), split="leave_one_out")
    for cls in (UserPersonalization, HRNNMeta):
        recipe = cls.from_data(data.describe())
        assert len(recipe.context_embeddings) == len(recipe.next_context_embeddings) == 1       # DEVICE
        item_norm = recipe.model.item_embedding.weight[1:].norm(dim=1).mean()
        for tables in (recipe.context_embeddings, recipe.next_context_embeddings):
            context_norm = tables[0].weight[1:].norm(dim=1).mean()
            assert context_norm < 3 * item_norm, cls.__name__


def test_user_personalization_learns_the_planted_device_price_effect(tmp_path):
    """The demo data's mobile sessions pick cheaper items, desktop ones dearer (data/synthetic.py): asked with
    `context={"DEVICE": ...}`, the trained model's lists follow."""
    import numpy as np
    import pytorch_lightning as pl

    from personalize_torch.serving.inference.predictor import Predictor, RequestOptions
    from personalize_torch.solution_version import load_solution_version, save_solution_version

    pl.seed_everything(0)
    data = PreparedData(demo_dataset_group(n_users=300, n_items=80, seed=3), split="leave_one_out")
    fit = fit_small(UserPersonalization, data, max_epochs=6, trainer_args={"limit_val_batches": 0},
                    hidden_dimension=16, bptt=10)
    predictor = Predictor(load_solution_version(save_solution_version(tmp_path / "up", fit.trainer, fit.recipe, data,
                                                                      {})))
    price = np.log(predictor.solution.items.set_index("ITEM_ID")["PRICE"].astype(float))
    users = list(predictor.solution.user_vocab.ids[:200])

    def mean_log_price(device: str) -> float:
        lists = predictor.recommend(users, 10, options=RequestOptions(context={"DEVICE": device}))
        return float(np.mean([price[r.item_id] for recs in lists for r in recs]))

    mobile, desktop = mean_log_price("mobile"), mean_log_price("desktop")
    assert desktop - mobile > 0.1 * price.std(), (mobile, desktop)
