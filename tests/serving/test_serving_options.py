"""Filters, context and exploration reach recommendations, in the Predictor, the batch job and the server."""

import json

import pytest
import torch
from fastapi.testclient import TestClient

from personalize_torch.batch import main as batch_main
from personalize_torch.filters import Filter
from personalize_torch.serving.campaigns import CampaignSettings
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor, RequestOptions

ARN = "arn:aws:personalize:us-east-1:123456789012:{}/{}"


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def genres_of(predictor, item_ids):
    items = predictor.solution.items.set_index("ITEM_ID")
    return [set(str(items.loc[i, "GENRES"]).split("|")) for i in item_ids]


def test_filter_excludes_a_genre_given_as_parameter(predictor):
    user = predictor.solution.user_vocab.ids[0]
    plain = [r.item_id for r in predictor.recommend([user], 20)[0]]
    banned = sorted(set().union(*genres_of(predictor, plain[:3])))[0]
    f = Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    got = [r.item_id for r in predictor.recommend([user], 20, options=RequestOptions(
        filter=f, filter_values={"GENRE": json.dumps(banned)}))[0]]
    assert len(got) == 20 and all(banned not in g for g in genres_of(predictor, got))
    kept = [i for i in plain if banned not in genres_of(predictor, [i])[0]]
    assert got[:len(kept)] == kept  # the survivors keep their order


def test_filter_on_interactions_excludes_purchased_items(predictor):
    sol = predictor.solution
    table_users = [u for u in sol.user_vocab.ids[:50]]
    f = Filter.parse('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    recs = predictor.recommend(table_users, 30, exclude_seen=False, options=RequestOptions(filter=f))
    purchase = sol.event_type_vocab.to_idx(["purchase"])[0]
    for user, items in zip(table_users, recs):
        row = sol.history_rows([user])[0]
        lo, hi = sol.histories.offsets[row], sol.histories.offsets[row + 1]
        bought = set(sol.item_vocab.to_id(sol.histories.item_idx[lo:hi][sol.histories.event_type[lo:hi] == purchase]))
        assert not bought & {r.item_id for r in items}


def test_interactions_filters_see_streamed_events(predictor):
    """An item purchased after training (a streamed event) is excluded by an Interactions filter at once,
    for a known user and for a new one, while the stored purchases still count."""
    from personalize_torch.serving.inference.predictor import RecentEvents

    sol = predictor.solution
    user = sol.user_vocab.ids[0]
    f = Filter.parse('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("PURCHASE")')
    before = [r.item_id for r in predictor.recommend([user, "brand-new"], 30, exclude_seen=False,
                                                     options=RequestOptions(filter=f))[0]]
    bought = before[0]
    event = RecentEvents(item_ids=[bought, before[1]], timestamps=[2e9, 2e9 + 1], event_types=["purchase", "click"])
    after = predictor.recommend([user, "brand-new"], 30, exclude_seen=False,
                                options=RequestOptions(filter=f, events=[event, event]))
    for items in after:
        ids = [r.item_id for r in items]
        assert bought not in ids and before[1] in ids       # the purchase is excluded, the click is not
    purchase = sol.event_type_vocab.to_idx(["purchase"])[0]
    row = sol.history_rows([user])[0]
    lo, hi = sol.histories.offsets[row], sol.histories.offsets[row + 1]
    old = set(sol.item_vocab.to_id(sol.histories.item_idx[lo:hi][sol.histories.event_type[lo:hi] == purchase]))
    assert not old & {r.item_id for r in after[0]}


def test_exploration_brings_in_rarely_seen_items(predictor):
    user = predictor.solution.user_vocab.ids[0]
    counts, _ = predictor._exploration
    plain = predictor.recommend([user], 10)[0]
    explored = predictor.recommend([user], 10, options=RequestOptions(exploration_weight=0.9,
                                                                      exploration_item_age_cut_off=1e9))[0]
    index = predictor.solution.item_vocab.to_idx
    mean_count = lambda recs: float(counts[torch.from_numpy(index([r.item_id for r in recs]))].mean())  # noqa: E731
    assert mean_count(explored) < 0.5 * mean_count(plain)


def test_unknown_context_field_is_named(predictor):
    from personalize_torch.errors import InputError

    with pytest.raises(InputError) as err:
        predictor.context_indices([{"WEATHER": "rain"}])
    assert "DEVICE" in err.value.message and err.value.column == "context"


def test_server_filter_arn_values_and_errors(predictor):
    client = TestClient(create_app({"shop": predictor},
                                   {"no-genre": Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"),
                                    "only-genre": Filter.parse("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")},
                                   {"shop": CampaignSettings()}))
    user = predictor.solution.user_vocab.ids[1]
    genre = sorted(set().union(*genres_of(predictor, list(predictor.solution.items["ITEM_ID"][:5]))))[0]
    body = {"campaignArn": ARN.format("campaign", "shop"), "userId": user, "numResults": 10,
            "filterArn": ARN.format("filter", "only-genre"), "filterValues": {"GENRE": json.dumps(genre)}}
    r = client.post("/recommendations", json=body)
    assert r.status_code == 200, r.text
    got = [x["itemId"] for x in r.json()["itemList"]]
    assert got and all(genre in g for g in genres_of(predictor, got))
    missing = client.post("/recommendations", json={**body, "filterValues": {}})
    assert missing.status_code == 400 and "GENRE" in missing.json()["message"]
    unknown = client.post("/recommendations", json={**body, "filterArn": ARN.format("filter", "nope")})
    assert unknown.status_code == 404 and unknown.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


def test_batch_job_filter_with_per_line_values(trained_solution, predictor, tmp_path):
    users = list(predictor.solution.user_vocab.ids[:2])
    genre = sorted(set().union(*genres_of(predictor, list(predictor.solution.items["ITEM_ID"][:5]))))[0]
    lines = [{"userId": users[0], "filterValues": {"GENRE": json.dumps(genre)}}, {"userId": users[1]}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    batch_main(["--solution", trained_solution["solution"], "--input", str(src), "--output", str(out),
                "--num-results", "5", "--filter", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"])
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["error"] is None and all(genre in g for g in genres_of(predictor, first["output"]["recommendedItems"]))
    assert second["output"] is None and "GENRE" in second["error"]


def test_request_context_reaches_a_context_aware_recipe(tmp_path):
    from personalize_torch.data.prepared import PreparedData
    from personalize_torch.data.sources import demo_dataset_group
    from personalize_torch.recipes.user_personalization import UserPersonalization
    from personalize_torch.solution_version import load_solution_version, save_solution_version
    from tests.conftest import fit_small

    data = PreparedData(demo_dataset_group(n_users=150, n_items=60, seed=2), split="leave_one_out")
    fitted = fit_small(UserPersonalization, data, max_epochs=1, trainer_args={"limit_val_batches": 0},
                       hidden_dimension=16, bptt=10)
    recipe = fitted.recipe
    assert recipe.hparams.context_cardinalities == list(data.describe().context_cardinalities) == [4]
    predictor = Predictor(load_solution_version(save_solution_version(tmp_path / "up", fitted.trainer, recipe, data,
                                                                      {})))
    user = predictor.solution.user_vocab.ids[0]
    scores = {device: [r.score for r in predictor.recommend([user], 5, options=RequestOptions(
        context={"DEVICE": device}))[0]] for device in ("mobile", "desktop")}
    assert scores["mobile"] != scores["desktop"]
    # a batch of rows where only some give a context: the others score as a request without one
    # (the user's latest context), not as "no context"
    plain = predictor.recommend([user], 5)[0]
    mixed = predictor.recommend([user, user], 5, options=RequestOptions(context=[{"DEVICE": "mobile"}, None]))
    assert [r.item_id for r in mixed[1]] == [r.item_id for r in plain]
    assert [r.score for r in mixed[1]] == pytest.approx([r.score for r in plain])
    assert [r.score for r in mixed[0]] == pytest.approx(scores["mobile"])
