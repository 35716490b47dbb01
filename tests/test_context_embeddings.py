"""Contextual fields (DEVICE, ...) start as small vectors, so they do not swamp the items they are added to."""

import torch

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.models.context_embeddings import ContextEmbeddings
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.training import make_recipe


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
    dm = InteractionsDataModule(demo_dataset_group(n_users=120, n_items=50, seed=1), split="leave_one_out")
    dm.setup()
    for cls in (UserPersonalization, HRNNMeta):
        recipe = make_recipe(cls, dm)
        assert len(recipe.context_embeddings) == len(recipe.next_context_embeddings) == 1       # DEVICE
        item_norm = recipe.model.item_embedding.weight[1:].norm(dim=1).mean()
        for tables in (recipe.context_embeddings, recipe.next_context_embeddings):
            context_norm = tables[0].weight[1:].norm(dim=1).mean()
            assert context_norm < 3 * item_norm, cls.__name__
