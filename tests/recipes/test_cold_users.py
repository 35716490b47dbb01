"""Users the solution does not know, described by their Users metadata (in the Users dataset at training, or
sent with PutUsers): HRNN-Meta and User-Personalization score them from that metadata, through the
predictor and batch inference alike, well above Popularity-Count on planted data (bench/cold_users.py)."""

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cold_users import baselines, cold_metrics, first_events, planted_cold_users, train_and_save
from personalize_torch.data import constants as C
from personalize_torch.data.metadata_features import build_user_features, encode_metadata_rows
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.schema import Field, Schema
from personalize_torch.data.vocab import Vocab
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.inference.predictor import Predictor, RequestOptions
from personalize_torch.serving.jobs.batch_inference import run_batch_inference
from personalize_torch.solution_version import build_saved_recipe, load_solution_version
from tests.conftest import tiny_user_personalization


def test_rows_outside_the_vocabulary_are_encoded_as_training_encoded_the_known_ones():
    users = pd.DataFrame({C.USER_ID: ["a", "b", "c"], "TIER": ["gold", "free|trial", "gold"], "AGE": [30.0, 50.0, 9]})
    schema = Schema(C.USERS, [Field(C.USER_ID, "string"), Field("TIER", "string", categorical=True),
                              Field("AGE", "float")])
    trained = build_user_features(users, schema, Vocab(["a", "b"]))       # "c" had no events
    described = json.loads(json.dumps(trained.describe()))                # as solution.json keeps it
    values, numbers = encode_metadata_rows(users.drop(columns=[C.USER_ID]), described, 2, 1)
    np.testing.assert_array_equal(values[:2], trained.categorical[1:])
    np.testing.assert_allclose(numbers[:2], trained.numeric[1:])
    np.testing.assert_array_equal(values[2], trained.categorical[1 + 0][:1].tolist() + [0])   # gold, as "a"
    np.testing.assert_allclose(numbers[2], [(9 - 40.0) / 10.0])
    # field names match case-insensitively (PutUsers' camelCase keys become UPPER_SNAKE); values the model
    # never saw, and fields it does not read, are the unknown slot
    sent = pd.DataFrame([{"tier": "platinum|free", "HEIGHT": "2"}, {}])
    values, numbers = encode_metadata_rows(sent, described, 2, 1)
    assert values.tolist() == [[trained.value_vocab.to_idx(np.array(["TIER=free"]))[0], 0], [0, 0]]
    assert numbers.tolist() == [[0.0], [0.0]]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Small planted data (800 users, 20% cold), its prepared training data and the baselines."""
    group, cold = planted_cold_users(n_users=800, n_segments=10, items_per_segment=15, seed=0)
    cold_first = first_events(cold)
    data = PreparedData(group, split="leave_one_out", seed=0)
    return tmp_path_factory.mktemp("cold"), group, cold_first, data, baselines(group, cold_first)


@pytest.mark.parametrize("recipe_cls, epochs", [(UserPersonalization, 15), (HRNNMeta, 15)])
def test_cold_users_get_lists_from_their_metadata_well_above_popularity(planted, recipe_cls, epochs):
    """Cold users' first events, scored through the served path (not in the histories; metadata from the
    Users dataset the solution was trained with): NDCG@10 >= 1.5x Popularity-Count's. Batch inference gives
    them the same lists; PutUsers' properties (a user in no dataset) give the same list as the same
    description in the Users dataset; a user with neither events nor metadata gets the popular items."""
    tmp, group, cold_first, data, base = planted
    solution, _ = train_and_save(recipe_cls, data, tmp / recipe_cls.recipe_name, epochs, seed=0,
                                 hidden_dimension=32)
    _, ndcg = cold_metrics(solution, cold_first)
    popularity = base["Popularity-Count"][1]
    assert ndcg >= 1.5 * popularity, (ndcg, base)

    predictor = Predictor(load_solution_version(solution))
    users = group.users.set_index(C.USER_ID)
    cold_user = cold_first[C.USER_ID].iloc[0]
    described = predictor.recommend([cold_user], 10)[0]
    out = io.StringIO()
    run_batch_inference(predictor, [json.dumps({"userId": cold_user})], out, 10)
    assert json.loads(out.getvalue())["output"]["recommendedItems"] == [r.item_id for r in described]

    known_user = group.interactions[C.USER_ID].iloc[0]
    assert predictor.reads_user_metadata_of(cold_user) and not predictor.reads_user_metadata_of(known_user)
    properties = {"segment": users.loc[cold_user, "SEGMENT"], "region": users.loc[cold_user, "REGION"]}
    sent = predictor.recommend(["someone-new"], 10, options=RequestOptions(user_metadata=properties))[0]
    assert [r.item_id for r in sent] == [r.item_id for r in described]
    nobody = predictor.recommend(["someone-new"], 10)[0]
    counts = predictor.recipe.item_counts      # the training events' popularity, the fallback's order
    popular = predictor.solution.item_vocab.to_id(torch.argsort(counts, descending=True, stable=True)[:10].numpy())
    assert [r.item_id for r in nobody] == list(popular) != [r.item_id for r in described]
    # a row's sent properties replace the dataset's: another segment, another list
    other = users[users["SEGMENT"] != properties["segment"]]["SEGMENT"].iloc[0]
    moved = predictor.recommend([cold_user], 10, options=RequestOptions(user_metadata={"SEGMENT": other}))[0]
    assert [r.item_id for r in moved] != [r.item_id for r in described]


def test_user_personalization_without_users_metadata_loads_as_before(planted):
    """A User-Personalization model saved before it read Users metadata (no such hyperparameters, no user
    tables in its state dict) loads and scores as it did; `use_user_metadata=False` builds that model."""
    _, _, _, data, _ = planted
    torch.manual_seed(0)
    plain = UserPersonalization.from_data(data.describe(), hidden_dimension=16, use_user_metadata=False)
    assert plain.user_metadata_shape is None and "user_values" not in plain.state_dict()
    saved = {k: v for k, v in plain.hparams.items()
             if k not in ("use_user_metadata", "n_users", "user_value_vocab_size", "user_value_slots",
                          "user_numeric_features")}
    loaded = build_saved_recipe("user_personalization", saved)
    loaded.load_state_dict(plain.state_dict())   # strict: the same keys
    assert loaded.user_metadata_shape is None
    described = UserPersonalization.from_data(data.describe(), hidden_dimension=16)
    assert described.user_metadata_shape == (2, 0)   # SEGMENT, REGION


def test_the_request_context_shapes_the_list_of_a_user_known_only_by_metadata(tmp_path):
    """A user with no events, described by PutUsers' properties, on data with a DEVICE context field: the
    request's context reaches their scores as it does a known user's."""
    predictor = tiny_user_personalization(tmp_path, bptt=8, limit_train_batches=3)
    membership = str(predictor.solution.users["MEMBERSHIP"].iloc[0])

    def scores(context):
        options = RequestOptions(user_metadata={"MEMBERSHIP": membership}, context=context)
        return [r.score for r in predictor.recommend(["someone-new"], 10, options=options)[0]]

    assert scores({"DEVICE": "mobile"}) != scores({"DEVICE": "desktop"})
    popular = predictor.recommend(["someone-new"], 10, options=RequestOptions(context={"DEVICE": "mobile"}))[0]
    assert [r.score for r in popular] != scores({"DEVICE": "mobile"})
