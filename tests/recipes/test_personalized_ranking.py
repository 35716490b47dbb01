"""Personalized-Ranking: the recipe trains through train.py's path, and `Predictor.rank` re-orders a given
list (softmax scores over the list's known items, unknown items last without a score, filters, events).
The planted taste clusters of the demo data tell a learned ranking from an arbitrary one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.conftest import SMALL_DEMO, compose_train_config

from personalize_torch.data.synthetic import generate_demo_data
from personalize_torch.filters import Filter
from personalize_torch.recipes.personalized_ranking import PersonalizedRanking
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RequestOptions
from personalize_torch.serving.inference.personalized_ranking import MAX_INPUT_ITEMS, list_softmax
from personalize_torch.errors import InputError


@pytest.fixture(scope="module")
def ranking_solution(tmp_path_factory) -> dict:
    """Personalized-Ranking trained on small demo data through training.train (the train.py path)."""
    from personalize_torch.training import train

    # Small batches and 20 epochs: enough steps for the taste clusters to show (about 15 s on one core).
    cfg = compose_train_config(SMALL_DEMO + ["recipe=personalized_ranking", "logger=none", "callbacks=none",
                                             "recipe.hidden_dimension=32", "recipe.bptt=20", "recipe.num_layers=1",
                                             "recipe.dropout=0.1", "recipe.learning_rate=0.005",
                                             "data.split=leave_one_out", "data.batch_size=32",
                                             "trainer.max_epochs=20", "trainer.accelerator=cpu"],
                               tmp_path_factory.mktemp("ranking"))
    return train(cfg)


@pytest.fixture(scope="module")
def ranker(ranking_solution) -> Predictor:
    return Predictor.from_dir(ranking_solution["solution"])


@pytest.fixture(scope="module")
def truth():
    return generate_demo_data(n_users=300, n_items=120, seed=0).truth


def genres_of(predictor, item_ids):
    items = predictor.solution.items.set_index("ITEM_ID")
    return [set(str(items.loc[i, "GENRES"]).split("|")) for i in item_ids]


def test_list_softmax_hand_values():
    scores = torch.tensor([[0.2, 0.1, 0.0, 0.3], [1.0, -1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0]])
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)
    got = list_softmax(scores, keep)
    # Probabilities: each over the kept total (= softmax of their logs); the 4th is not kept.
    assert torch.allclose(got[0], torch.tensor([2 / 3, 1 / 3, 0.0, 0.0], dtype=torch.float64))
    # A row with a negative score is logits: softmax over the kept entries.
    e = np.exp([1.0, -1.0, 2.0])
    assert torch.allclose(got[1], torch.tensor([e[0], e[1], 0.0, e[2]], dtype=torch.float64) / e.sum())
    assert torch.allclose(got[2], torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64))
    # -inf (never recommended) scores 0; a list of only -inf gets equal shares, never NaN.
    inf = float("inf")
    got = list_softmax(torch.tensor([[-inf, 1.0, 0.0], [-inf, -inf, 1.0]]), torch.tensor([[1, 1, 0], [1, 1, 0]]) > 0)
    assert torch.equal(got, torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64))


def test_recipe_trains_evaluates_and_saves(ranking_solution, ranker):
    assert type(ranker.recipe) is PersonalizedRanking and ranker.solution.recipe_name == "personalized_ranking"
    val = ranking_solution["metrics"]["val"]
    assert {"ndcg_at_10", "hit_rate_at_10", "mrr"} <= set(val) and val["ndcg_at_10"] > 0
    assert "normalized_discounted_cumulative_gain_at_10" in ranking_solution["personalize_metrics"]


def test_ranking_puts_the_users_taste_cluster_first(ranker, truth):
    """For each user, 8 items of their planted cluster and 8 of other clusters, shuffled: the learned
    ranking puts far more of the user's cluster in the top half than chance (0.5) or popularity does."""
    rng = np.random.default_rng(0)
    by_cluster: dict[int, list[str]] = {}
    for item, k in truth.item_cluster.items():
        by_cluster.setdefault(k, []).append(item)
    users = [u for u in ranker.solution.user_vocab.ids if u in truth.user_cluster][:150]
    lists = []
    for u in users:
        mine = by_cluster[truth.user_cluster[u]]
        others = [i for k, items in by_cluster.items() if k != truth.user_cluster[u] for i in items]
        lst = list(rng.choice(mine, 8, replace=False)) + list(rng.choice(others, 8, replace=False))
        lists.append([str(i) for i in rng.permutation(lst)])
    ranked = ranker.rank(users, lists)
    share = np.mean([np.mean([truth.item_cluster[r.item_id] == truth.user_cluster[u] for r in items[:8]])
                     for u, items in zip(users, ranked)])
    popularity = ranker.recipe.item_counts.numpy()
    vocab = ranker.solution.item_vocab
    by_pop = [sorted(lst, key=lambda i: -popularity[vocab.to_idx([i])[0]])[:8] for lst in lists]
    pop_share = np.mean([np.mean([truth.item_cluster[i] == truth.user_cluster[u] for i in top])
                         for u, top in zip(users, by_pop)])
    assert share > 0.75 and share > pop_share + 0.15, (share, pop_share)


def test_scores_are_a_softmax_over_the_lists_known_items(ranker):
    sol = ranker.solution
    user = sol.user_vocab.ids[3]
    row = sol.history_rows([user])[0]
    history = list(sol.item_vocab.to_id(sol.histories.items_of(row)))
    others = [i for i in sol.item_vocab.ids if i not in set(history)]
    given = ["new-item-b"] + others[:6] + history[:3] + ["new-item-a"] + [others[0]]   # a duplicate too
    (ranked,) = ranker.rank([user], [given])
    ids = [r.item_id for r in ranked]
    # Every distinct item comes back once; the user's own items are ranked, not left out.
    assert sorted(ids) == sorted(set(given)) and set(history[:3]) <= set(ids)
    known = [r for r in ranked if r.score is not None]
    assert [r.item_id for r in ranked[len(known):]] == ["new-item-b", "new-item-a"]   # input order, no score
    assert abs(sum(r.score for r in known) - 1.0) < 1e-6
    assert all(a.score >= b.score for a, b in zip(known, known[1:]))
    # The scores are the model's probabilities renormalized over the list.
    inputs, _, _ = ranker._user_inputs([user], None)
    probs = ranker._scores(inputs, RequestOptions())[0].double()
    idx = sol.item_vocab.to_idx([r.item_id for r in known])
    expected = probs[idx] / probs[idx].sum()
    assert np.allclose([r.score for r in known], expected.numpy(), atol=1e-6)


def test_filter_removes_items_and_scores_renormalize(ranker):
    sol = ranker.solution
    user = sol.user_vocab.ids[5]
    given = list(sol.item_vocab.ids[:30]) + ["not-in-catalogue"]
    banned = sorted(set().union(*genres_of(ranker, given[:3])))[0]
    options = RequestOptions(filter=Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"),
                             filter_values={"GENRE": json.dumps(banned)})
    (plain,) = ranker.rank([user], [given])
    (filtered,) = ranker.rank([user], [given], options)
    known = [r.item_id for r in filtered if r.score is not None]
    assert known and all(banned not in g for g in genres_of(ranker, known))
    assert known == [r.item_id for r in plain if r.score is not None and banned not in genres_of(ranker, [r.item_id])[0]]
    assert abs(sum(r.score for r in filtered if r.score is not None) - 1.0) < 1e-6
    assert filtered[-1].item_id == "not-in-catalogue" and filtered[-1].score is None


def test_streamed_events_and_context_change_the_ranking(ranker):
    sol = ranker.solution
    user, given = "brand-new-user", list(sol.item_vocab.ids[:40])
    (cold,) = ranker.rank([user], [given])
    events = RecentEvents(item_ids=given[10:14], timestamps=[1.7e9 + i for i in range(4)])
    (warm,) = ranker.rank([user], [given], RequestOptions(events=events))
    assert [r.score for r in cold] != [r.score for r in warm]
    known_user = sol.user_vocab.ids[0]
    by_device = {d: [r.score for r in ranker.rank([known_user], [given], RequestOptions(context={"DEVICE": d}))[0]]
                 for d in ("mobile", "desktop")}
    assert by_device["mobile"] != by_device["desktop"]


def test_any_recipe_ranks_popularity_count_by_popularity(trained_solution):
    pop = Predictor.from_dir(trained_solution["solution"])
    given = list(pop.solution.item_vocab.ids[:20])
    (ranked,) = pop.rank([pop.solution.user_vocab.ids[0]], [given])
    share = pop.recipe.user_counts.numpy()
    idx = pop.solution.item_vocab.to_idx(given)
    expected = [given[j] for j in np.argsort(-share[idx], kind="stable")]
    assert [r.item_id for r in ranked] == expected
    assert np.allclose([r.score for r in ranked], np.sort(share[idx])[::-1] / share[idx].sum())


def test_bad_lists_name_the_field(ranker):
    with pytest.raises(InputError, match="inputList"):
        ranker.rank(["u"], [["x"] * (MAX_INPUT_ITEMS + 1)])
    with pytest.raises(InputError, match="inputList"):
        ranker.rank(["u"], [["x", ""]])
    assert ranker.rank(["u"], [[]]) == [[]]


# --- HTTP: POST /personalize-ranking (botocore's GetPersonalizedRanking) ---------------------------------

ARN = "arn:aws:personalize:us-east-1:123456789012:{}/{}"


def test_http_ranking_shape_events_and_errors(ranker, trained_solution):
    from fastapi.testclient import TestClient

    from personalize_torch.serving.http.app import create_app

    pop = Predictor.from_dir(trained_solution["solution"])
    client = TestClient(create_app({"rank": ranker, "pop": pop},
                                   {"no-genre": Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")}))
    user = ranker.solution.user_vocab.ids[2]
    given = list(ranker.solution.item_vocab.ids[:20]) + ["not-in-catalogue"]
    body = {"campaignArn": ARN.format("campaign", "rank"), "userId": user, "inputList": given}
    r = client.post("/personalize-ranking", json=body)
    assert r.status_code == 200
    out = r.json()
    assert set(out) == {"personalizedRanking", "recommendationId"}
    (expected,) = ranker.rank([user], [given])
    assert out["personalizedRanking"][:-1] == [{"itemId": x.item_id, "score": round(x.score, 8)} for x in expected[:-1]]
    assert out["personalizedRanking"][-1] == {"itemId": "not-in-catalogue"}          # last, no score
    # Another campaign's recipe ranks the same list its own way.
    pop_out = client.post("/personalize-ranking", json={**body, "campaignArn": ARN.format("campaign", "pop")}).json()
    assert [x["itemId"] for x in pop_out["personalizedRanking"]] == [x.item_id for x in pop.rank([user], [given])[0]]

    # Streamed events (PutEvents) reach the ranking of the next request.
    events = [{"eventType": "click", "itemId": i, "sentAt": 1.9e9 + n} for n, i in enumerate(given[12:16])]
    assert client.post("/events", json={"trackingId": "t", "sessionId": "s", "userId": "fresh-user",
                                        "eventList": events}).status_code == 200
    cold = ranker.rank(["fresh-user"], [given])[0]
    warm = client.post("/personalize-ranking", json={**body, "userId": "fresh-user"}).json()["personalizedRanking"]
    assert [x.get("score") for x in warm] != [round(x.score, 8) if x.score is not None else None for x in cold]

    # Metadata of the ranked (known) items; the unknown item gets none.
    meta = client.post("/personalize-ranking", json={**body, "metadataColumns": {"ITEMS": ["GENRES"]}}).json()
    assert all("GENRES" in x["metadata"] for x in meta["personalizedRanking"][:-1])
    assert "metadata" not in meta["personalizedRanking"][-1]

    def error(payload, status, kind, *words):
        res = client.post("/personalize-ranking", json=payload)
        assert res.status_code == status and res.headers["x-amzn-ErrorType"] == kind, res.text
        assert all(w in res.json()["message"] for w in words), res.json()

    error({k: v for k, v in body.items() if k != "userId"}, 400, "InvalidInputException", "userId")
    error({k: v for k, v in body.items() if k != "inputList"}, 400, "InvalidInputException", "inputList")
    error({**body, "inputList": [f"i{n}" for n in range(MAX_INPUT_ITEMS + 1)]}, 400, "InvalidInputException",
          "inputList")
    error({**body, "campaignArn": ARN.format("campaign", "nope")}, 404, "ResourceNotFoundException", "nope")
    error({**body, "filterArn": ARN.format("filter", "nope")}, 404, "ResourceNotFoundException", "filterArn")
    error({**body, "filterValues": {"GENRE": '"x"'}}, 400, "InvalidInputException", "filterArn")
    error({**body, "context": {"NOT_A_FIELD": "x"}}, 400, "InvalidInputException", "context")


def test_boto3_get_personalized_ranking(ranker):
    import boto3
    from tests.conftest import serving

    from personalize_torch.serving.http.app import create_app

    app = create_app({"rank": ranker}, {"no-genre": Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")})
    user = ranker.solution.user_vocab.ids[4]
    given = list(ranker.solution.item_vocab.ids[10:40]) + ["not-in-catalogue"]
    banned = sorted(set().union(*genres_of(ranker, given[:2])))[0]
    with serving(app) as url:
        client = boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        res = client.get_personalized_ranking(campaignArn=ARN.format("campaign", "rank"), userId=user,
                                              inputList=given, context={"DEVICE": "mobile"},
                                              filterArn=ARN.format("filter", "no-genre"),
                                              filterValues={"GENRE": json.dumps(banned)})
        with pytest.raises(client.exceptions.InvalidInputException, match="inputList"):
            client.get_personalized_ranking(campaignArn=ARN.format("campaign", "rank"), userId=user,
                                            inputList=["i"] * (MAX_INPUT_ITEMS + 1))
    ranked = res["personalizedRanking"]
    assert res["recommendationId"].startswith("RID-")
    options = RequestOptions(filter=Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"),
                             filter_values={"GENRE": json.dumps(banned)}, context={"DEVICE": "mobile"})
    (expected,) = ranker.rank([user], [given], options)
    assert [x["itemId"] for x in ranked] == [x.item_id for x in expected]
    assert ranked[-1] == {"itemId": "not-in-catalogue"}
    assert abs(sum(x["score"] for x in ranked[:-1]) - 1.0) < 1e-6
    assert all(banned not in g for g in genres_of(ranker, [x["itemId"] for x in ranked[:-1]]))


# --- Batch: {"userId": ..., "itemList": [...]} lines ---------------------------------------------------

def test_batch_ranking_lines_and_per_line_errors(ranker):
    import io

    from personalize_torch.serving.jobs.batch_inference import run_batch_inference

    ids = list(ranker.solution.item_vocab.ids)
    users = list(ranker.solution.user_vocab.ids[:2])
    lines = [
        {"userId": users[0], "itemList": ids[:3]},
        {"userId": users[1]},                                                     # a recommendations line between
        {"userId": users[1], "itemList": [ids[5], "not-in-catalogue", ids[7], ids[6]]},
        {"userId": users[0], "itemList": "27"},
        {"itemList": ids[:3]},
        {"userId": users[0], "itemId": ids[0], "itemList": ids[:3]},
        {"userId": users[0], "itemList": ids[:1] * (MAX_INPUT_ITEMS + 1)},
    ]
    out = io.StringIO()
    counts = run_batch_inference(ranker, [json.dumps(x) + "\n" for x in lines], out, num_results=2)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts == {"lines": 7, "errors": 4}
    assert [r["input"] for r in results] == lines
    for r, (user, given) in zip((results[0], results[2]), ((users[0], ids[:3]), (users[1], lines[2]["itemList"]))):
        (expected,) = ranker.rank([user], [given])
        assert r["error"] is None and r["output"]["recommendedItems"] == [x.item_id for x in expected]
        # Scored in one batch with the other lines: equal up to float rounding.
        assert [s is None for s in r["output"]["scores"]] == [x.score is None for x in expected]
        assert np.allclose([s for s in r["output"]["scores"] if s is not None],
                           [x.score for x in expected if x.score is not None], atol=1e-5)
    # The whole list comes back (num_results is for recommendations), unknown items last with a null score.
    assert len(results[2]["output"]["recommendedItems"]) == 4
    assert results[2]["output"]["recommendedItems"][-1] == "not-in-catalogue" and results[2]["output"]["scores"][-1] is None
    assert len(results[1]["output"]["recommendedItems"]) == 2
    assert "itemList" in results[3]["error"] and "userId" in results[4]["error"]
    assert "itemId" in results[5]["error"] and str(MAX_INPUT_ITEMS) in results[6]["error"]
