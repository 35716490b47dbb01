"""Similar-Items: co-interaction pairs, text features, and neighbours of cold items that share their genres."""

import numpy as np
import pytest
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.data.text_features import build_text_tokens
from personalize_torch.errors import InputError
from personalize_torch.recipes.similar_items import SimilarItems, cointeraction_pairs
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import compose_train_config


def test_cointeraction_pairs_within_the_window_both_ways_without_repeats_or_padding():
    items = torch.tensor([[0, 1, 2, 2, 3]])
    pairs = set(zip(*(t.tolist() for t in cointeraction_pairs(items, 2))))
    # distance 1: (1,2) (2,3); distance 2: (1,2) (2,3); (2,2) is a repeat; padding never pairs
    assert pairs == {(1, 2), (2, 1), (2, 3), (3, 2)}
    assert len(cointeraction_pairs(items, 2)[0]) == 8


def test_text_tokens_hash_words_of_the_textual_field():
    group = demo_dataset_group(n_users=60, n_items=40)
    data = PreparedData(group, check_minimum=False)
    tokens = build_text_tokens(group.items, group.schemas.get(C.ITEMS), data.item_vocab)
    assert tokens.shape[0] == data.n_items and tokens.shape[1] > 3 and (tokens[0] == 0).all()
    same = group.items["DESCRIPTION"].str.lower().str.contains("scifi").to_numpy()
    rows = data.item_vocab.to_idx(group.items["ITEM_ID"].to_numpy(dtype=object))
    scifi = set(tokens[rows[same][0]]) & set(tokens[rows[same][1]])          # "scifi", "story", ...
    assert len(scifi - {0}) >= 2


def test_bad_hyperparameters_are_named():
    with pytest.raises(InputError, match="temperature"):
        SimilarItems(n_items=5, temperature=0)
    with pytest.raises(InputError, match="id_dropout"):
        SimilarItems(n_items=5, id_dropout=1.5)


def test_cold_items_get_neighbours_that_share_their_genres(tmp_path):
    """Demo data with a large catalogue: many items have fewer than 5 interactions. Their neighbours
    come from metadata (genres, description words) and share a genre far more often than chance."""
    result = train(compose_train_config(["data.demo.n_users=300", "data.demo.n_items=500", "recipe=similar_items",
                                         "data.split=leave_one_out", "trainer.max_epochs=4", "logger=none"],
                                        tmp_path))
    predictor = Predictor.from_dir(result["solution"])
    sol = predictor.solution
    genres = {str(i): set(str(g).split("|")) for i, g in zip(sol.items["ITEM_ID"], sol.items["GENRES"])}
    counts = np.bincount(sol.histories.item_idx, minlength=sol.item_vocab.size_with_padding)
    cold = [str(i) for i in sol.item_vocab.to_id(np.flatnonzero(counts[1:] < 5) + 1)]
    assert len(cold) >= 50
    related = predictor.recommend_related(cold, 10)
    shared = np.mean([len(genres[c] & genres[r.item_id]) > 0 for c, recs in zip(cold, related) for r in recs])
    ids = list(genres)
    chance = np.mean([len(genres[a] & genres[b]) > 0 for a in ids[:200] for b in ids[:200] if a != b])
    assert shared > 2 * chance, (shared, chance)
    # an unknown item gets the popular items
    (popular,) = predictor.recommend_related(["no-such-item"], 3)
    top = np.argsort(-counts[1:], kind="stable")[:10] + 1
    assert {r.item_id for r in popular} <= set(sol.item_vocab.to_id(top))
