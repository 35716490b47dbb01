"""Serving large solution versions (bench/serving_scale.py): user states stored with the solution version and
memory-mapped, ids looked up without a dict of every id, the filter catalogue built from encoded histories, and
large catalogues ranked without the dense softmax. Each gives what the former way gave."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from personalize_torch.data.description import DataDescription
from personalize_torch.data.metadata_features import MetadataFeatures
from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.stored_ids import StoredIds
from personalize_torch.data.vocab import Vocab
from personalize_torch.filters import Catalogue, Filter
from personalize_torch.metrics.functional import ranked_items
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.inference import predictor as predictor_module
from personalize_torch.serving.inference.filter_catalogue import build_catalogue, history_table
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RequestOptions
from personalize_torch.serving.inference.rounded_table import RoundedItemTable, packed_bfloat16_available
from personalize_torch.serving.inference.top_k import items_near_top, top_items
from personalize_torch.solution_version import USER_STATES_FILE, load_solution_version, write_solution_version

GENRES = ["Action", "Comedy", "Horror", "Kids"]
HORROR = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")'
PURCHASED = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'


@pytest.fixture(autouse=True, scope="module")
def _global_rng_unchanged():
    """The models trained and built here draw from torch's global generator: put its state back afterwards,
    so the modules after this one train the models they train without it."""
    with torch.random.fork_rng():
        yield


def ranked(results):
    """Items and scores; scores to 6 places: a matmul's last bits depend on the batch's number of rows."""
    return [[(r.item_id, round(r.score, 6)) for r in row] for row in results]


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """The trained tiny User-Personalization of the other serving tests (DEVICE context, clicks/purchases)."""
    from tests.conftest import tiny_user_personalization

    return tiny_user_personalization(tmp_path_factory.mktemp("up"), bptt=6, limit_train_batches=3)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A random User-Personalization solution version written as bench/serving_scale.py writes one: 300
    users (some with more than 100 clicks, the filters' quota), 3,000 items with a GENRES value each."""
    rng = np.random.default_rng(7)
    n_users, n_items = 300, 3000
    genre = rng.integers(0, len(GENRES), n_items)
    features = MetadataFeatures(np.concatenate([[0], genre + 1]).astype(np.int64).reshape(-1, 1),
                                np.zeros((n_items + 1, 0), dtype=np.float32), Vocab([f"GENRES={g}" for g in GENRES]))
    description = DataDescription(n_items=n_items + 1, n_users=n_users + 1, event_type_names=("click", "purchase"),
                                  median_history_length=8.0, item_features=features)
    torch.manual_seed(0)   # (the global generator's state comes back after this module)
    recipe = UserPersonalization.from_data(description, hidden_dimension=16, bptt=20)
    with torch.no_grad():
        recipe.model.item_embedding.weight.normal_(0.0, 0.5)
        recipe.item_counts.copy_(torch.from_numpy(rng.integers(0, 50, n_items + 1).astype(np.float32)))
    recipe.eval()
    lengths = rng.integers(1, 15, n_users)
    lengths[:5] = 130 + 10 * np.arange(5)                    # beyond MAX_INTERACTIONS_PER_EVENT_TYPE
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_events = int(offsets[-1])
    histories = UserSequences(np.arange(1, n_users + 1, dtype=np.int64), offsets,
                              rng.integers(1, n_items + 1, n_events).astype(np.int64),
                              1_700_000_000 + np.arange(n_events, dtype=np.int64),
                              event_type=np.where(rng.random(n_events) < 0.2, 2, 1).astype(np.int64))
    user_ids = StoredIds(pa.array([f"user-{u:04d}" for u in rng.permutation(n_users)]))   # not sorted
    items = pd.DataFrame({"ITEM_ID": [f"i{i}" for i in range(n_items)], "GENRES": np.asarray(GENRES)[genre]})

    def write_checkpoint(path):
        torch.save({"state_dict": recipe.state_dict(), "hyper_parameters": dict(recipe.hparams)}, path)

    path = tmp_path_factory.mktemp("synthetic") / "solution"
    write_solution_version(path, write_checkpoint, recipe, items, None, user_ids, histories, {},
                           Vocab(["click", "purchase"]), {"data_description": description.sizes(),
                                                          "item_features": features.describe()})
    return path


def without_states(path, tmp_path):
    """A copy of a solution version as written before user states were stored."""
    old = tmp_path / "old"
    shutil.copytree(path, old)
    (old / USER_STATES_FILE).unlink()
    (old / "manifest.json").unlink()    # nor had a checksum manifest
    info = json.loads((old / "solution.json").read_text())
    del info["manifest"]
    (old / "solution.json").write_text(json.dumps(info))
    return old


# --- stored user states ------------------------------------------------------------------------------------

def test_user_states_are_written_at_save_and_memory_mapped(up):
    sol = up.solution
    assert (sol.path / USER_STATES_FILE).exists()
    assert isinstance(sol.user_states, np.memmap) and not sol.user_states.flags.writeable
    assert sol.user_states.shape == (len(sol.histories), sol.recipe.user_state_dimension)
    from personalize_torch.data.batching import sequence_batch

    rows = np.arange(len(sol.histories))
    with torch.no_grad():
        computed = sol.recipe.user_state(sequence_batch(sol.histories, rows, sol.recipe.input_length))
    assert np.allclose(sol.user_states, computed.numpy(), atol=1e-5)


def test_stored_states_give_the_computed_recommendations_without_the_transformer(up, tmp_path, monkeypatch):
    computed = Predictor.from_dir(without_states(up.solution.path, tmp_path))
    assert computed.solution.user_states is None and computed.stored_states is None
    stored = Predictor.from_dir(up.solution.path)
    users = list(up.solution.user_vocab.ids[:30])
    mobile = RequestOptions(context={"DEVICE": "mobile"})
    purchased = RequestOptions(filter=Filter.parse(PURCHASED))
    expected = [computed.recommend(users, 10, options=o) for o in (None, mobile, purchased)]

    def no_transformer(*_):
        raise AssertionError("a stored user's state was computed")

    monkeypatch.setattr(stored.recipe, "user_state", no_transformer)
    got = [stored.recommend(users, 10, options=o) for o in (None, mobile, purchased)]
    for g, e in zip(got, expected):
        assert [[i for i, _ in row] for row in ranked(g)] == [[i for i, _ in row] for row in ranked(e)]
        assert np.allclose([s for row in ranked(g) for _, s in row], [s for row in ranked(e) for _, s in row],
                           rtol=1e-5)
    # cached in memory too: filled from the stored states, not computed
    cached = Predictor.load_warm(up.solution.path, cache_user_states=True)
    assert bool(cached.user_states.filled.all())
    assert torch.equal(cached.user_states.table, torch.from_numpy(np.array(up.solution.user_states)))


def test_a_solution_version_without_stored_states_still_serves(up, tmp_path):
    old = without_states(up.solution.path, tmp_path)
    warm = Predictor.load_warm(old, cache_user_states=True)   # computes every user's state, as before
    assert warm.stored_states is None and bool(warm.user_states.filled.all())
    plain = Predictor.from_dir(old)                           # computes at every request
    users = list(up.solution.user_vocab.ids[:10])
    assert ranked(warm.recommend(users, 5)) == ranked(plain.recommend(users, 5))
    events = RecentEvents([up.solution.item_vocab.ids[0]], [2e9])
    assert ranked(warm.recommend(users[:1], 5, options=RequestOptions(events=events))) == \
        ranked(plain.recommend(users[:1], 5, options=RequestOptions(events=events)))


def test_streamed_events_and_unknown_users_are_computed_next_to_stored_states(up):
    stored = Predictor.from_dir(up.solution.path)
    user = up.solution.user_vocab.ids[0]
    events = RecentEvents([up.solution.item_vocab.ids[1], up.solution.item_vocab.ids[2]], [2e9, 2e9 + 1])
    alone = stored.recommend([user], 10)
    with_events = stored.recommend([user], 10, options=RequestOptions(events=events))
    assert ranked(with_events) != ranked(alone)
    mixed = stored.recommend([user, user, "nobody"], 10, options=RequestOptions(events=[None, events, None]))
    assert ranked(mixed) == ranked(alone + with_events + stored.recommend(["nobody"], 10))


def test_update_writes_the_grown_models_user_states(up, tmp_path):
    from personalize_torch.update import update_solution_version

    items = tmp_path / "new_items.csv"
    up.solution.items.iloc[[0]].assign(ITEM_ID="brand-new").to_csv(items, index=False)   # a copy of item 1
    out = load_solution_version(update_solution_version(up.solution.path, items, tmp_path / "updated"))
    assert out.user_states is not None and out.user_states.shape == up.solution.user_states.shape
    from personalize_torch.data.batching import sequence_batch

    with torch.no_grad():
        computed = out.recipe.user_state(sequence_batch(out.histories, np.arange(len(out.histories)),
                                                        out.recipe.input_length))
    assert np.allclose(out.user_states, computed.numpy(), atol=1e-5)


# --- ids ---------------------------------------------------------------------------------------------------

def test_stored_ids_look_up_as_a_vocab_does():
    ids = ["u1", "u10", "", "ünï", "x" * 300, "u2", "U1"]
    stored, vocab = StoredIds(pa.array(ids)), Vocab(ids)
    asked = ["u1", "u2", "nobody", "", "ünï", "x" * 300, "U1", "u1 ", None, 3]
    assert stored.to_idx(asked).tolist() == vocab.to_idx(asked).tolist() == [1, 6, 0, 3, 4, 5, 7, 0, 0, 0]
    assert stored.to_idx(asked, unknown=-1).tolist() == vocab.to_idx(asked, unknown=-1).tolist()
    many = asked * 20   # the vectorized path (more than 64 ids)
    assert stored.to_idx(many).tolist() == vocab.to_idx(many).tolist()
    assert list(stored.to_id([2, 5])) == list(vocab.to_id([2, 5])) and list(stored.ids) == list(vocab.ids)
    assert len(stored) == len(vocab) and stored.size_with_padding == vocab.size_with_padding
    with pytest.raises(ValueError, match="padding"):
        stored.to_id([0])
    with pytest.raises(ValueError, match="unique"):
        StoredIds(pa.array(["a", "b", "a"]))
    assert list(stored.extended(["new", "u1"]).ids) == ids + ["new"]


def test_unknown_users_get_the_cold_start_list_as_before(up):
    sol = up.solution
    assert sol.history_rows(["nobody", sol.user_vocab.ids[3], "", "NOBODY"]).tolist() == [-1, 3, -1, -1]
    cold = up.recommend(["nobody"], 10)[0]
    popular = sol.recipe.item_counts / sol.recipe.item_counts.sum()
    order = ranked_items(torch.where(torch.arange(len(popular)) > 0, popular, -torch.inf).unsqueeze(0), 10)[0]
    assert [r.item_id for r in cold] == list(sol.item_vocab.to_id(order.numpy()))
    assert [r.score for r in cold] == pytest.approx(popular[order].tolist())
    assert ranked(up.recommend([None, "nobody"], 10)) == ranked([cold, cold])


# --- filter catalogue --------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [PURCHASED, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
                                        'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)', HORROR])
def test_the_catalogue_from_encoded_histories_filters_as_the_one_from_id_strings(synthetic, expression):
    sol = load_solution_version(synthetic)
    assert int(sol.histories.lengths.max()) > 100
    new = build_catalogue(sol)
    old = Catalogue.build(sol.item_vocab.ids, items=sol.items, interactions=history_table(sol),
                          user_ids=sol.user_vocab.ids)
    users = list(sol.user_vocab.ids) + ["nobody"]
    f = Filter.parse(expression)
    assert torch.equal(f.item_mask(new, list(new.user_rows(users))), f.item_mask(old, list(old.user_rows(users))))
    streamed = pd.DataFrame({"USER_ID": [users[0], "nobody"], "ITEM_ID": ["i5", "i6"], "EVENT_TYPE": ["purchase"] * 2,
                             "TIMESTAMP": [2_000_000_000] * 2})
    assert torch.equal(f.item_mask(new.with_recent_events(users[:1] + ["nobody"], streamed), [0, 1]),
                       f.item_mask(old.with_recent_events(users[:1] + ["nobody"], streamed), [0, 1]))


# --- large catalogues --------------------------------------------------------------------------------------

def test_top_items_ranks_as_ranked_items():
    g = torch.Generator().manual_seed(0)
    for trial in range(12):
        n = 20_000 + 3_001 * trial
        scores = torch.randn(3, n, generator=g)
        if trial % 3 == 0:
            scores = torch.round(scores * 4) / 4                        # many ties
        if trial % 4 == 0:
            scores[:, torch.randint(0, n, (n // 2,), generator=g)] = -torch.inf
        if trial % 5 == 0:
            scores[1, 3:] = -torch.inf                                  # fewer than k items left
        for k in (1, 5):
            assert torch.equal(top_items(scores, k), ranked_items(scores, k))


def same_answers(got, expected, first_pass):
    """The same items in the same order; the same scores (to 6 places), or with the bfloat16 first pass, whose
    softmax normaliser is partly approximate (within a factor exp(+-bound), ~0.1 here), within 5%."""
    if first_pass == "float32":
        assert ranked(got) == ranked(expected)
        return
    assert [[r.item_id for r in row] for row in got] == [[r.item_id for r in row] for row in expected]
    assert [r.score for row in got for r in row] == pytest.approx([r.score for row in expected for r in row],
                                                                  rel=5e-2)


@pytest.mark.parametrize("first_pass", ["float32", "bfloat16"])
def test_candidate_ranking_gives_the_dense_rankings_answers(synthetic, monkeypatch, first_pass):
    sol = load_solution_version(synthetic)
    dense = Predictor(sol, cache_user_states=True)
    assert not dense._ranks_candidates(RequestOptions())                 # 3,000 items: the dense path
    monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1)
    fast = Predictor(sol, cache_user_states=True, first_pass=first_pass)
    assert fast._ranks_candidates(RequestOptions())
    assert (fast.scorer.rounded is not None) == (first_pass == "bfloat16")
    users = list(sol.user_vocab.ids[:40]) + ["nobody", None]
    events = [None] * len(users)
    events[1] = events[-2] = RecentEvents(["i1", "i2", "unknown item"], [2e9, 2e9 + 1, 2e9 + 2], ["purchase"] * 3)
    for options in (RequestOptions(), RequestOptions(filter=Filter.parse(HORROR)),
                    RequestOptions(filter=Filter.parse(PURCHASED)), RequestOptions(events=events),
                    RequestOptions(filter=Filter.parse(PURCHASED), events=events)):
        for k in (1, 25):
            monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1 << 30)
            expected = dense.recommend(users, k, options=options)
            monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1)
            same_answers(fast.recommend(users, k, options=options), expected, first_pass)
    items = ["i1", "i7", "nothing"]
    monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1 << 30)
    expected = dense.recommend_related(items, 10, users[:3])
    monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1)
    same_answers(fast.recommend_related(items, 10, users[:3]), expected, first_pass)


def test_a_large_synthetic_solution_serves_over_http(synthetic, monkeypatch):
    from fastapi.testclient import TestClient

    from personalize_torch.serving.http.app import create_app

    monkeypatch.setattr(predictor_module, "CANDIDATE_MIN_ITEMS", 1)
    predictor = Predictor.load_warm(synthetic, cache_user_states=True)
    client = TestClient(create_app({"shop": predictor}, filters={"no_horror": Filter.parse(HORROR)}))
    user = predictor.solution.user_vocab.ids[7]
    body = {"campaignArn": "shop", "userId": user, "numResults": 7, "filterArn": "filter/no_horror",
            "metadataColumns": {"ITEMS": ["GENRES"]}}
    got = client.post("/recommendations", content=json.dumps(body)).json()["itemList"]
    assert [x["itemId"] for x in got] == [r.item_id for r in predictor.recommend(
        [user], 7, options=RequestOptions(filter=Filter.parse(HORROR)))[0]]
    assert len(got) == 7 and all(x["metadata"]["GENRES"] != "Horror" for x in got)


def test_the_rounded_tables_first_pass_keeps_every_item_of_the_exact_top_k():
    """Rounded logits stay within the computed bound, and the items within twice the bound of the k-th
    approximate logit, ranked by their exact logits, are the exact top k, near-ties (closer than bfloat16
    can tell apart) and masked items included."""
    g = torch.Generator().manual_seed(3)
    n, dim = 70_000, 32
    table = torch.randn(n, dim, generator=g) * 0.3
    table[1000:1100] = table[999] + torch.randn(100, dim, generator=g) * 1e-4        # near-ties
    bias = torch.randn(n, generator=g)
    for packed in {False, packed_bfloat16_available(torch.device("cpu"))}:
        rounded = RoundedItemTable(table, bias, packed)
        query = torch.randn(5, dim, generator=g) * torch.tensor([[1.0], [3.0], [0.1], [10.0], [1.0]])
        query[0] = table[999] * 8                                   # its top k among the near-ties
        exact = query @ table.T + bias
        approximate = rounded.logits(query)
        bound = rounded.error_bound(query)
        assert (approximate[:, 0] == -torch.inf).all()                       # the padding item
        assert ((approximate[:, 1:].float() - exact[:, 1:]).abs().amax(1) <= bound).all()
        exact[:, 0] = -torch.inf
        peak, total = rounded.scan(query, torch.empty_like(approximate))        # the softmax's normaliser
        assert ((total.log() + peak - torch.logsumexp(exact.double(), 1)).abs() <= bound).all()
        approximate[4, ::2] = -torch.inf                             # masked items are never candidates
        exact[4, ::2] = -torch.inf
        for k in (1, 25):
            for r, items in enumerate(items_near_top(approximate, k, 2 * bound)):
                assert torch.isfinite(approximate[r, items].float()).all()
                best = items[ranked_items(exact[r, items].unsqueeze(0), k)[0]]
                assert torch.equal(best, ranked_items(exact[r:r + 1], k)[0])
                assert len(items) < n // 20                              # a first pass, not the catalogue
