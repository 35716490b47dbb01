"""HRNN-Meta: Users metadata reaches the model (prepared data -> from_data -> recipe -> saved model), the
user-level state learns a planted metadata effect, context shapes the query, the demo data's planted item
genres and device/price effect are learned (HRNN-Meta beats HRNN on short histories), and a model trained
through train.py's path saves, loads, batch-scores and serves."""

import io
import json

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.metadata_features import build_user_features
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.schema import Field, Schema
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.data.synthetic import generate_demo_data
from personalize_torch.data.vocab import Vocab
from personalize_torch.recipes.hrnn import HRNN
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RequestOptions
from personalize_torch.serving.jobs.batch_inference import run_batch_inference
from personalize_torch.training import train
from tests.conftest import SMALL_DEMO, compose_train_config, fit_small


def test_user_features_are_aligned_with_the_user_vocabulary():
    users = pd.DataFrame({C.USER_ID: ["b", "a", "zz"], "TIER": ["gold", "free|trial", "gold"],
                          "AGE": [30.0, 50.0, 99.0]})
    schema = Schema(C.USERS, [Field(C.USER_ID, "string"), Field("TIER", "string", categorical=True),
                              Field("AGE", "float")])
    vocab = Vocab(["a", "b", "c"])                   # "zz" has no events, "c" no metadata
    f = build_user_features(users, schema, vocab)
    tokens = [f.value_vocab.to_id(np.array([i]))[0] if i else None for i in range(f.vocab_size)]
    decoded = [sorted(tokens[i] for i in row if i) for row in f.categorical]
    assert decoded == [[], ["TIER=free", "TIER=trial"], ["TIER=gold"], []]
    assert f.numeric_fields == ["AGE"]
    mean, std = f.numeric_stats["AGE"]                # over the users in the vocabulary: 30 and 50
    assert (mean, std) == (40.0, 10.0)
    np.testing.assert_allclose(f.numeric[:, 0], [0.0, 1.0, -1.0, 0.0])


def test_the_data_gives_the_recipe_its_user_metadata():
    data = PreparedData(demo_dataset_group(n_users=120, n_items=60, seed=2), split="leave_one_out")
    description = data.describe()
    recipe = HRNNMeta.from_data(description, hidden_dimension=16)
    hp = recipe.hparams
    assert hp.n_users == data.n_users and hp.user_value_slots == 2    # MEMBERSHIP and AGE_GROUP
    assert hp.context_cardinalities == list(description.context_cardinalities) and hp.item_value_slots > 0
    users = data.group.users.set_index(C.USER_ID)
    u = data.user_vocab.to_id(np.array([5]))[0]
    tokens = set(data.user_features.value_vocab.to_id(recipe.user_values[5][recipe.user_values[5] > 0].numpy()))
    assert tokens == {f"MEMBERSHIP={users.loc[u, 'MEMBERSHIP']}", f"AGE_GROUP={users.loc[u, 'AGE_GROUP']}"}
    counts = data.item_interaction_counts
    assert counts.sum() == len(data.sequences.item_idx) and counts[0] == 0
    created = data.item_creation_timestamps
    assert np.isnan(created[0]) and np.isfinite(created[1:]).all()


def _planted_groups(n_users=240, n_groups=4, per_group=6, length=8, seed=0):
    """Every user starts at the shared item 1, then picks items of their group only; the group is the
    user's one categorical field. After [1] only the metadata tells which items come next."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, n_users)
    first = 2 + group * per_group
    picks = first[:, None] + rng.integers(0, per_group, (n_users, length - 1))
    items = np.concatenate([np.ones((n_users, 1), dtype=np.int64), picks], 1)
    times = np.arange(length)[None, :].repeat(n_users, 0) * 60              # one session
    return torch.from_numpy(group), torch.from_numpy(items), torch.from_numpy(times), 2 + n_groups * per_group


def _group_mass(use_user_metadata: bool) -> float:
    torch.manual_seed(0)
    group, items, times, n_items = _planted_groups()
    n_users = len(group) + 1
    recipe = HRNNMeta(n_items, hidden_dimension=16, dropout=0.0, embedding_dropout=0.0, recency_mask=False,
                      use_user_metadata=use_user_metadata, n_users=n_users, user_value_vocab_size=5,
                      user_value_slots=1)
    recipe.set_user_features(torch.cat([torch.zeros(1, 1, dtype=torch.long), (group + 1)[:, None]]),
                             torch.zeros(n_users, 0))
    user_idx = torch.arange(1, n_users)
    optimizer = torch.optim.Adam(recipe.parameters(), lr=0.02)
    recipe.train()
    for _ in range(150):
        loss = recipe._loss(SequenceBatch(user_idx, items, times))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recipe.eval()
    with torch.no_grad():                                                   # history: only the shared item
        scores = recipe.score(SequenceBatch(user_idx, items[:, :1], times[:, :1]))
    own = 2 + group[:, None] * 6 + torch.arange(6)[None, :]
    return scores.gather(1, own).sum(1).mean().item()


def test_user_metadata_drives_the_first_session():
    with_meta, without = _group_mass(True), _group_mass(False)
    assert without < 0.4                      # a quarter of the mass, from the history alone
    assert with_meta > 0.8, (with_meta, without)


def test_the_next_event_context_shapes_the_scores():
    recipe = HRNNMeta(10, hidden_dimension=8, context_cardinalities=[3]).eval()
    torch.nn.init.normal_(recipe.next_context_embeddings[0].weight)
    batch = SequenceBatch(torch.tensor([0, 0]), torch.tensor([[1, 2], [1, 2]]), torch.tensor([[0, 5], [0, 5]]),
                          context=torch.tensor([[[1], [1]], [[1], [1]]]))
    with torch.no_grad():
        latest = recipe.score(batch)
        batch.next_context = torch.tensor([[1], [2]])
        asked = recipe.score(batch)
    torch.testing.assert_close(asked[0], latest[0])        # the request's context = the latest one
    assert not torch.allclose(asked[1], latest[1])


def test_context_vectors_start_at_the_scale_of_item_vectors():
    """nn.Embedding's N(0, 1) default made each context vector ~20x longer than an item vector, so the GRU
    inputs and the query were mostly the device and HRNN-Meta fell below HRNN on the demo data."""
    torch.manual_seed(0)
    recipe = HRNNMeta(50, hidden_dimension=32, context_cardinalities=[4, 6])
    item_norm = recipe.model.item_embedding.weight[1:].norm(dim=1).mean()
    for table in (*recipe.context_embeddings, *recipe.next_context_embeddings):
        assert table.weight[0].abs().sum() == 0                                 # padding / unknown
        assert table.weight[1:].norm(dim=1).mean() < 2 * item_norm


def test_hrnn_meta_learns_the_planted_genres_and_device_price_effect():
    """Demo data with short histories (800 users of 4-12 events): an item's first genre is its taste
    cluster, and mobile sessions tilt to cheap items, desktop ones to expensive. At the same short budget
    HRNN-Meta must rank the held-out items clearly better than HRNN, and its scores must move with price
    the way the device says. (Before the context vectors were initialised small, HRNN-Meta tied HRNN
    here: 0.105 vs 0.092.)"""
    demo = generate_demo_data(n_users=800, n_items=200, events_per_user=(4, 12), seed=0)
    schemas = demo_dataset_group(n_users=10, n_items=20).schemas
    data = PreparedData(DatasetGroup(demo.interactions, demo.items, demo.users, schemas), split="leave_one_out")
    ndcg = {}
    for cls in (HRNN, HRNNMeta):
        pl.seed_everything(0)
        fitted = fit_small(cls, data, max_epochs=6, batch_size=128,
                           trainer_args={"limit_val_batches": 0, "num_sanity_val_steps": 0},
                           hidden_dimension=16, loss="full", dropout=0.2, embedding_dropout=0.2, learning_rate=0.01)
        ndcg[cls] = fitted.trainer.test(fitted.recipe, datamodule=fitted.dm, verbose=False)[0]["test/ndcg_at_10"]
    assert ndcg[HRNNMeta] > ndcg[HRNN] + 0.025, ndcg                     # measured 0.146 vs 0.092

    recipe = fitted.recipe
    inputs = next(iter(fitted.dm.test_dataloader())).inputs
    device = data.context_vocabs["DEVICE"]
    recipe.eval()
    log_scores = {}
    with torch.no_grad():
        for name in ("mobile", "desktop"):
            inputs.next_context = torch.full((len(inputs.items), 1), int(device.to_idx(np.array([name]))[0]))
            log_scores[name] = recipe.score(inputs)[:, 1:].log().mean(0)
    price = demo.items.set_index(C.ITEM_ID).loc[list(data.item_vocab.ids), "PRICE"].to_numpy()
    shift = (log_scores["desktop"] - log_scores["mobile"]).numpy()
    assert np.corrcoef(shift, np.log(price))[0, 1] > 0.5                 # measured 0.79


@pytest.fixture(scope="module")
def meta_solution(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hrnn_meta")
    cfg = compose_train_config([*SMALL_DEMO, "recipe=hrnn_meta", "recipe.hidden_dimension=16", "logger=none",
                                "trainer.max_epochs=2", "data.split=leave_one_out"], tmp)
    return train(cfg)


def test_trained_hrnn_meta_saves_loads_batch_scores_and_serves(meta_solution):
    assert meta_solution["metrics"]["test"]["ndcg_at_10"] > 0
    predictor = Predictor.from_dir(meta_solution["solution"])
    recipe = predictor.recipe
    assert isinstance(recipe, HRNNMeta) and recipe.user_metadata is not None and recipe.item_metadata is not None
    assert len(recipe.context_embeddings) == 1              # DEVICE
    user = predictor.solution.user_vocab.ids[0]
    plain = predictor.recommend([user, "never-seen"], num_results=5)
    assert [len(r) for r in plain] == [5, 5]
    # The request's context and streamed events change what a known user gets.
    mobile = predictor.recommend([user], 5, options=RequestOptions(context={"DEVICE": "mobile"}))[0]
    desktop = predictor.recommend([user], 5, options=RequestOptions(context={"DEVICE": "desktop"}))[0]
    assert [r.score for r in mobile] != [r.score for r in desktop]
    last = predictor.solution.histories.timestamp.max()
    event = RecentEvents([plain[0][0].item_id], [float(last + 60)], contexts=[{"DEVICE": "mobile"}])
    after = predictor.recommend([user], 5, options=RequestOptions(events=event))[0]
    assert plain[0][0].item_id not in {r.item_id for r in after}
    out = io.StringIO()
    counts = run_batch_inference(predictor, [json.dumps({"userId": user}), json.dumps({"itemId": "i3"})], out, 5)
    assert counts == {"lines": 2, "errors": 0}
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["output"]["recommendedItems"] == [r.item_id for r in plain[0]]
    assert len(lines[1]["output"]["recommendedItems"]) == 5
