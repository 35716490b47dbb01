"""Items metadata as model inputs."""

import numpy as np
import pandas as pd
import pytest
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.metadata_features import build_item_features
from personalize_torch.data.schema import Field, Schema
from personalize_torch.data.vocab import Vocab
from personalize_torch.recipes.user_personalization import UserPersonalization


def test_categorical_multi_values_and_standardized_numbers():
    items = pd.DataFrame({C.ITEM_ID: ["b", "a", "zz"], "GENRES": ["Comedy|Drama", "Drama", "Horror"],
                          "PRICE": [10.0, 30.0, np.nan], "DESCRIPTION": ["x", "y", "z"]})
    schema = Schema(C.ITEMS, [Field(C.ITEM_ID, "string"), Field("GENRES", "string", categorical=True),
                              Field("PRICE", "float", nullable=True), Field("DESCRIPTION", "string", textual=True)])
    vocab = Vocab(["a", "b", "c"])  # "zz" is not in the catalogue, "c" has no metadata
    f = build_item_features(items, schema, vocab)
    assert list(f.value_vocab.ids) == ["GENRES=Comedy", "GENRES=Drama"]
    assert f.categorical.tolist() == [[0, 0], [2, 0], [1, 2], [0, 0]]    # padding, a, b, c
    assert f.numeric_fields == ["PRICE"]
    assert f.numeric[:, 0].tolist() == pytest.approx([0.0, 1.0, -1.0, 0.0])  # (x - 20) / 10


def test_metadata_places_an_item_without_interactions():
    recipe = UserPersonalization(n_items=4, hidden_dimension=8, bptt=4, item_value_vocab_size=3, item_value_slots=1,
                                 item_numeric_features=0)
    recipe.set_item_features(torch.tensor([[0], [1], [1], [2]]), torch.zeros(4, 0))
    with torch.no_grad():
        recipe.model.item_embedding.weight.zero_()       # no item has learned anything from interactions
        table = recipe.item_table()
    assert torch.equal(table[1], table[2])              # same metadata -> same vector
    assert not torch.equal(table[1], table[3])
    assert torch.equal(table[0], torch.zeros(8))        # padding stays empty
