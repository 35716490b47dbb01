"""The serving cache of users' model states (serving/inference/user_states.py): the same recommendations as computing
them, no transformer pass for a cached user, and events streamed since training still change them at once."""

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from personalize_torch.data.batching import sequence_batch
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference import user_states
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RequestOptions


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    from tests.conftest import tiny_user_personalization

    return tiny_user_personalization(tmp_path_factory.mktemp("up"), bptt=6, limit_train_batches=3)


def ranked(results):
    return [[(r.item_id, round(r.score, 5)) for r in row] for row in results]


def unseen_items(predictor: Predictor, user: str, n: int) -> list[str]:
    sol = predictor.solution
    seen = set(sol.item_vocab.to_id(sol.histories.items_of(sol.history_rows([user])[0])))
    return [i for i in sol.item_vocab.ids if i not in seen][:n]


def test_cached_states_give_the_same_recommendations_without_the_transformer(up, monkeypatch):
    cached = Predictor(up.solution, cache_user_states=True)
    users = list(up.solution.user_vocab.ids[:20])
    mobile = RequestOptions(context={"DEVICE": "mobile"})
    expected, expected_mobile = up.recommend(users, 10), up.recommend(users, 10, options=mobile)
    cached.user_states.warm()
    assert bool(cached.user_states.filled.all())

    def no_transformer(*_):
        raise AssertionError("a cached user's state was computed again")

    monkeypatch.setattr(cached.recipe, "user_state", no_transformer)
    assert ranked(cached.recommend(users, 10)) == ranked(expected)
    assert ranked([cached.recommend([u], 10)[0] for u in users]) == ranked(expected)
    # The request's context is added on top of the cached state, as it is to a computed one.
    assert ranked(cached.recommend(users, 10, options=mobile)) == ranked(expected_mobile)
    assert ranked(expected_mobile) != ranked(expected)


def test_streamed_events_and_unknown_users_are_computed_and_not_cached(up):
    cached = Predictor(up.solution, cache_user_states=True)
    user, other = up.solution.user_vocab.ids[:2]
    stored_only = up.recommend([user], 10)
    events = RecentEvents(unseen_items(up, user, 2), [2e9, 2e9 + 1], contexts=[{"DEVICE": "desktop"}] * 2)
    with_events = up.recommend([user], 10, options=RequestOptions(events=events))
    assert ranked(with_events) != ranked(stored_only)
    assert ranked(cached.recommend([user], 10)) == ranked(stored_only)            # now cached
    assert ranked(cached.recommend([user], 10, options=RequestOptions(events=events))) == ranked(with_events)
    assert ranked(cached.recommend([user], 10)) == ranked(stored_only)            # the cache was not overwritten
    # One call mixing a cached user, a user with streamed events and an unknown user.
    mixed = cached.recommend([other, user, "nobody"], 10, options=RequestOptions(events=[None, events, None]))
    assert ranked(mixed) == ranked(up.recommend([other], 10) + with_events + up.recommend(["nobody"], 10))
    row = up.solution.history_rows([user])[0]
    assert int(cached.user_states.filled.sum()) == 2 and bool(cached.user_states.filled[row])


def test_no_cache_for_recipes_without_a_user_state_or_too_many_users(up, trained_solution, monkeypatch):
    popularity = Predictor.from_dir(trained_solution["solution"], cache_user_states=True)
    assert popularity.user_states is None and popularity.recommend(["u1"], 3)
    monkeypatch.setattr(user_states, "MAX_CACHED_FLOATS", 10)
    too_big = Predictor(up.solution, cache_user_states=True)
    assert too_big.user_states is None
    user = up.solution.user_vocab.ids[0]
    assert ranked(too_big.recommend([user], 5)) == ranked(up.recommend([user], 5))


def test_put_events_change_a_cached_users_recommendations_at_once(up):
    cached = Predictor.load_warm(up.solution.path, cache_user_states=True)
    assert bool(cached.user_states.filled.all())
    client = TestClient(create_app({"shop": cached}))
    user = up.solution.user_vocab.ids[3]
    ask = {"campaignArn": "shop", "userId": user, "numResults": 10}
    before = [x["itemId"] for x in client.post("/recommendations", json=ask).json()["itemList"]]
    assert before == [r.item_id for r in up.recommend([user], 10)[0]]
    new = unseen_items(up, user, 3)
    put = client.post("/events", json={"trackingId": "t", "userId": user, "sessionId": "s", "eventList": [
        {"eventType": "click", "itemId": i, "sentAt": 2e9 + k, "properties": '{"DEVICE": "mobile"}'}
        for k, i in enumerate(new)]})
    assert put.status_code == 200
    after = [x["itemId"] for x in client.post("/recommendations", json=ask).json()["itemList"]]
    events = RecentEvents(new, [2e9, 2e9 + 1, 2e9 + 2], contexts=[{"DEVICE": "mobile"}] * 3)
    assert after == [r.item_id for r in up.recommend([user], 10, options=RequestOptions(events=events))[0]]
    assert after != before and not set(new) & set(after)


def test_warm_computes_every_user_in_batches(up):
    cache = user_states.UserStateCache.for_recipe(up.recipe, up.solution.histories, up.device)
    cache.warm(batch_size=7)
    rows = np.arange(len(up.solution.histories))
    fresh = user_states.UserStateCache.for_recipe(up.recipe, up.solution.histories, up.device)
    with torch.no_grad():
        one_by_one = torch.cat([fresh.states(sequence_batch(up.solution.histories, [r], up.recipe.input_length), [r])
                                for r in rows])
    assert torch.allclose(cache.table, one_by_one, atol=1e-5)
